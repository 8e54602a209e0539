"""A script-mode container: a setup step (the toolkit's ``pip install -r requirements.txt``) and
then the user's command in its own child process, behind the runners' ``Container`` interface.

User code runs with the interpreter of its environment (a plain ``subprocess``, not the process
runner's zygote, whose interpreter and preloaded modules are the emulator's). One owner thread per
container does the setup, starts the process, reaps it and alone sets the exit status. The child
is in its own process group, so ``stop``/``kill`` reach whatever the script started, and it gets
SIGKILL when its owner thread ends, hence when the emulator dies however it dies (the runtime
starts it through bubblewrap's ``--die-with-parent`` or util-linux's ``setpriv --pdeathsig``; a
``preexec_fn`` would do the same but forces a full fork of the emulator, ~0.2 s a job).
"""

from __future__ import annotations

import http.client
import os
import queue
import shutil
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from emulation.runners import ExitStatus, Mode

#: How much of stderr is kept for a FailureReason (the toolkit reports the end of a traceback).
STDERR_LINES_KEPT = 200


class SetupFailed(Exception):
    """The setup step failed; the container ends with ``exit_code`` without running the command."""

    def __init__(self, exit_code: int = 1):
        super().__init__(f"setup failed with exit code {exit_code}")
        self.exit_code = exit_code


@dataclass
class Launch:
    """What the setup step decided to run."""

    command: list[str]
    cwd: Path
    environment: dict[str, str]
    pass_fds: tuple[int, ...] = ()
    #: Called with the exit status once the command ended (e.g. to write output/failure).
    on_exit: Callable[[ExitStatus, list[str]], None] | None = None
    #: File descriptors to close in this process once the child holds them.
    close_after_start: list[int] = field(default_factory=list)
    #: Directories to remove once the container ended (its private /tmp).
    remove_after: list[Path] = field(default_factory=list)


class ScriptContainer:
    def __init__(self, mode: Mode, setup: Callable[[ScriptContainer], Launch], on_end=None):
        self.mode = mode
        self.address: tuple[str, int] | None = None
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_LINES_KEPT)
        self._setup = setup
        self._on_end = on_end
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._killed: int | None = None
        self._exit_status: ExitStatus | None = None
        self._ended = threading.Event()
        self._owner = threading.Thread(target=self._own, name=f"script-{mode}", daemon=True)
        self._owner.start()

    def log(self, line: str) -> None:
        """A line of the container's output from the setup step."""
        self._lines.put(line)

    # -- the owner thread: setup, start, reap ---------------------------------------------------
    def _own(self) -> None:
        status = ExitStatus(code=1)
        launch = None
        try:
            launch = self._setup(self)
            with self._lock:
                if self._killed is not None:
                    status = ExitStatus(signal=self._killed)
                    return
                self._process = subprocess.Popen(
                    launch.command,
                    cwd=launch.cwd,
                    env=launch.environment,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    start_new_session=True,
                    pass_fds=launch.pass_fds,
                )
            for fd in launch.close_after_start:
                os.close(fd)
            readers = [
                threading.Thread(target=self._read, args=(self._process.stdout, False), daemon=True),
                threading.Thread(target=self._read, args=(self._process.stderr, True), daemon=True),
            ]
            for reader in readers:
                reader.start()
            code = self._process.wait()
            for reader in readers:
                reader.join()
            status = ExitStatus(signal=-code) if code < 0 else ExitStatus(code=code)
            if launch.on_exit is not None:
                launch.on_exit(status, list(self.stderr_tail))
        except SetupFailed as failure:
            status = ExitStatus(code=failure.exit_code)
        except Exception as error:  # the emulator's side failed: the container ends, the emulator does not
            self.log(f"sagelocal: the container could not start: {error}")
        finally:
            if launch is not None:
                if self._process is None:
                    for fd in launch.close_after_start:
                        os.close(fd)
                for directory in launch.remove_after:
                    shutil.rmtree(directory, ignore_errors=True)
            self._exit_status = status
            self._ended.set()
            self._lines.put(None)
            if self._on_end is not None:
                self._on_end(self)

    def _read(self, stream, is_stderr: bool) -> None:
        with stream:
            for raw in stream:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                if is_stderr:
                    self.stderr_tail.append(line)
                self._lines.put(line)

    # -- the Container interface ---------------------------------------------------------------
    @property
    def exit_status(self) -> ExitStatus | None:
        return self._exit_status if self._ended.is_set() else None

    def logs(self) -> Iterator[str]:
        while (line := self._lines.get()) is not None:
            yield line

    def wait(self, timeout: float | None = None) -> ExitStatus | None:
        self._ended.wait(timeout)
        return self.exit_status

    def health(self, timeout: float = 2.0) -> bool:
        if self._ended.is_set():
            return False
        if self.mode != "serve" or self.address is None:
            return self.mode != "serve"
        connection = http.client.HTTPConnection(*self.address, timeout=timeout)
        try:
            connection.request("GET", "/ping")
            return connection.getresponse().status == 200
        except OSError:
            return False
        finally:
            connection.close()

    def stop(self, grace: float = 10.0) -> None:
        self._signal(signal.SIGTERM)
        if not self._ended.is_set():
            timer = threading.Timer(grace, self.kill)
            timer.daemon = True
            timer.start()

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def _signal(self, number: int) -> None:
        with self._lock:
            if self._ended.is_set():
                return
            if self._process is None:  # still in setup: it will not start
                self._killed = int(number)
                return
            if self._process.poll() is None:
                try:
                    os.killpg(self._process.pid, number)
                except ProcessLookupError:
                    pass
