"""Lambda Invoke through boto3: cold start, warm invoke latency and the IMDB app's cold start.

Measured in the same run: a minimal echo function (cold: the first invoke of a new function,
warm: sequential invokes of the same one) and the IMDB web app's own package (its first invoke,
and the REPORT line's Init Duration), next to two floors: an isolated Python interpreter starting
and exiting (no cold start can beat it) and STS GetCallerIdentity (the floor of any boto3 round
trip to the emulator). ``--before REV`` runs the same measurement on the code of a git revision
too (this file is copied into that tree), so a rework prints its "before" and "after" side by side.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import boto3

from bench.report import emit, parser, percentiles

ROLE = "arn:aws:iam::000000000000:role/bench-lambda"
ECHO = "def handler(event, context):\n    return {'id': context.aws_request_id, 'event': event}\n"
COLD_SAMPLES, WARM_SAMPLES, IMDB_SAMPLES = 15, 500, 3
_INIT_DURATION = re.compile(r"Init Duration: ([0-9.]+) ms")


def _zip(files: dict[str, str]) -> bytes:
    """A deployment package whose entries are world-readable, as Lambda needs them."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            entry = zipfile.ZipInfo(name)
            entry.external_attr = 0o100644 << 16
            archive.writestr(entry, text)
    return buffer.getvalue()


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _wait_active(lam, name: str) -> None:
    """Functions may be Pending for a moment after CreateFunction, as on AWS."""
    for _ in range(600):
        if lam.get_function_configuration(FunctionName=name).get("State", "Active") == "Active":
            return
        time.sleep(0.01)


def _create(lam, name: str, package: bytes, **config) -> None:
    lam.create_function(
        FunctionName=name, Runtime="python3.12", Role=ROLE, Code={"ZipFile": package}, **config
    )
    _wait_active(lam, name)


def _first_invoke(lam, name: str, event: dict) -> tuple[float, float | None]:
    """(ms of the first invoke, the REPORT line's Init Duration in ms)."""
    started = time.perf_counter()
    answer = lam.invoke(FunctionName=name, Payload=json.dumps(event).encode(), LogType="Tail")
    elapsed = _ms_since(started)
    payload = answer["Payload"].read()
    if "FunctionError" in answer:
        raise RuntimeError(f"{name} failed: {payload[:500]!r}")
    init = _INIT_DURATION.search(base64.b64decode(answer["LogResult"]).decode())
    return elapsed, float(init.group(1)) if init else None


def _imdb_package() -> bytes:
    from workflows import lambda_package

    return lambda_package.build({"good": 0, "bad": 1, "movie": 2})


def measure() -> dict:
    """The figures of the code this module runs against (this tree, or a --before tree)."""
    from emulation import Emulator, EmulatorConfig

    with (
        tempfile.TemporaryDirectory() as work,
        Emulator(EmulatorConfig(port=0, data_dir=Path(work) / "data")) as emulator,
    ):
        session = boto3.Session(
            aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
        )
        lam, sts = (session.client(name, endpoint_url=emulator.url) for name in ("lambda", "sts"))
        session.client("iam", endpoint_url=emulator.url).create_role(
            RoleName="bench-lambda", AssumeRolePolicyDocument="{}"
        )
        # A new role is assumable only after IAM propagates it (older trees have no such delay).
        time.sleep(getattr(emulator.config, "role_propagation_seconds", 0))
        echo = _zip({"app.py": ECHO})
        cold, init = [], []
        for index in range(COLD_SAMPLES):
            _create(lam, f"bench-cold-{index}", echo, Handler="app.handler")
            elapsed, init_ms = _first_invoke(lam, f"bench-cold-{index}", {"n": index})
            cold.append(elapsed)
            init.append(init_ms or 0.0)
        payload = json.dumps({"n": 1}).encode()
        for _ in range(50):  # warm connections and the environment
            lam.invoke(FunctionName="bench-cold-0", Payload=payload)["Payload"].read()
            sts.get_caller_identity()
        warm = []
        for _ in range(WARM_SAMPLES):
            started = time.perf_counter()
            lam.invoke(FunctionName="bench-cold-0", Payload=payload)["Payload"].read()
            warm.append(_ms_since(started))
        sts_ms = []
        for _ in range(WARM_SAMPLES):
            started = time.perf_counter()
            sts.get_caller_identity()
            sts_ms.append(_ms_since(started))
        imdb = _imdb_package()
        imdb_cold, imdb_init = [], []
        for index in range(IMDB_SAMPLES):
            name = f"bench-imdb-{index}"
            _create(
                lam,
                name,
                imdb,
                Handler="lambda_function.lambda_handler",
                Timeout=30,
                MemorySize=512,
                Environment={"Variables": {"ENDPOINT_NAME": "none"}},
            )
            elapsed, init_ms = _first_invoke(lam, name, {"body": ""})  # answered 400 before the endpoint
            imdb_cold.append(elapsed)
            imdb_init.append(init_ms or 0.0)
    return {
        "cold_invoke_ms": percentiles(cold),
        "cold_init_duration_ms": percentiles(init),
        "warm_invoke_ms": percentiles(warm),
        "sts_get_caller_identity_ms": percentiles(sts_ms),
        "imdb_cold_invoke_ms": percentiles(imdb_cold),
        "imdb_init_duration_ms": percentiles(imdb_init),
    }


def interpreter_start_ms(count: int = 15) -> dict:
    """The floor of a cold start: an isolated interpreter starting and exiting."""
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-I", "-S", "-c", "pass"], check=True)
        samples.append(_ms_since(started))
    return percentiles(samples)


def measure_revision(revision: str) -> dict:
    """The same figures on the code of a git revision, in a child process."""
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tree:
        archive = subprocess.run(
            ["git", "-C", str(root), "archive", "--format=tar", revision], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
        (Path(tree) / "bench" / "lambda_latency.py").write_text(Path(__file__).read_text())
        output = subprocess.run(
            [sys.executable, "-m", "bench.lambda_latency", "--measure-only"],
            cwd=tree,
            env={**os.environ, "PYTHONPATH": tree},
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    return json.loads(output.strip().splitlines()[-1])


def main(argv=None) -> dict:
    arguments = parser(__doc__.splitlines()[0])
    arguments.add_argument("--before", metavar="REV", help="also measure the code of this git revision")
    arguments.add_argument("--measure-only", action="store_true", help=argparse.SUPPRESS)
    args = arguments.parse_args(argv)
    if args.measure_only:
        print(json.dumps(measure()))
        return {}
    figures = {**measure(), "python_start_ms": interpreter_start_ms()}
    rows = [
        (
            "cold invoke p50 (ms)",
            figures["cold_invoke_ms"]["p50"],
            f"echo function, {COLD_SAMPLES} new functions",
        ),
        ("cold Init Duration p50 (ms)", figures["cold_init_duration_ms"]["p50"], "REPORT line"),
        ("warm invoke p50 (ms)", figures["warm_invoke_ms"]["p50"], f"{WARM_SAMPLES} sequential invokes"),
        ("warm invoke p99 (ms)", figures["warm_invoke_ms"]["p99"], ""),
        ("IMDB app cold invoke p50 (ms)", figures["imdb_cold_invoke_ms"]["p50"], "its real package (nltk)"),
        ("IMDB app Init Duration p50 (ms)", figures["imdb_init_duration_ms"]["p50"], "REPORT line"),
        ("baseline python -I -S start p50 (ms)", figures["python_start_ms"]["p50"], "floor of a cold start"),
        (
            "baseline sts GetCallerIdentity p50 (ms)",
            figures["sts_get_caller_identity_ms"]["p50"],
            "boto3 floor",
        ),
        (
            "warm invoke / sts p50",
            figures["warm_invoke_ms"]["p50"] / figures["sts_get_caller_identity_ms"]["p50"],
            "x",
        ),
    ]
    if args.before:
        before = figures["before"] = {"revision": args.before, **measure_revision(args.before)}
        for key, label in (
            ("cold_invoke_ms", "cold invoke"),
            ("warm_invoke_ms", "warm invoke"),
            ("imdb_cold_invoke_ms", "IMDB app cold invoke"),
            ("imdb_init_duration_ms", "IMDB app Init Duration"),
        ):
            rows.append((f"before: {label} p50 (ms)", before[key]["p50"], args.before))
            rows.append((f"after / before: {label}", figures[key]["p50"] / before[key]["p50"], "x"))
    emit("Lambda Invoke through boto3: cold start and warm latency", rows, args, figures)
    return figures


if __name__ == "__main__":
    main()
