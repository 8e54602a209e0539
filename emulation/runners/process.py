"""The process runner: each container is a child process forked from a warm zygote.

A crash in a container (even a segfault or a kill) is that job's failure, never the emulator's.
See :mod:`emulation.runners.zygote` for how containers are forked, reaped and tied to the
emulator's life. This module is the emulator's side: one zygote per emulator process (restarted
if it dies), and a :class:`ProcessContainer` handle per container.

Ownership, so that no two threads ever race for the same exit status: the zygote reaps; one
watcher thread per container reads what the zygote and the container report on the status pipe,
and is the only writer of the handle's exit status. ``stop`` and ``kill`` signal the container's
process group by its id, which needs nothing from the zygote: they work after it died.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from emulation.containers.images import ContainerImage
from emulation.runners import ContainerStartError, ExitStatus, Limits, Mode, answers_ping

if TYPE_CHECKING:
    from emulation.containers.scriptmode.process import ScriptContainer
    from emulation.containers.scriptmode.runtime import ScriptRuntime

#: Containers share this machine's cores (a tuning run trains several at once). With OpenMP's
#: default busy-waiting, two threads on a busy 2-core machine train ~10x slower than one; passive
#: waiting keeps multi-threaded training fast. Applied only to the container processes.
CONTAINER_ENVIRONMENT = {"OMP_WAIT_POLICY": "PASSIVE"}
#: How long a ``serve`` container may take to listen (loading a large model included).
SERVE_START_TIMEOUT_SECONDS = 60
#: How long the zygote may take to answer a fork request (its first answer waits for its imports).
_ZYGOTE_REPLY_TIMEOUT_SECONDS = 120
_PROJECT_ROOT = str(Path(__file__).resolve().parents[2])


class _Zygote:
    """The emulator process's one zygote: started on first use, started again if it died."""

    def __init__(self):
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._control: socket.socket | None = None
        # The lifeline's write end stays in this process, unshared, until the process ends.
        self._lifeline_r, self._lifeline_w = os.pipe()

    def ensure_running(self) -> None:
        with self._lock:
            self._ensure_running()

    def _ensure_running(self) -> None:
        if self._process is not None and self._process.poll() is None:
            return
        self._discard()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        environment = {**os.environ, **CONTAINER_ENVIRONMENT}
        # The same code as this process, wherever it was imported from, and nothing from the cwd.
        environment["PYTHONPATH"] = os.pathsep.join(
            p for p in (_PROJECT_ROOT, os.environ.get("PYTHONPATH")) if p
        )
        code = (
            "import sys; del sys.path[0]; from emulation.runners.zygote import main; "
            f"main({theirs.fileno()}, {self._lifeline_r})"
        )
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-c", code],
                pass_fds=(theirs.fileno(), self._lifeline_r),
                stdin=subprocess.DEVNULL,
                env=environment,
                start_new_session=True,  # Ctrl-C reaches the emulator, which stops containers itself
            )
        finally:
            theirs.close()
        ours.settimeout(_ZYGOTE_REPLY_TIMEOUT_SECONDS)
        self._control = ours

    def _discard(self) -> None:
        """Forget a dead or unresponsive zygote; its containers live on, owned by their handles."""
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
            self._process.wait()
            self._process = None

    def fork(self, request: dict, output_fd: int, status_fd: int) -> int:
        """Ask the zygote for a container; returns its pid (also its process group id)."""
        payload = json.dumps(request).encode()
        with self._lock:
            for _attempt in (1, 2):
                self._ensure_running()
                try:
                    socket.send_fds(self._control, [payload], [output_fd, status_fd])
                    reply = self._control.recv(64)
                    if reply:
                        return int(reply)
                except OSError:
                    pass
                self._discard()  # it died (or hung): the next attempt starts a fresh one
            raise ContainerStartError("the container could not be started (the process zygote failed twice)")

    @property
    def pid(self) -> int | None:
        with self._lock:
            return self._process.pid if self._process is not None else None


_zygote = _Zygote()


def warm_up_in_background() -> None:
    """Start the zygote (and its imports) ahead of the first job."""
    threading.Thread(target=_zygote.ensure_running, name="zygote-warm-up", daemon=True).start()


def zygote_pid() -> int | None:
    """The zygote's pid, for fault-injection tests (kill it: containers must stay stoppable)."""
    return _zygote.pid


class ProcessContainer:
    """A container running as a process group, led by the process the zygote forked."""

    def __init__(self, pid: int, mode: Mode, output_fd: int, status_fd: int, on_end=None):
        self.pid = pid
        self.mode = mode
        self.address: tuple[str, int] | None = None
        self._output_fd = output_fd
        self._exit_status: ExitStatus | None = None
        self._last_signal: int | None = None
        self._ready = threading.Event()
        self._ended = threading.Event()
        self._on_end = on_end
        self._watcher = threading.Thread(
            target=self._watch, args=(status_fd,), name=f"container-{pid}", daemon=True
        )
        self._watcher.start()

    # -- the one owner of the exit status ------------------------------------------------------
    def _watch(self, status_fd: int) -> None:
        waited = exited = None
        with open(status_fd, "rb") as reports:
            for raw in reports:
                kind, _, value = raw.decode().strip().partition(" ")
                if kind == "ready":
                    self.address = ("127.0.0.1", int(value))
                    self._ready.set()
                elif kind == "wait":
                    waited = int(value)
                elif kind == "exit":
                    exited = int(value)
        # The zygote's report is the truth; the container's own is there if the zygote died first.
        if waited is not None:
            code = os.waitstatus_to_exitcode(waited)
            status = ExitStatus(signal=-code) if code < 0 else ExitStatus(code=code)
        elif exited is not None:
            status = ExitStatus(code=exited)
        else:  # killed while no zygote watched: the signal we sent, if we sent one
            status = ExitStatus(signal=self._last_signal)
        self._exit_status = status
        self._ended.set()
        self._ready.set()
        if self._on_end is not None:
            self._on_end(self)

    # -- the Container interface ---------------------------------------------------------------
    @property
    def exit_status(self) -> ExitStatus | None:
        return self._exit_status if self._ended.is_set() else None

    def logs(self) -> Iterator[str]:
        with open(self._output_fd, "rb") as stream:
            for raw in stream:
                yield raw.decode("utf-8", "replace").rstrip("\n")

    def wait(self, timeout: float | None = None) -> ExitStatus | None:
        self._ended.wait(timeout)
        return self.exit_status

    def wait_until_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout) and not self._ended.is_set()

    def health(self, timeout: float = 2.0) -> bool:
        if self._ended.is_set():
            return False
        if self.mode != "serve":
            return True
        return answers_ping(self.address, timeout)

    def stop(self, grace: float = 10.0) -> None:
        self._signal(signal.SIGTERM)
        if not self._ended.is_set():
            timer = threading.Timer(grace, self.kill)
            timer.daemon = True
            timer.start()

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def _signal(self, number: int) -> None:
        if self._ended.is_set():
            return  # its pid may belong to someone else by now
        self._last_signal = int(number)
        try:
            os.killpg(self.pid, number)
        except ProcessLookupError:
            pass


class ProcessRunner:
    """Starts containers as processes; ``shutdown`` kills those still running.

    The built-in algorithm's containers are forks of the zygote; containers that run users' code
    (script mode, processing) go to ``scripts`` (``emulation.containers.scriptmode.runtime``), which
    starts them with their own environment's interpreter.
    """

    runs_any_image = False  # it runs this project's implementations of the images it knows

    def __init__(self, scripts: ScriptRuntime | None = None):
        self._lock = threading.Lock()
        self._running: set[ProcessContainer | ScriptContainer] = set()
        self._subnets: set[int] = set()  # the loopback /24s given to multi-instance jobs, never reused
        self.scripts = scripts

    def start(
        self,
        image: ContainerImage,
        mode: Mode,
        job_dir: Path,
        environment: Mapping[str, str] | None = None,
        limits: Limits | None = None,
    ) -> ProcessContainer:
        environment = dict(environment or {})
        if limits is not None and limits.cpus:
            environment.setdefault("OMP_NUM_THREADS", str(limits.cpus))
        if self.scripts is not None and self.scripts.handles(image, mode, job_dir, environment):
            script = self.scripts.start(image, mode, job_dir, environment, on_end=self._forget)
            with self._lock:  # for shutdown; one that already ended has been forgotten
                if script.exit_status is None:
                    self._running.add(script)
            return script
        request = {"image": asdict(image), "mode": mode, "job_dir": str(job_dir), "environment": environment}
        output_r, output_w = os.pipe()
        status_r, status_w = os.pipe()
        try:
            pid = _zygote.fork(request, output_w, status_w)
        except BaseException:
            for fd in (output_r, status_r):
                os.close(fd)
            raise
        finally:
            for fd in (output_w, status_w):
                os.close(fd)
        with self._lock:  # registered before its watcher can report its end
            container = ProcessContainer(pid, mode, output_r, status_r, on_end=self._forget)
            self._running.add(container)
        if mode == "serve" and not container.wait_until_ready(SERVE_START_TIMEOUT_SECONDS):
            container.kill()
            status = container.wait(5)
            raise ContainerStartError(
                f"the serving container {status.describe()} during start-up"
                if status is not None
                else f"the serving container did not listen within {SERVE_START_TIMEOUT_SECONDS} s"
            )
        return container

    def host_addresses(self, hosts: list[str]) -> dict[str, str] | None:
        """Every host on this machine, each at its own loopback address (127.a.b.1, .2, ...) in a
        /24 of its own per job, so that each can listen on the ports SageMaker's hosts use (the XGBoost
        tracker's 9099) without meeting another job's host. Linux routes all of 127/8 to loopback;
        elsewhere only 127.0.0.1 exists, so there the job runs on one host."""
        if sys.platform != "linux" or len(hosts) > 254:
            return None
        with self._lock:
            subnet = random.randrange(255 * 256)
            while subnet in self._subnets:
                subnet = random.randrange(255 * 256)
            self._subnets.add(subnet)
        # 127.0.x.y is left to the machine's own services; the second octet is 1..255.
        second, third = subnet // 256 + 1, subnet % 256
        return {host: f"127.{second}.{third}.{number}" for number, host in enumerate(hosts, 1)}

    def _forget(self, container: ProcessContainer | ScriptContainer) -> None:
        with self._lock:
            self._running.discard(container)

    def running(self) -> list[ProcessContainer | ScriptContainer]:
        with self._lock:
            return list(self._running)

    def shutdown(self) -> None:
        for container in self.running():
            container.kill()
        for container in self.running():
            container.wait(5)
