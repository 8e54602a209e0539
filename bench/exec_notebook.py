"""The seed's Boston deploy notebook (SDK v2 names only) run unchanged with
``sagelocal exec -- jupyter execute``: wall time with the SDK's poll sleeps shortened (the default)
and with them real (``--real-sleeps``), interpreter and kernel start-up included.

The baseline in the same run is the real-sleeps run: what the same notebook costs against the
emulator when nothing shortens the SDK's fixed 5-30 s sleeps (the fit's log loop, deploy's 30 s
before its first describe). Each run starts its own emulator.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.report import emit, parser

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "tests" / "fixtures" / "boston_deploy_high_level.ipynb"
BOSTON_CSV = ROOT / "workflows" / "datasets" / "data" / "boston_house_prices.csv"


def run_notebook(*exec_flags: str) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as work:
        notebook_dir = Path(work) / "notebooks"
        notebook_dir.mkdir()
        shutil.copy(NOTEBOOK, notebook_dir)
        shutil.copy(BOSTON_CSV, notebook_dir)
        command = [sys.executable, "-m", "workflows.cli", "exec", *exec_flags, "--"]
        command += ["jupyter", "execute", NOTEBOOK.name, "--output=executed.ipynb"]
        env = {k: v for k, v in os.environ.items() if k != "SAGELOCAL_ENDPOINT"}
        started = time.perf_counter()
        completed = subprocess.run(command, cwd=notebook_dir, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
    if completed.returncode != 0:
        print(completed.stderr[-3000:], file=sys.stderr)
    return seconds, completed.returncode


def main(argv=None) -> dict:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    shortened, shortened_code = run_notebook()
    real, real_code = run_notebook("--real-sleeps")
    figures = {
        "notebook_shortened_sleeps_s": shortened,
        "notebook_real_sleeps_s": real,
        "speed_up": real / shortened,
        "exit_codes": {"shortened": shortened_code, "real": real_code},
    }
    failed = " FAILED" if shortened_code or real_code else ""
    emit(
        f"Boston deploy notebook through sagelocal exec -- jupyter execute{failed}",
        [
            ("SDK poll sleeps shortened (s)", shortened, "the default"),
            ("baseline: SDK poll sleeps real (s)", real, "--real-sleeps"),
            ("speed-up", figures["speed_up"], "x"),
        ],
        args,
        figures,
    )
    return figures


if __name__ == "__main__":
    main()
