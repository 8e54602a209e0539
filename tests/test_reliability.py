"""Fault injection and stress: real processes, real signals, no mocks.

What a user relies on: a container's end is reported once and truly (no spurious failure under
concurrency), containers stay under the emulator's control whatever happens to the machinery that
started them, and nothing the emulator started outlives it.
"""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import psutil
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


# -- the emulator's own end: nothing it started outlives it ------------------------------------

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ROLE = "arn:aws:iam::000000000000:role/SageLocalExecutionRole"
TINY_CSV = "".join(f"{i % 7},{i},{i * 2 % 5}\n" for i in range(40))


def _wait(describe, key: str, done: tuple[str, ...], timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = describe()
        if described[key] in done:
            return described
        time.sleep(0.05)
    raise AssertionError(f"still {described[key]} after {timeout} s")


class EmulatorProcess:
    """``sagelocal emulator`` as its own process (optionally as PID 1 of a new PID namespace)."""

    def __init__(self, data_dir: Path, as_pid_1: bool):
        command = [sys.executable, "-m", "workflows.cli", "emulator", "--port", "0"]
        if as_pid_1:
            command = ["unshare", "--pid", "--fork", "--mount-proc", *command]
        environment = {
            **os.environ,
            "SAGELOCAL_DATA_DIR": str(data_dir),
            "PYTHONPATH": os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p),
        }
        self.launcher = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=environment)
        line = self.launcher.stdout.readline()
        self.url = re.search(r"(http://\S+)", line)[1]
        # as PID 1 the emulator is unshare's child; either way, the process that serves
        outer = psutil.Process(self.launcher.pid)
        self.process = outer.children()[0] if as_pid_1 else outer

    def client(self, service: str):
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    def start_workloads(self) -> None:
        """An endpoint with two instances, a long training job and a warm Lambda worker."""
        s3, sagemaker = self.client("s3"), self.client("sagemaker")
        s3.create_bucket(Bucket="work")
        s3.put_object(Bucket="work", Key="train/data.csv", Body=TINY_CSV.encode())
        sagemaker.create_model(ModelName="m", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": IMAGE.uri})
        sagemaker.create_endpoint_config(
            EndpointConfigName="c",
            ProductionVariants=[
                {
                    "VariantName": "v",
                    "ModelName": "m",
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": 2,
                }
            ],
        )
        sagemaker.create_endpoint(EndpointName="e", EndpointConfigName="c")
        sagemaker.create_training_job(
            TrainingJobName="long",
            RoleArn=ROLE,
            AlgorithmSpecification={"TrainingImage": IMAGE.uri, "TrainingInputMode": "File"},
            OutputDataConfig={"S3OutputPath": "s3://work/output"},
            ResourceConfig={"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5},
            StoppingCondition={"MaxRuntimeInSeconds": 3600},
            HyperParameters={"num_round": "1000000", "eta": "0.0001", "objective": "reg:squarederror"},
            InputDataConfig=[
                {
                    "ChannelName": "train",
                    "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://work/train/"}},
                    "ContentType": "text/csv",
                }
            ],
        )
        _wait(
            lambda: sagemaker.describe_endpoint(EndpointName="e"), "EndpointStatus", ("InService", "Failed")
        )
        _wait(
            lambda: sagemaker.describe_training_job(TrainingJobName="long"), "SecondaryStatus", ("Training",)
        )
        self.client("iam").create_role(RoleName="lambda-role", AssumeRolePolicyDocument="{}")
        lam = self.client("lambda")
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("app.py", "def handler(event, context):\n    return 'ok'\n")
        lam.create_function(
            FunctionName="f",
            Runtime="python3.12",
            Role="arn:aws:iam::000000000000:role/lambda-role",
            Handler="app.handler",
            Code={"ZipFile": code.getvalue()},
        )
        assert lam.invoke(FunctionName="f")["Payload"].read() == b'"ok"'

    def started(self) -> list[psutil.Process]:
        return self.process.children(recursive=True)


def _left_running(processes: list[psutil.Process], timeout: float = 30.0) -> list[str]:
    """Those still running (zombies count as ended) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        if not alive or time.monotonic() > deadline:
            return [" ".join(p.cmdline()[:3]) for p in alive]
        time.sleep(0.1)


@pytest.mark.parametrize("as_pid_1", [False, True], ids=["subprocess", "pid-1"])
@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_nothing_the_emulator_started_outlives_it(tmp_path, as_pid_1, signal_number):
    if as_pid_1 and subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"]).returncode != 0:
        pytest.skip("unshare --pid needs privileges this machine does not give")
    emulator = EmulatorProcess(tmp_path, as_pid_1)
    try:
        emulator.start_workloads()
        started = emulator.started()
        zygotes = [
            p for p in emulator.process.children() if "emulation.runners.zygote" in " ".join(p.cmdline())
        ]
        assert len(zygotes) == 1
        assert len(zygotes[0].children()) == 3  # 2 serving containers and 1 training container
        assert len(started) >= 5  # and a Lambda worker
        emulator.process.send_signal(signal_number)
        if signal_number == signal.SIGTERM:  # a clean end, well within `docker stop`'s 10 s
            assert emulator.launcher.wait(10) == 0
        assert _left_running(started) == []
    finally:
        emulator.launcher.kill()
        emulator.launcher.wait()
