"""Training across hosts through XGBoost's own collective, as the image's ``distributed`` module does.

The hosts are those of ``resourceconfig.json``, sorted; the first is the master: it runs XGBoost's
``RabitTracker`` on port 9099 of its own address, and every host (the master too) joins the
collective with its index in that order as task id, so ranks are deterministic. Joining happens
twice, as in the image: first to learn which hosts have data (a host without its share of the data
leaves, exit 0), then, on the next port, to train with those that do. XGBoost then allreduces the
gradient statistics every round, so every host builds the same trees and sees the same (global)
evaluation; only the master writes the model.

One code path for both collective APIs the images use: xgboost 1.7 (a Python tracker, upper-case
``DMLC_*`` arguments, ``start(n_workers)``) and 2.0+ (a native tracker, lower-case ``dmlc_*``
arguments, ``worker_args()``).

Host names resolve through DNS, as on SageMaker; a runner that runs the hosts side by side on one
machine gives the containers a host map instead (:data:`emulation.runners.HOST_ADDRESSES_VARIABLE`).
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
from xgboost import collective
from xgboost.tracker import RabitTracker

from emulation.runners import HOST_ADDRESSES_VARIABLE

FIRST_PORT = 9099
#: How long a host waits for a name to resolve and for the tracker to answer, as the image retries.
WAIT_SECONDS = 900
_NATIVE_TRACKER = int(xgboost.__version__.split(".")[0]) >= 2

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
        return collective.get_world_size() > 1
    except Exception:  # no communicator in this process
        return False


def broadcast(value: Any, root: int = 0) -> Any:
    """``value`` from rank ``root`` on every host (itself where training is on one host)."""
    return collective.broadcast(value, root) if is_distributed() else value


class Collective:
    """Joins XGBoost's collective on entry (starting its tracker on the master) and leaves on exit."""

    def __init__(self, hosts: list[str], current_host: str, port: int):
        self.hosts = sorted(hosts)
        self.current_host = current_host
        self.port = port
        self.master_host = self.hosts[0]
        self.is_master = current_host == self.master_host
        self._tracker = None
        self._context = None

    def __enter__(self) -> Collective:
        tracker_address = resolve(self.master_host)
        if self.is_master:
            self._tracker = _start_tracker(tracker_address, self.port, len(self.hosts))
            logger.info(f"RabitTracker started, worker_args: {_tracker_arguments(self._tracker)}")
        task = str(self.hosts.index(self.current_host))
        try:
            self._context = _join(tracker_address, self.port, task)
        except Exception:
            self._stop_tracker()
            raise
        logger.info("Connected to RabitTracker.")
        logger.info(f"Rabit started - Rank {collective.get_rank()} of {collective.get_world_size()}")
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            if self._context is not None:
                self._context.__exit__(None, None, None)
        finally:
            self._stop_tracker()

    def synchronize(self, data: dict) -> list[dict]:
        """Every host's ``data``, in rank order (one broadcast per rank, as the image does it)."""
        rank = collective.get_rank()
        text = json.dumps(data)
        return [
            json.loads(collective.broadcast(text if rank == root else "", root))
            for root in range(collective.get_world_size())
        ]

    def _stop_tracker(self) -> None:
        tracker, self._tracker = self._tracker, None
        if tracker is None:
            return
        if _NATIVE_TRACKER:
            try:
                tracker.wait_for(timeout=5)
            except Exception:
                pass
            tracker.free()
        else:
            tracker.thread.join(5)
            tracker.sock.close()


def _start_tracker(address: str, port: int, workers: int):
    if _NATIVE_TRACKER:
        tracker = RabitTracker(n_workers=workers, host_ip=address, port=port, sortby="task")
        tracker.start()
    else:
        tracker = RabitTracker(host_ip=address, n_workers=workers, port=port, sortby="task")
        tracker.start(workers)
    return tracker


def _tracker_arguments(tracker) -> dict:
    return tracker.worker_args() if _NATIVE_TRACKER else tracker.worker_envs()


def _join(tracker_address: str, port: int, task: str):
    """Enter the communicator. The tracker may not listen yet: xgboost 2+ fails fast and is asked
    again (its own back-off waits seconds); 1.7 cannot be initialised twice, so it retries inside."""
    if not _NATIVE_TRACKER:
        context = collective.CommunicatorContext(
            DMLC_TRACKER_URI=tracker_address,
            DMLC_TRACKER_PORT=port,
            DMLC_TASK_ID=task,
            DMLC_WORKER_CONNECT_RETRY=WAIT_SECONDS,
        )
        context.__enter__()
        return context
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        context = collective.CommunicatorContext(
            dmlc_tracker_uri=tracker_address,
            dmlc_tracker_port=port,
            dmlc_task_id=task,
            dmlc_retry=1,
            dmlc_timeout=WAIT_SECONDS,
        )
        try:
            with warnings.catch_warnings():  # its "Retrying connection" warning, once per attempt
                warnings.simplefilter("ignore")
                context.__enter__()
            return context
        except xgboost.core.XGBoostError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
