"""Start container processes quickly and in isolation.

Training jobs, transform jobs and endpoints each run in their own process, so a crash (even a
segfault or a kill) is that job's failure, never the emulator's. A tuning run is dozens of short
jobs, so processes are forked from a forkserver that has already imported xgboost: a job starts
in tens of milliseconds instead of paying an interpreter start-up and an xgboost import each time.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import sys
import threading
import traceback
from collections.abc import Iterator
from multiprocessing import forkserver, popen_forkserver, reduction, spawn, util
from multiprocessing.context import ForkServerProcess, set_spawning_popen
from pathlib import Path

from emulation.containers.images import ContainerImage

_PRELOAD = [
    "emulation.containers.launcher",
    "emulation.containers.xgboost.training",
    "emulation.containers.xgboost.inference",
    "emulation.containers.serving",
]
_context = multiprocessing.get_context("forkserver")
_context.set_forkserver_preload(_PRELOAD)
_warm_lock = threading.Lock()
#: Containers share this machine's cores (a tuning run trains several at once). With OpenMP's
#: default busy-waiting, two threads on a busy 2-core machine train ~10x slower than one; passive
#: waiting keeps multi-threaded training fast. Applied only to the container processes.
CONTAINER_ENVIRONMENT = {"OMP_WAIT_POLICY": "PASSIVE"}


def warm_up() -> None:
    """Start the forkserver (and its xgboost import) ahead of the first job; safe to call often."""
    with _warm_lock:
        added = {k: v for k, v in CONTAINER_ENVIRONMENT.items() if k not in os.environ}
        os.environ.update(added)  # the forkserver inherits the environment it starts with
        try:
            forkserver.ensure_running()
        finally:
            for key in added:
                os.environ.pop(key, None)


class _IsolatedPopen(popen_forkserver.Popen):
    """The forkserver's Popen, minus re-running the caller's ``__main__`` in every child.

    multiprocessing re-imports the parent's main module in each child so that pickled functions
    defined there resolve. Container entry points live in this module, so that import only costs
    time (a CLI's imports) or does harm (a script without a ``__name__`` guard runs again).
    The rest is ``popen_forkserver.Popen._launch`` unchanged.
    """

    def _launch(self, process_obj):
        prep_data = spawn.get_preparation_data(process_obj._name)
        prep_data.pop("init_main_from_name", None)
        prep_data.pop("init_main_from_path", None)
        buf = io.BytesIO()
        set_spawning_popen(self)
        try:
            reduction.dump(prep_data, buf)
            reduction.dump(process_obj, buf)
        finally:
            set_spawning_popen(None)
        self.sentinel, w = forkserver.connect_to_new_process(self._fds)
        parent_w = os.dup(w)
        self.finalizer = util.Finalize(self, util.close_fds, (parent_w, self.sentinel))
        with open(w, "wb", closefd=True) as f:
            f.write(buf.getbuffer())
        self.pid = forkserver.read_signed(self.sentinel)


class _Process(ForkServerProcess):
    @staticmethod
    def _Popen(process_obj):
        return _IsolatedPopen(process_obj)


def warm_up_in_background() -> None:
    threading.Thread(target=warm_up, name="container-warm-up", daemon=True).start()


class ContainerProcess:
    """A running container: its process and the merged stdout/stderr it prints, line by line."""

    def __init__(self, target, args: tuple):
        warm_up()
        self._reader, writer = _context.Pipe(duplex=False)
        self.process = _Process(target=target, args=(*args, writer), daemon=True)
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
