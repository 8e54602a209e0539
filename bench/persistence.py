"""What keeping state costs: write latency with and without a data directory, and restart time.

Two ``sagelocal emulator`` processes measured in the same run: one without a data directory (the
baseline: nothing saved) and one with ``--data-dir`` (each write saved before it is acknowledged).
PutObject (1 KiB) and IAM CreateRole p50/p99 through boto3, a read (GetObject) as the control, the
same PutObject again once the bucket holds many objects (a save writes the whole S3 snapshot), and
the time the persistent emulator takes to start again on what it saved.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import boto3
import requests

from bench.report import emit, parser, percentiles

WRITES = 400
FILL = 2000  # objects in the bucket for the "many objects" figure


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _Emulator:
    def __init__(self, data_dir: Path | None):
        self.data_dir = data_dir
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        session = boto3.Session(
            aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
        )
        self.s3 = session.client("s3", endpoint_url=self.url)
        self.iam = session.client("iam", endpoint_url=self.url)

    def start(self) -> float:
        """Start it; the seconds until it answers."""
        command = [sys.executable, "-m", "workflows.cli", "emulator", "--port", str(self.port)]
        if self.data_dir is not None:
            command += ["--data-dir", str(self.data_dir)]
        environment = {k: v for k, v in os.environ.items() if k != "SAGELOCAL_DATA_DIR"}
        started = time.perf_counter()
        self.process = subprocess.Popen(
            command,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        while True:
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"{self.url}/_sagelocal/health", timeout=2).ok:
                    return time.perf_counter() - started
            if self.process.poll() is not None:
                raise RuntimeError("the emulator exited")
            time.sleep(0.02)

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def _timed(call, count: int) -> list[float]:
    samples = []
    for index in range(count):
        started = time.perf_counter()
        call(index)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def _measure(emulator: _Emulator) -> dict:
    s3, iam = emulator.s3, emulator.iam
    s3.create_bucket(Bucket="bench")
    body = b"x" * 1024
    prefix = uuid.uuid4().hex[:6]
    for index in range(50):  # warm up connections
        s3.put_object(Bucket="bench", Key=f"warm/{index}", Body=body)
    put = _timed(lambda i: s3.put_object(Bucket="bench", Key=f"{prefix}/{i}", Body=body), WRITES)
    get = _timed(lambda i: s3.get_object(Bucket="bench", Key=f"{prefix}/{i}")["Body"].read(), WRITES)
    role = _timed(lambda i: iam.create_role(RoleName=f"r{prefix}{i}", AssumeRolePolicyDocument="{}"), WRITES)
    for index in range(FILL - WRITES - 50):
        s3.put_object(Bucket="bench", Key=f"fill/{index}", Body=body)
    put_full = _timed(lambda i: s3.put_object(Bucket="bench", Key=f"full/{i}", Body=body), 100)
    return {
        "put_object_ms": percentiles(put),
        "get_object_ms": percentiles(get),
        "create_role_ms": percentiles(role),
        f"put_object_with_{FILL}_objects_ms": percentiles(put_full),
    }


def main(argv=None) -> dict:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        ephemeral, persistent = _Emulator(None), _Emulator(Path(work) / "data")
        figures: dict = {}
        for name, emulator in (("ephemeral", ephemeral), ("persistent", persistent)):
            figures[f"{name}_start_s"] = emulator.start()
            try:
                figures[name] = _measure(emulator)
            finally:
                emulator.stop()
        figures["persistent_restart_s"] = persistent.start()  # loads 2,100 objects and 400 roles
        try:
            assert persistent.s3.get_object(Bucket="bench", Key="full/99")["Body"].read() == b"x" * 1024
        finally:
            persistent.stop()
        state = Path(work) / "data" / "state"
        figures["s3_snapshot_bytes"] = (state / "moto.s3.state").stat().st_size
    base, kept = figures["ephemeral"], figures["persistent"]
    full = f"put_object_with_{FILL}_objects_ms"
    for key in ("put_object_ms", "create_role_ms", full):
        figures[f"{key[:-3]}_p50_ratio"] = kept[key]["p50"] / base[key]["p50"]
    emit(
        f"Persistence: {WRITES} sequential boto3 calls each, without and with --data-dir (same run)",
        [
            (
                "PutObject 1 KiB p50 (ms)",
                base["put_object_ms"]["p50"],
                f"with: {kept['put_object_ms']['p50']:.2f}",
            ),
            (
                "PutObject 1 KiB p99 (ms)",
                base["put_object_ms"]["p99"],
                f"with: {kept['put_object_ms']['p99']:.2f}",
            ),
            (
                "CreateRole p50 (ms)",
                base["create_role_ms"]["p50"],
                f"with: {kept['create_role_ms']['p50']:.2f}",
            ),
            (
                "CreateRole p99 (ms)",
                base["create_role_ms"]["p99"],
                f"with: {kept['create_role_ms']['p99']:.2f}",
            ),
            (
                "GetObject p50 (ms, a read: nothing saved)",
                base["get_object_ms"]["p50"],
                f"with: {kept['get_object_ms']['p50']:.2f}",
            ),
            (
                f"PutObject p50, bucket of {FILL} objects (ms)",
                base[full]["p50"],
                f"with: {kept[full]['p50']:.2f}",
            ),
            ("PutObject p50 with / without", figures["put_object_p50_ratio"], "x"),
            ("CreateRole p50 with / without", figures["create_role_p50_ratio"], "x"),
            (f"PutObject p50 with / without, {FILL} objects", figures[f"{full[:-3]}_p50_ratio"], "x"),
            ("start without data dir (s)", figures["ephemeral_start_s"], ""),
            (
                "restart on the saved state (s)",
                figures["persistent_restart_s"],
                f"{FILL + 100} objects, {WRITES} roles",
            ),
            ("S3 snapshot size (bytes)", figures["s3_snapshot_bytes"], "bodies are separate files"),
        ],  # fmt: skip
        args,
        figures,
    )
    return figures


if __name__ == "__main__":
    main()
