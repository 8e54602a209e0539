"""The emulator in a child process (``sagelocal run``, ``exec``, the pytest plugin): usable at once,
and gone when its parent goes, however the parent goes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import boto3

from emulation.child import EmulatorProcess
from emulation.config import EmulatorConfig


def test_the_first_request_waits_for_a_starting_emulator_instead_of_failing(tmp_path):
    with EmulatorProcess(EmulatorConfig(port=0, data_dir=tmp_path)) as emulator:
        sts = boto3.client(
            "sts",
            endpoint_url=emulator.url,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="us-east-1",
        )
        assert sts.get_caller_identity()["Account"] == "000000000000"  # sent while it imports
    assert emulator.process.returncode == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is gone for our purpose
        return stat.read().split(") ")[1][0] != "Z"


def test_the_emulator_exits_when_its_parent_is_killed(tmp_path):
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
                import time
                from emulation.child import EmulatorProcess
                from emulation.config import EmulatorConfig
                emulator = EmulatorProcess(EmulatorConfig(port=0, data_dir={str(tmp_path)!r})).start()
                print(emulator.process.pid, flush=True)
                time.sleep(600)
            """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    child = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait()

    deadline = time.monotonic() + 120
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(child), "the emulator outlived its parent"
