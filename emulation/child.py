"""The emulator in a child process, for commands that start one for a single run
(``sagelocal run``, ``sagelocal exec``, the pytest plugin).

Why a child process rather than a thread: the emulator's imports (moto, werkzeug, the services)
and then its half of every request run on another core than the caller's own work (importing the
SageMaker SDK, the SDK's half of every request), instead of taking turns on one interpreter lock.

The listening socket is bound here, before the child starts, and handed to it: the URL is known
at once, and requests sent while the child is still importing wait in the socket's backlog
instead of failing, so nobody polls for readiness. The child serves until its stdin closes,
which also happens when this process dies, however it dies; it runs in its own session, so a
Ctrl-C meant for the command does not stop the emulator before the command has cleaned up.

This module imports only the standard library and ``emulation.config`` in the parent.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

from emulation.config import EmulatorConfig

#: How long a child gets to stop its jobs and endpoints before it is killed.
STOP_TIMEOUT_S = 30


class EmulatorProcess:
    """``with EmulatorProcess(EmulatorConfig(port=0)) as emulator: ...`` (``emulator.url``)."""

    def __init__(self, config: EmulatorConfig | None = None):
        self.config = config or EmulatorConfig()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.config.host in ("0.0.0.0", "") else self.config.host
        return f"http://{host}:{self.config.port}"

    def start(self) -> EmulatorProcess:
        listener = socket.create_server((self.config.host, self.config.port), backlog=128)
        try:
            self.config = dataclasses.replace(self.config, port=listener.getsockname()[1])
            fields = json.dumps(dataclasses.asdict(self.config), default=str)  # paths as text
            self.process = subprocess.Popen(
                [sys.executable, "-m", "emulation.child", str(listener.fileno()), fields],
                stdin=subprocess.PIPE,
                pass_fds=(listener.fileno(),),
                start_new_session=True,
            )
        finally:
            listener.close()  # the child holds its own copy
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.stdin.close()
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _stop(signum, frame) -> None:
    raise SystemExit(0)


def _main(listen_fd: int, fields: dict) -> None:
    from emulation.server import Emulator

    defaults = EmulatorConfig()
    config = EmulatorConfig(
        **{k: Path(v) if isinstance(getattr(defaults, k), Path) else v for k, v in fields.items()}
    )
    emulator = Emulator(config, listen_fd=listen_fd).start()
    signal.signal(signal.SIGTERM, _stop)
    try:
        sys.stdin.buffer.read()  # until the parent closes it, or dies
    finally:
        emulator.stop()


if __name__ == "__main__":
    arguments = argparse.ArgumentParser(description="the emulator, for a parent that bound its socket")
    arguments.add_argument("listen_fd", type=int)
    arguments.add_argument("config", type=json.loads)
    parsed = arguments.parse_args()
    _main(parsed.listen_fd, parsed.config)
