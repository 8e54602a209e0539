"""Start container processes quickly and in isolation.

Training jobs, transform jobs and endpoints each run in their own process, so a crash (even a
segfault or a kill) is that job's failure, never the emulator's. A tuning run is dozens of short
jobs, so processes are forked from a forkserver that has already imported xgboost: a job starts
in tens of milliseconds instead of paying an interpreter start-up and an xgboost import each time.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path

from emulation.containers.images import ContainerImage

_PRELOAD = [
    "emulation.containers.xgboost.training",
    "emulation.containers.xgboost.inference",
    "emulation.containers.serving",
]
_context = multiprocessing.get_context("forkserver")
_context.set_forkserver_preload(_PRELOAD)
_warm_lock = threading.Lock()


def warm_up() -> None:
    """Start the forkserver (and its xgboost import) ahead of the first job; safe to call often."""
    with _warm_lock:
        from multiprocessing import forkserver

        forkserver.ensure_running()


def warm_up_in_background() -> None:
    threading.Thread(target=warm_up, name="container-warm-up", daemon=True).start()


class ContainerProcess:
    """A running container: its process and the merged stdout/stderr it prints, line by line."""

    def __init__(self, target, args: tuple):
        warm_up()
        self._reader, writer = _context.Pipe(duplex=False)
        self.process = _context.Process(target=target, args=(*args, writer), daemon=True)
        self.process.start()
        writer.close()

    def lines(self) -> Iterator[str]:
        """Yield the container's output lines until it closes its stdout (normally: it exited)."""
        with os.fdopen(os.dup(self._reader.fileno()), "rb") as stream:
            for raw in stream:
                yield raw.decode("utf-8", "replace").rstrip("\n")
        self._reader.close()

    def wait(self, timeout: float | None = None) -> int | None:
        self.process.join(timeout)
        return self.process.exitcode

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()


def start_training(prefix: Path, image: ContainerImage) -> ContainerProcess:
    return ContainerProcess(_train_main, (str(prefix), image.version))


def start_serving(
    model_dir: Path, image: ContainerImage, environment: dict[str, str]
) -> tuple[ContainerProcess, int]:
    """Start a serving container; returns it with the TCP port its HTTP server listens on."""
    port_reader, port_writer = _context.Pipe(duplex=False)
    container = ContainerProcess(_serve_main, (str(model_dir), image.version, environment, port_writer))
    port_writer.close()
    if not port_reader.poll(60):
        container.kill()
        raise RuntimeError("the serving container did not start within 60 s")
    try:
        port = port_reader.recv()
    except EOFError:
        port = None
    finally:
        port_reader.close()
    if not port:
        raise RuntimeError("the serving container exited during start-up")
    return container, port


def _redirect_output(writer) -> None:
    os.dup2(writer.fileno(), 1)
    os.dup2(writer.fileno(), 2)
    writer.close()
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", closefd=False)
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", closefd=False)


def _train_main(prefix: str, version: str, writer) -> None:
    """The container's ``train`` entry point: exit 0 on success, else write output/failure and exit 1."""
    from emulation.containers.xgboost import training

    _redirect_output(writer)
    root = Path(prefix)
    try:
        training.train(root, version)
    except Exception as error:  # every failure becomes the job's FailureReason, as in the real container
        if not isinstance(error, (training.UserError, training.AlgorithmError)):
            traceback.print_exc()
        (root / "output").mkdir(parents=True, exist_ok=True)
        (root / "output" / "failure").write_text(training.failure_reason(error))
        sys.stdout.flush()
        os._exit(1)
    sys.stdout.flush()
    os._exit(0)


def _serve_main(model_dir: str, version: str, environment: dict[str, str], port_writer, writer) -> None:
    from emulation.containers import serving

    _redirect_output(writer)
    os.environ.update(environment)
    serving.serve(
        Path(model_dir), version, on_listening=lambda port: (port_writer.send(port), port_writer.close())
    )
