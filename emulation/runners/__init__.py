"""Runners: how a SageMaker container contract gets run, behind one small interface.

Services (training, transform, hosting, processing, tuning) ask a runner to ``start`` an image in a
mode (``train``, ``serve`` or ``process``) on a job directory (the container's ``/opt/ml``) and get
back a :class:`Container` handle. They never know how it runs: ``process`` (child processes forked
from a warm zygote, :mod:`emulation.runners.process`) today, a Docker runner later.

The rules every runner keeps, because services rely on them:

- exactly one owner learns a container's exit status (no two readers racing for it);
- a container dies with the emulator however the emulator ends (Ctrl-C, SIGTERM, SIGKILL, crash);
- ``stop`` and ``kill`` always reach the container and everything it started, even if the machinery
  that started it (the zygote, a Docker daemon connection) died in the meantime.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from emulation.containers.images import ContainerImage

Mode = Literal["train", "serve", "process"]


@dataclass(frozen=True)
class Limits:
    """What an instance would cap. ``cpus`` sizes the container's thread pools (OpenMP's)."""

    cpus: int | None = None


@dataclass(frozen=True)
class ExitStatus:
    """How a container ended: an exit code, or the signal that killed it."""

    code: int | None = None
    signal: int | None = None

    @property
    def succeeded(self) -> bool:
        return self.code == 0

    @property
    def docker_code(self) -> int | None:
        """The exit code as Docker (hence SageMaker) reports it: 128 + the signal for a killed one."""
        return 128 + self.signal if self.signal is not None else self.code

    def describe(self) -> str:
        """For logs: ``exited with code 1`` / ``was killed by signal 9 (SIGKILL)`` / ``ended``."""
        if self.signal is not None:
            try:
                name = signal.Signals(self.signal).name
            except ValueError:
                name = "unknown"
            return f"was killed by signal {self.signal} ({name})"
        if self.code is not None:
            return f"exited with code {self.code}"
        return "ended (its exit status was lost)"


#: What a training or processing container's end looks like in FailureReason when it left no
#: failure file: the service's own wording, with Docker's exit code (137 for a SIGKILL).
def algorithm_error(status: ExitStatus, message: str = "") -> str:
    return f"AlgorithmError: {message}, exit code: {status.docker_code if status.docker_code is not None else 'unknown'}"


def answers_ping(address: tuple[str, int] | None, timeout: float) -> bool:
    """Whether a serving container at ``address`` answers ``GET /ping`` with 200 within ``timeout``."""
    if address is None:
        return False
    import http.client

    connection = http.client.HTTPConnection(*address, timeout=timeout)
    try:
        connection.request("GET", "/ping")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


class ContainerStartError(RuntimeError):
    """The container could not start, or it ended before it was ready (``serve``: listening)."""


class Container(Protocol):
    """A started container. Safe to use from any thread."""

    #: ``serve`` mode: where its HTTP server listens (host, port); None for the other modes.
    address: tuple[str, int] | None

    def logs(self) -> Iterator[str]:
        """Its stdout and stderr merged, line by line, until it ends. Exactly one consumer must read
        them: a container whose output nobody reads blocks once the pipe is full."""

    def wait(self, timeout: float | None = None) -> ExitStatus | None:
        """Block until it ends (or ``timeout`` passes: None); the same status for every caller."""

    @property
    def exit_status(self) -> ExitStatus | None:
        """How it ended; None while it runs."""

    def health(self, timeout: float = 2.0) -> bool:
        """Running and, in ``serve`` mode, answering ``GET /ping`` with 200 within ``timeout``."""

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM now, SIGKILL after ``grace`` seconds if it still runs (as ``docker stop``); does not wait."""

    def kill(self) -> None:
        """SIGKILL it and everything it started, now; does not wait."""


class Runner(Protocol):
    #: Whether it runs images themselves (any URI), or stands in for the images it knows.
    runs_any_image: bool

    def start(
        self,
        image: ContainerImage,
        mode: Mode,
        job_dir: Path,
        environment: Mapping[str, str] | None = None,
        limits: Limits | None = None,
    ) -> Container:
        """Start ``image`` in ``mode`` with ``job_dir`` as its /opt/ml; ``serve`` returns once it listens.

        Raises :class:`ContainerStartError` if it cannot start or ends before it is ready.
        """

    def host_addresses(self, hosts: list[str]) -> dict[str, str] | None:
        """Addresses at which the containers of one multi-instance job, one per host, reach each
        other (given to them in ``HOST_ADDRESSES_VARIABLE``); None if it cannot run them side by side."""

    def shutdown(self) -> None:
        """Kill every container it started and release its own helpers."""


RUNNERS = ("process", "docker", "auto")


def make_runner(config) -> Runner:
    """The runner ``config.runner`` names (an ``EmulatorConfig``); the one place that chooses."""
    name = config.runner
    if name not in RUNNERS:
        raise ValueError(f"unknown runner {name!r}: choose one of {', '.join(RUNNERS)}")
    if name == "auto":
        from emulation.runners import docker

        name = "docker" if docker.daemon_answers() else "process"
    if name == "docker":
        from emulation.runners.docker import DockerRunner

        return DockerRunner()
    from emulation.containers.environments import EnvironmentCache
    from emulation.containers.scriptmode.runtime import ScriptRuntime
    from emulation.runners.process import ProcessRunner

    return ProcessRunner(ScriptRuntime(EnvironmentCache(config.cache_dir / "environments")))
