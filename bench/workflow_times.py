"""Wall time of each workflow on the local target, as a user runs it: `sagelocal run <workflow>`,
interpreter start-up included (goal for 1a and 1b: under 10 s on a 2-core machine).

The baseline measured in the same run is the bare start-up of the same interpreter importing the
SageMaker SDK (what any SDK script pays before its first API call). The AWS figures are the
reference runs of the original notebooks (shared/spec/seed-workflows.md), not measured here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from bench.report import emit, parser
from workflows import registry

#: Wall-clock references on real AWS (eu-west-1, Dec 2019), from the original notebooks.
AWS_REFERENCE_SECONDS = {
    "boston-high-level": 15 * 60,
    "boston-low-level": 15 * 60,
    "boston-tuning-high-level": 30 * 60,
    "boston-tuning-low-level": 30 * 60,
    "imdb-web-app": 30 * 60,
}


def wall(command: list[str], env: dict[str, str]) -> tuple[float, int]:
    started = time.perf_counter()
    completed = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if completed.returncode != 0:
        print(completed.stderr[-2000:], file=sys.stderr)
    return time.perf_counter() - started, completed.returncode


def main(argv=None) -> dict:
    arguments = parser(__doc__.splitlines()[0])
    arguments.add_argument("workflows", nargs="*", default=list(registry.WORKFLOWS), help="default: all")
    args = arguments.parse_args(argv)
    env = {**os.environ, "SAGELOCAL_TARGET": "local", "SAGEMAKER_SUPPRESS_V2_WARNING": "1"}
    baseline, _ = wall([sys.executable, "-c", "import boto3, sagemaker"], env)
    figures: dict = {"python_import_sagemaker_s": baseline, "workflows": {}}
    rows = [("python -c 'import sagemaker' (baseline)", baseline, "s")]
    with tempfile.TemporaryDirectory() as output:
        for name in args.workflows:
            seconds, code = wall(
                [sys.executable, "-m", "workflows.cli", "run", name, "--output", output], env
            )
            reference = AWS_REFERENCE_SECONDS.get(name)
            figures["workflows"][name] = {
                "seconds": seconds,
                "exit_code": code,
                "aws_reference_seconds": reference,
            }
            note = f"s  (~{reference // 60} min on AWS: {reference / seconds:,.0f}x)" if reference else "s"
            rows.append((f"sagelocal run {name}" + ("" if code == 0 else " FAILED"), seconds, note))
    emit("Workflow wall time on the local target, interpreter start-up included", rows, args, figures)
    return figures


if __name__ == "__main__":
    main()
