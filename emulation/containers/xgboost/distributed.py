"""Training across hosts through XGBoost's own collective, as the image's ``distributed`` module does.

The hosts are those of ``resourceconfig.json``, sorted; the first is the master: it runs XGBoost's
``RabitTracker`` on port 9099 of its own address, and every host (the master too) joins the
collective with its index in that order as task id, so ranks are deterministic. Joining happens
twice, as in the image: first to learn which hosts have data (a host without its share of the data
leaves, exit 0), then, on the next port, to train with those that do. XGBoost then allreduces the
gradient statistics every round, so every host builds the same trees and sees the same (global)
evaluation; only the master writes the model.

The images' xgboost releases speak three dialects of the same protocol (:class:`_Api`): ``rabit``
with a Python tracker up to 1.6, ``collective`` with a Python tracker and upper-case ``DMLC_*``
arguments in 1.7, ``collective`` with a native tracker and lower-case ``dmlc_*`` arguments from 2.0.
xgboost 0.90 ships no tracker (its image carried a patched copy of dmlc's), so across hosts it fails
with a clear reason.

Host names resolve through DNS, as on SageMaker; a runner that runs the hosts side by side on one
machine gives the containers a host map instead (:data:`emulation.containers.HOST_ADDRESSES_VARIABLE`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import warnings
from collections.abc import Callable
from typing import Any

import xgboost

from emulation.containers import HOST_ADDRESSES_VARIABLE
from emulation.containers.xgboost import AlgorithmError

FIRST_PORT = 9099
#: How long a host waits for a name to resolve and for the tracker to answer, as the image retries.
WAIT_SECONDS = 900

logger = logging.getLogger("emulation.containers.xgboost")


def resolve(host: str) -> str:
    """``host``'s address: from the runner's host map when it gave one, else from DNS (retried, as a
    container's name may be registered a moment after it starts)."""
    addresses = json.loads(os.environ.get(HOST_ADDRESSES_VARIABLE) or "{}")
    if host in addresses:
        return addresses[host]
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        try:
            return socket.gethostbyname(host)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def wait_hostname_resolution(hosts: list[str]) -> None:
    for host in hosts:
        resolve(host)


def rabit_run(
    train: Callable[[bool], None], include_in_training: bool, hosts: list[str], current_host: str
) -> None:
    """Run ``train(is_master)`` in the collective of the hosts that have data, as the image does."""
    with Collective(hosts, current_host, FIRST_PORT) as first:
        included = [
            record["host"]
            for record in first.synchronize(
                {"host": current_host, "include_in_training": include_in_training}
            )
            if record["include_in_training"]
        ]
    if not include_in_training:
        logger.warning(f"Host {current_host} not being used for distributed training.")
        return
    if len(included) > 1:
        with Collective(included, current_host, FIRST_PORT + 1) as cluster:
            train(cluster.is_master)
    elif len(included) == 1:
        train(True)
    else:
        raise RuntimeError("No hosts received training data.")


def is_distributed() -> bool:
    try:
        return _Api.current().world_size() > 1
    except Exception:  # no communicator in this process, or no collective in this xgboost
        return False


def broadcast(value: Any, root: int = 0) -> Any:
    """``value`` from rank ``root`` on every host (itself where training is on one host)."""
    return _Api.current().broadcast(value, root) if is_distributed() else value


class Collective:
    """Joins XGBoost's collective on entry (starting its tracker on the master) and leaves on exit."""

    def __init__(self, hosts: list[str], current_host: str, port: int):
        self.hosts = sorted(hosts)
        self.current_host = current_host
        self.port = port
        self.master_host = self.hosts[0]
        self.is_master = current_host == self.master_host
        self._api = _Api.current()
        self._stop_tracker: Callable[[], None] | None = None
        self._leave: Callable[[], None] | None = None

    def __enter__(self) -> Collective:
        tracker_address = resolve(self.master_host)
        if self.is_master:
            arguments, self._stop_tracker = self._api.start_tracker(
                tracker_address, self.port, len(self.hosts)
            )
            logger.info(f"RabitTracker started, worker_args: {arguments}")
        task = str(self.hosts.index(self.current_host))
        try:
            self._leave = self._api.join(tracker_address, self.port, task, len(self.hosts))
        except BaseException:
            self._stop()
            raise
        logger.info("Connected to RabitTracker.")
        logger.info(f"Rabit started - Rank {self._api.rank()} of {self._api.world_size()}")
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            if self._leave is not None:
                self._leave()
        finally:
            self._stop()

    def synchronize(self, data: dict) -> list[dict]:
        """Every host's ``data``, in rank order (one broadcast per rank, as the image does it)."""
        rank, text = self._api.rank(), json.dumps(data)
        return [
            json.loads(self._api.broadcast(text if rank == root else "", root))
            for root in range(self._api.world_size())
        ]

    def _stop(self) -> None:
        stop, self._stop_tracker = self._stop_tracker, None
        if stop is not None:
            stop()


class _Api:
    """The running xgboost's collective: its tracker, how a worker joins, rank, size, broadcast."""

    @staticmethod
    def current() -> _Api:
        major, minor = (int(part) for part in xgboost.__version__.split(".")[:2])
        if major >= 2:
            return _NativeCollective()
        if (major, minor) >= (1, 7):
            return _PythonCollective()
        return _Rabit()

    def rank(self) -> int:
        from xgboost import collective

        return collective.get_rank()

    def world_size(self) -> int:
        from xgboost import collective

        return collective.get_world_size()

    def broadcast(self, value: Any, root: int) -> Any:
        from xgboost import collective

        return collective.broadcast(value, root)


class _NativeCollective(_Api):
    """xgboost 2.0 and later."""

    def start_tracker(self, address: str, port: int, workers: int):
        from xgboost.tracker import RabitTracker

        tracker = RabitTracker(n_workers=workers, host_ip=address, port=port, sortby="task")
        tracker.start()

        def stop() -> None:
            try:
                tracker.wait_for(timeout=5)
            except Exception:
                pass
            tracker.free()

        return tracker.worker_args(), stop

    def join(self, address: str, port: int, task: str, workers: int) -> Callable[[], None]:
        """The tracker may not listen yet: ask again (xgboost's own back-off waits seconds)."""
        from xgboost import collective

        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            context = collective.CommunicatorContext(
                dmlc_tracker_uri=address, dmlc_tracker_port=port, dmlc_task_id=task, dmlc_retry=1,
                dmlc_timeout=WAIT_SECONDS,
            )  # fmt: skip
            try:
                with warnings.catch_warnings():  # its "Retrying connection" warning, once per attempt
                    warnings.simplefilter("ignore")
                    context.__enter__()
                return lambda: context.__exit__(None, None, None)
            except xgboost.core.XGBoostError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


class _PythonCollective(_Api):
    """xgboost 1.7: ``collective`` with the Python tracker."""

    def start_tracker(self, address: str, port: int, workers: int):
        from xgboost.tracker import RabitTracker

        tracker = RabitTracker(host_ip=address, n_workers=workers, port=port, sortby="task")
        tracker.start(workers)
        return tracker.worker_envs(), lambda: _end_python_tracker(tracker)

    def join(self, address: str, port: int, task: str, workers: int) -> Callable[[], None]:
        """Initialised once only, so it waits for the tracker itself (one try a second)."""
        from xgboost import collective

        context = collective.CommunicatorContext(
            DMLC_TRACKER_URI=address, DMLC_TRACKER_PORT=port, DMLC_TASK_ID=task,
            DMLC_WORKER_CONNECT_RETRY=WAIT_SECONDS,
        )  # fmt: skip
        context.__enter__()
        return lambda: context.__exit__(None, None, None)


class _Rabit(_Api):
    """xgboost 1.0 to 1.6: ``rabit``, with the Python tracker (0.90 has none)."""

    def start_tracker(self, address: str, port: int, workers: int):
        try:
            from xgboost.tracker import RabitTracker
        except ImportError:
            raise AlgorithmError(
                f"Distributed training across hosts needs XGBoost's RabitTracker, which xgboost "
                f"{xgboost.__version__} does not ship; run this image version on one instance."
            ) from None
        tracker = RabitTracker(hostIP=address, nslave=workers, port=port, port_end=port + 1)
        tracker.start(workers)
        return tracker.slave_envs(), lambda: _end_python_tracker(tracker)

    def join(self, address: str, port: int, task: str, workers: int) -> Callable[[], None]:
        from xgboost import rabit

        rabit.init(
            [
                f"DMLC_NUM_WORKER={workers}".encode(),
                f"DMLC_TRACKER_URI={address}".encode(),
                f"DMLC_TRACKER_PORT={port}".encode(),
                f"DMLC_TASK_ID={task}".encode(),
                f"DMLC_WORKER_CONNECT_RETRY={WAIT_SECONDS}".encode(),
            ]
        )
        return rabit.finalize

    def rank(self) -> int:
        from xgboost import rabit

        return rabit.get_rank()

    def world_size(self) -> int:
        from xgboost import rabit

        return rabit.get_world_size()

    def broadcast(self, value: Any, root: int) -> Any:
        from xgboost import rabit

        return rabit.broadcast(value, root)


def _end_python_tracker(tracker) -> None:
    """Give the tracker's thread a moment to see every worker leave, then close its socket."""
    if tracker.thread is not None:
        tracker.thread.join(5)
    tracker.sock.close()
