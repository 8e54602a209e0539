"""Fault injection and stress: real processes, real signals, no mocks.

What a user relies on: a container's end is reported once and truly (no spurious failure under
concurrency), containers stay under the emulator's control whatever happens to the machinery that
started them, and nothing the emulator started outlives it.
"""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from emulation.containers.images import resolve
from emulation.runners import ContainerStartError, ExitStatus
from emulation.runners.process import ProcessRunner, zygote_pid

IMAGE = resolve("683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1")


@pytest.fixture
def runner():
    runner = ProcessRunner()
    yield runner
    runner.shutdown()


def _model_dir(tmp_path: Path) -> Path:
    (tmp_path / "model").mkdir(exist_ok=True)
    return tmp_path


def test_every_concurrent_container_reports_its_own_true_exit_status(runner, tmp_path):
    """Many containers ending at once, watched from many threads: each gets its real code, once."""

    def train_without_hyperparameters(number: int) -> tuple[ExitStatus, str]:
        job_dir = tmp_path / f"job-{number}"
        (job_dir / "input" / "config").mkdir(parents=True)
        container = runner.start(IMAGE, "train", job_dir)
        output = list(container.logs())
        return container.wait(), (job_dir / "output" / "failure").read_text(), output

    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(train_without_hyperparameters, range(48)))
    assert {status for status, _, _ in results} == {ExitStatus(code=1)}
    assert {failure for _, failure, _ in results} == {"Missing required hyperparameter: num_round"}


def test_a_killed_container_reports_the_signal(runner, tmp_path):
    container = runner.start(IMAGE, "serve", _model_dir(tmp_path))
    assert container.health()
    os.kill(container.pid, signal.SIGKILL)
    status = container.wait(10)
    assert status == ExitStatus(signal=signal.SIGKILL)
    assert status.docker_code == 137
    assert not container.health()


def test_containers_stay_stoppable_after_the_zygote_died(runner, tmp_path):
    first = runner.start(IMAGE, "serve", _model_dir(tmp_path))
    second = runner.start(IMAGE, "serve", _model_dir(tmp_path))
    os.kill(zygote_pid(), signal.SIGKILL)
    assert first.health() and second.health()  # containers outlive the zygote
    first.kill()
    assert first.wait(10) == ExitStatus(signal=signal.SIGKILL)
    second.stop(grace=5)
    assert second.wait(10) == ExitStatus(signal=signal.SIGTERM)
    third = runner.start(IMAGE, "serve", _model_dir(tmp_path))  # a new zygote forks it
    assert third.health()
    runner.shutdown()
    assert third.wait(10) is not None
    assert runner.running() == []


def test_a_serving_container_that_cannot_start_is_reported(runner, tmp_path):
    broken = {"SAGEMAKER_MAX_PAYLOAD_IN_MB": "not a number"}
    with pytest.raises(ContainerStartError, match="exited with code 1 during start-up"):
        runner.start(IMAGE, "serve", _model_dir(tmp_path), broken)
