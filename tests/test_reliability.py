"""Fault injection and stress: real processes, real signals, no mocks.

What a user relies on: a container's end is reported once and truly (no spurious failure under
concurrency), containers stay under the emulator's control whatever happens to the machinery that
started them, and nothing the emulator started outlives it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import botocore.config
import botocore.exceptions
import psutil
import pytest

from emulation import sandbox
from emulation.containers.images import resolve
from emulation.runners import ContainerStartError, ExitStatus, Limits
from emulation.runners.process import ProcessRunner, zygote_pid
from emulation.sagemaker import instances

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
            "SAGELOCAL_ROLE_PROPAGATION_SECONDS": "0",  # a role is used right after CreateRole; the delay is test_strictness's
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
        """An endpoint with two instances, a long training job, a warm Lambda worker and a busy one
        whose handler started a program of its own in a session of its own."""
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
            entry = zipfile.ZipInfo("app.py")
            entry.external_attr = 0o644 << 16  # readable, as Lambda requires of a package's files
            archive.writestr(entry, BUSY_HANDLER)
        lam.create_function(
            FunctionName="f",
            Runtime="python3.12",
            Role="arn:aws:iam::000000000000:role/lambda-role",
            Handler="app.handler",
            Code={"ZipFile": code.getvalue()},
            Timeout=900,
        )
        lam.get_waiter("function_active_v2").wait(FunctionName="f", WaiterConfig={"Delay": 0.2})
        # Without a sandbox there is no PID namespace that ends with the worker: what a handler starts
        # itself may outlive the emulator there (the README says so), so it starts nothing.
        spawn = sandbox.available()
        lam.invoke(
            FunctionName="f", InvocationType="Event", Payload=json.dumps({"busy": True, "spawn": spawn})
        )
        assert lam.invoke(FunctionName="f", Payload=b"{}")["Payload"].read() == b'"ok"'
        deadline = time.monotonic() + 60
        while True:
            started = self.started()
            workers = [p for p in started if _is_lambda_worker(p)]
            spawned = any(_command_line(p).startswith("sleep 3600") for p in started)
            if len(workers) == 2 and (spawned or not spawn):  # the busy one and the warm one
                break
            assert time.monotonic() < deadline, f"{len(workers)} Lambda workers, sleep started: {spawned}"
            time.sleep(0.1)

    def started(self) -> list[psutil.Process]:
        """Every process it started that still runs."""
        return [p for p in self.process.children(recursive=True) if _running(p)]


#: Returns at once, or (``{"busy": true}``) sleeps, as a long invocation does, after starting (with
#: ``"spawn": true``) ``sleep`` in a session of its own, out of reach of a kill of the worker's group.
BUSY_HANDLER = """
import subprocess, time

def handler(event, context):
    if event.get("spawn"):
        subprocess.Popen(["sleep", "3600"], start_new_session=True)
    if event.get("busy"):
        time.sleep(3600)
    return "ok"
"""


def _running(process: psutil.Process) -> bool:
    """Exists and has not ended: a zombie (ended, its status not yet read by its parent) has ended.
    As PID 1 the emulator inherits its descendants' orphans, bubblewrap's among them, and leaves
    them unreaped (an init's work it does not do)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _command_line(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:  # ended meanwhile
        return ""


def _is_lambda_worker(process: psutil.Process) -> bool:
    """The worker program itself (inside its sandbox, if any), not the bubblewrap that started it."""
    try:
        name, argv = process.name(), process.cmdline()
    except psutil.Error:  # ended meanwhile
        return False
    return name != "bwrap" and any(a.endswith(("/var/rapid/init.py", "/awslambda/worker.py")) for a in argv)


def _left_running(processes: list[psutil.Process], timeout: float = 30.0) -> list[str]:
    """Those still running after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in processes if _running(p)]
        if not alive or time.monotonic() > deadline:
            return [_command_line(p)[:120] for p in alive]
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
        zygotes = [p for p in emulator.process.children() if "emulation.runners.zygote" in _command_line(p)]
        assert len(zygotes) == 1
        assert len(zygotes[0].children()) == 3  # 2 serving containers and 1 training container
        emulator.process.send_signal(signal_number)
        if signal_number == signal.SIGTERM:  # a clean end, well within `docker stop`'s 10 s
            assert emulator.launcher.wait(10) == 0
        assert _left_running(started) == []
    finally:  # as PID 1 the emulator is unshare's child, which a kill of unshare leaves running
        with contextlib.suppress(psutil.NoSuchProcess):
            emulator.process.kill()
        emulator.launcher.kill()
        emulator.launcher.wait()


# -- endpoints heal as on AWS ------------------------------------------------------------------

CSV_ROW = b"3,4"


@pytest.fixture(scope="module")
def healing(tmp_path_factory):
    """An emulator of its own with a 2 s container timeout and quick health checks, and an endpoint."""
    import xgboost

    from emulation import Emulator, EmulatorConfig

    directory = tmp_path_factory.mktemp("healing")
    config = EmulatorConfig(
        port=0, data_dir=directory / "data", container_timeout_seconds=2, health_check_interval_seconds=0.2
    )
    features = [[i % 7, i % 5] for i in range(40)]
    booster = xgboost.train(
        {"objective": "reg:squarederror"}, xgboost.DMatrix(features, label=[i % 3 for i in range(40)]), 5
    )
    (directory / "xgboost-model").write_bytes(pickle.dumps(booster))  # as the 1.x images save it
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        tar.add(directory / "xgboost-model", arcname="xgboost-model")
    with Emulator(config) as emulator:
        clients = {
            name: boto3.client(
                name,
                endpoint_url=emulator.url,
                region_name="us-east-1",
                aws_access_key_id="test",
                aws_secret_access_key="test",
                config=botocore.config.Config(retries={"mode": "standard", "max_attempts": 1}),
            )
            for name in ("s3", "sagemaker", "sagemaker-runtime")
        }
        clients["s3"].create_bucket(Bucket="models")
        clients["s3"].put_object(Bucket="models", Key="model.tar.gz", Body=archive.getvalue())
        clients["sagemaker"].create_model(
            ModelName="m",
            ExecutionRoleArn=ROLE,
            PrimaryContainer={"Image": IMAGE.uri, "ModelDataUrl": "s3://models/model.tar.gz"},
        )
        clients["sagemaker"].create_endpoint_config(
            EndpointConfigName="one",
            ProductionVariants=[
                {
                    "VariantName": "v",
                    "ModelName": "m",
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": 1,
                }
            ],
        )
        yield emulator, clients


def _deploy(healing, name: str) -> None:
    _, clients = healing
    clients["sagemaker"].create_endpoint(EndpointName=name, EndpointConfigName="one")
    _wait(lambda: clients["sagemaker"].describe_endpoint(EndpointName=name), "EndpointStatus", ("InService",))


def _instance(healing, name: str):
    emulator, _ = healing
    (container,) = emulator.sagemaker.endpoint(name).variants[0].containers
    return container.container


def _invoke(clients, name: str) -> tuple[str, str]:
    """(error code or "200", message)."""
    try:
        answer = clients["sagemaker-runtime"].invoke_endpoint(
            EndpointName=name, ContentType="text/csv", Body=CSV_ROW
        )
        return "200", answer["Body"].read().decode()
    except botocore.exceptions.ClientError as error:
        return error.response["Error"]["Code"], error.response["Error"]["Message"]


def test_an_endpoint_whose_container_was_killed_serves_again_by_itself(healing):
    _, clients = healing
    _deploy(healing, "killed")
    assert _invoke(clients, "killed")[0] == "200"
    dead = _instance(healing, "killed")
    os.kill(dead.pid, signal.SIGKILL)
    outcomes, counts = [], set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        described = clients["sagemaker"].describe_endpoint(EndpointName="killed")
        assert (
            described["EndpointStatus"] == "InService"
        )  # as on AWS: an instance is replaced, not the endpoint
        counts.add(described["ProductionVariants"][0]["CurrentInstanceCount"])
        outcome = _invoke(clients, "killed")
        outcomes.append(outcome[0])
        if outcome[0] == "200" and _instance(healing, "killed") is not dead:
            break
        time.sleep(0.05)
    assert outcomes[-1] == "200"
    assert set(outcomes) <= {"200", "ServiceUnavailable"}  # never a 500, never a model error
    assert counts <= {0, 1}
    assert dead.exit_status == ExitStatus(signal=signal.SIGKILL)
    described = clients["sagemaker"].describe_endpoint(EndpointName="killed")
    assert described["ProductionVariants"][0]["CurrentInstanceCount"] == 1


def test_a_hung_container_answers_model_error_with_the_services_timeout_message(healing):
    emulator, clients = healing
    _deploy(healing, "hung")
    hung = _instance(healing, "hung")
    os.kill(hung.pid, signal.SIGSTOP)
    try:
        code, message = _invoke(clients, "hung")
        assert code == "ModelError"
        assert message == (
            'Received server error (0) from primary with message "Your invocation timed out while waiting for a '
            "response from container primary. Review the latency metrics for each container in Amazon "
            'CloudWatch, resolve the issue, and try again.". See https://us-east-1.console.aws.amazon.com/'
            "cloudwatch/home?region=us-east-1#logEventViewer:group=/aws/sagemaker/Endpoints/hung in account "
            "000000000000 for more information."
        )
        # It fails its pings, so it is replaced, and the endpoint answers again.
        assert hung.wait(60) == ExitStatus(signal=signal.SIGKILL)
        deadline = time.monotonic() + 60
        while _invoke(clients, "hung")[0] != "200" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _invoke(clients, "hung")[0] == "200"
    finally:
        if hung.exit_status is None:
            os.kill(hung.pid, signal.SIGCONT)


def test_delete_endpoint_stops_its_containers_after_the_zygote_died(healing):
    _, clients = healing
    _deploy(healing, "orphaned")
    container = _instance(healing, "orphaned")
    process = psutil.Process(container.pid)
    os.kill(zygote_pid(), signal.SIGKILL)
    clients["sagemaker"].delete_endpoint(EndpointName="orphaned")
    assert container.wait(10) == ExitStatus(signal=signal.SIGKILL)
    assert _left_running([process]) == []


def test_endpoints_leave_no_files_once_deleted_or_failed(healing):
    emulator, clients = healing
    sagemaker = clients["sagemaker"]
    directory = emulator.config.data_dir / "endpoints"

    def files_of(endpoint: str) -> list[str]:
        return [p.name for p in directory.iterdir() if p.name.startswith(f"{endpoint}-")]

    _deploy(healing, "short-lived")
    assert files_of("short-lived") != []
    sagemaker.delete_endpoint(EndpointName="short-lived")
    assert files_of("short-lived") == []

    sagemaker.create_model(
        ModelName="missing-data",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": IMAGE.uri, "ModelDataUrl": "s3://models/no-such-model.tar.gz"},
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName="missing-data",
        ProductionVariants=[
            {
                "VariantName": "v",
                "ModelName": "missing-data",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    sagemaker.create_endpoint(EndpointName="broken", EndpointConfigName="missing-data")
    failed = _wait(
        lambda: sagemaker.describe_endpoint(EndpointName="broken"), "EndpointStatus", ("Failed", "InService")
    )
    assert failed["EndpointStatus"] == "Failed"
    assert files_of("broken") == []


# -- quotas and the machine's capacity ---------------------------------------------------------


def _client(emulator, service: str):
    return boto3.client(
        service,
        endpoint_url=emulator.url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def _training(name: str, instance_type: str = "ml.m5.large", rounds: int = 3, **hyperparameters) -> dict:
    return {
        "TrainingJobName": name,
        "RoleArn": ROLE,
        "AlgorithmSpecification": {"TrainingImage": IMAGE.uri, "TrainingInputMode": "File"},
        "OutputDataConfig": {"S3OutputPath": "s3://work/output"},
        "ResourceConfig": {"InstanceCount": 1, "InstanceType": instance_type, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "HyperParameters": {"num_round": str(rounds), "objective": "reg:squarederror", **hyperparameters},
        "InputDataConfig": [
            {
                "ChannelName": channel,
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://work/{channel}/"}},
                "ContentType": "text/csv",
            }
            for channel in ("train", "validation")
        ],
    }


@pytest.mark.parametrize(
    "instance_type, expected",
    [
        ("ml.m5.large", 2),
        ("ml.t2.medium", 2),
        ("ml.m4.xlarge", 4),
        ("ml.c5.9xlarge", 36),
        ("ml.p3.2xlarge", 8),
    ],
)
def test_an_instance_types_vcpus_size_its_containers_thread_pools(instance_type, expected):
    assert instances.vcpus(instance_type) == expected
    assert instances.limits(instance_type) == Limits(cpus=min(expected, os.cpu_count()))
    assert instances.limits("ml.serverless") == Limits()


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    """An emulator with a small endpoint quota and room for one running job."""
    from emulation import Emulator, EmulatorConfig

    config = EmulatorConfig(
        port=0,
        data_dir=tmp_path_factory.mktemp("limited"),
        max_running_jobs=1,
        instance_quotas={"ml.m5.large for endpoint usage": 2},
    )
    with Emulator(config) as emulator:
        s3 = _client(emulator, "s3")
        s3.create_bucket(Bucket="work")
        for channel in ("train", "validation"):
            s3.put_object(Bucket="work", Key=f"{channel}/data.csv", Body=TINY_CSV.encode())
        yield emulator


def test_accelerated_instances_exceed_a_new_accounts_quota(limited):
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        _client(limited, "sagemaker").create_training_job(**_training("gpu", "ml.p3.2xlarge"))
    assert refused.value.response["Error"]["Code"] == "ResourceLimitExceeded"
    assert refused.value.response["Error"]["Message"] == (
        "The account-level service limit 'ml.p3.2xlarge for training job usage' is 0 Instances, with current "
        "utilization of 0 Instances and a request delta of 1 Instances. Please contact AWS support to request an "
        "increase for this limit."
    )


def test_endpoints_count_against_the_configured_quota(limited):
    sagemaker = _client(limited, "sagemaker")
    sagemaker.create_model(ModelName="m", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": IMAGE.uri})
    for name, count in (("three", 3), ("two", 2), ("one", 1)):
        sagemaker.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[
                {
                    "VariantName": "v",
                    "ModelName": "m",
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": count,
                }
            ],
        )
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        sagemaker.create_endpoint(EndpointName="too-big", EndpointConfigName="three")
    assert "is 2 Instances, with current utilization of 0 Instances and a request delta of 3" in str(
        refused.value
    )
    sagemaker.create_endpoint(EndpointName="fits", EndpointConfigName="two")
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        sagemaker.create_endpoint(EndpointName="one-more", EndpointConfigName="one")
    assert "with current utilization of 2 Instances and a request delta of 1" in str(refused.value)
    _wait(lambda: sagemaker.describe_endpoint(EndpointName="fits"), "EndpointStatus", ("InService",))
    sagemaker.delete_endpoint(EndpointName="fits")  # frees its instances
    sagemaker.create_endpoint(EndpointName="one-more", EndpointConfigName="one")
    _wait(lambda: sagemaker.describe_endpoint(EndpointName="one-more"), "EndpointStatus", ("InService",))
    sagemaker.delete_endpoint(EndpointName="one-more")  # refused while Creating, as on AWS


def test_jobs_beyond_the_machines_capacity_wait_in_starting(limited):
    sagemaker = _client(limited, "sagemaker")
    sagemaker.create_training_job(**_training("first", rounds=1_000_000, eta="0.0001"))
    _wait(lambda: sagemaker.describe_training_job(TrainingJobName="first"), "SecondaryStatus", ("Training",))
    sagemaker.create_training_job(**_training("second"))
    time.sleep(1)  # a moment in which it could have started, had there been room
    waiting = sagemaker.describe_training_job(TrainingJobName="second")
    assert (waiting["TrainingJobStatus"], waiting["SecondaryStatus"]) == ("InProgress", "Starting")
    sagemaker.stop_training_job(TrainingJobName="first")
    done = _wait(
        lambda: sagemaker.describe_training_job(TrainingJobName="second"),
        "TrainingJobStatus",
        ("Completed", "Failed"),
    )
    assert done["TrainingJobStatus"] == "Completed"
    statuses = [t["Status"] for t in done["SecondaryStatusTransitions"]]
    assert statuses == ["Starting", "Downloading", "Training", "Uploading", "Completed"]


# -- stress: no spurious failure under concurrency ---------------------------------------------


@pytest.fixture(scope="module")
def busy(tmp_path_factory):
    """An emulator that runs up to 12 containers at once, whatever this machine's size."""
    from emulation import Emulator, EmulatorConfig

    config = EmulatorConfig(port=0, data_dir=tmp_path_factory.mktemp("busy"), max_running_jobs=12)
    with Emulator(config) as emulator:
        s3 = _client(emulator, "s3")
        s3.create_bucket(Bucket="work")
        for channel in ("train", "validation"):
            s3.put_object(Bucket="work", Key=f"{channel}/data.csv", Body=TINY_CSV.encode())
        yield emulator


def test_200_small_training_jobs_at_12_way_concurrency_all_complete(busy):
    sagemaker = _client(busy, "sagemaker")

    def train(number: int) -> tuple[str, str]:
        name = f"stress-{number}"
        sagemaker.create_training_job(**_training(name))
        described = _wait(
            lambda: sagemaker.describe_training_job(TrainingJobName=name),
            "TrainingJobStatus",
            ("Completed", "Failed", "Stopped"),
            timeout=600,
        )
        return described["TrainingJobStatus"], described.get("FailureReason", "")

    with ThreadPoolExecutor(12) as pool:
        outcomes = list(pool.map(train, range(200)))
    assert [outcome for outcome in outcomes if outcome[0] != "Completed"] == []


DEFINITION_KEYS = (
    "AlgorithmSpecification",
    "RoleArn",
    "OutputDataConfig",
    "ResourceConfig",
    "StoppingCondition",
    "InputDataConfig",
)


def test_five_tuning_jobs_in_a_row_fail_no_child_that_did_not_fail(busy):
    sagemaker = _client(busy, "sagemaker")
    definition = _training("unused")
    for number in range(5):
        name = f"tuning-{number}"
        sagemaker.create_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=name,
            HyperParameterTuningJobConfig={
                "Strategy": "Random",
                "HyperParameterTuningJobObjective": {"MetricName": "validation:rmse", "Type": "Minimize"},
                "ResourceLimits": {"MaxNumberOfTrainingJobs": 6, "MaxParallelTrainingJobs": 3},
                "ParameterRanges": {
                    "IntegerParameterRanges": [{"Name": "max_depth", "MinValue": "1", "MaxValue": "6"}]
                },
            },
            TrainingJobDefinition={
                **{key: definition[key] for key in DEFINITION_KEYS},
                "StaticHyperParameters": definition["HyperParameters"],
            },
        )
        done = _wait(
            lambda name=name: sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name),
            "HyperParameterTuningJobStatus",
            ("Completed", "Failed", "Stopped"),
            timeout=600,
        )
        assert done["HyperParameterTuningJobStatus"] == "Completed"
        assert done["TrainingJobStatusCounters"]["Completed"] == 6
        children = sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=name
        )
        assert {c["TrainingJobStatus"] for c in children["TrainingJobSummaries"]} == {"Completed"}
