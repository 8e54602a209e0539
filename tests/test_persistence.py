"""Restarting the emulator with the same data directory: what a user created is all still there.

Real ``sagelocal emulator --data-dir`` processes, stopped with SIGTERM or killed with SIGKILL in the
middle of writes, then started again on the same directory and port.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import boto3
import botocore.config
import pytest
import requests
from conftest import lambda_package

from workflows.datasets import boston as boston_data

ROLE = "arn:aws:iam::000000000000:role/SageLocalExecutionRole"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
BUCKET = "persistence-tests"
LOGS_POLICY = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
# The public API of the inventory: API Gateway -> this Lambda -> the SageMaker endpoint.
PREDICT_SOURCE = """
import os

import boto3


def handler(event, context):
    answer = boto3.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=os.environ["ENDPOINT"], ContentType="text/csv", Body=event["body"]
    )
    return {"statusCode": 200, "body": answer["Body"].read().decode()}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class EmulatorProcess:
    """``sagelocal emulator [--data-dir]`` in a child process (its own process group, so whatever
    it leaves behind is cleaned up by the test)."""

    def __init__(self, data_dir: Path | None, port: int):
        self.data_dir, self.port = data_dir, port
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen | None = None
        self.session = boto3.Session(
            aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
        )
        self._config = botocore.config.Config(retries={"max_attempts": 1}, read_timeout=30)

    def start(self) -> EmulatorProcess:
        command = [sys.executable, "-m", "workflows.cli", "emulator", "--port", str(self.port)]
        if self.data_dir is not None:
            command += ["--data-dir", str(self.data_dir)]
        self.stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            command,
            # Roles are used right after CreateRole here; IAM's propagation delay is test_strictness's.
            env={
                **{k: v for k, v in os.environ.items() if k != "SAGELOCAL_DATA_DIR"},
                "SAGELOCAL_ROLE_PROPAGATION_SECONDS": "0",
            },
            stdout=subprocess.DEVNULL,
            stderr=self.stderr,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stderr.seek(0)
                raise AssertionError(f"the emulator exited: {self.stderr.read().decode()[-3000:]}")
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"{self.url}/_sagelocal/health", timeout=2).ok:
                    return self
            time.sleep(0.1)
        raise AssertionError("the emulator did not answer within 60 s")

    def client(self, service: str):
        return self.session.client(service, endpoint_url=self.url, config=self._config)

    def stop(self, sig: int) -> None:
        os.kill(self.process.pid, sig)
        try:
            self.process.wait(30)
        finally:
            with contextlib.suppress(ProcessLookupError):  # what it started, if it left anything
                os.killpg(self.process.pid, signal.SIGKILL)
            self.stderr.close()


@pytest.fixture
def emulator_on():
    """``emulator_on(data_dir, port)`` starts one; every one started is gone after the test."""
    started: list[EmulatorProcess] = []

    def start(data_dir: Path | None, port: int) -> EmulatorProcess:
        started.append(EmulatorProcess(data_dir, port).start())
        return started[-1]

    yield start
    for emulator in started:
        if emulator.process.poll() is None:
            emulator.stop(signal.SIGKILL)


def wait_for(describe, key: str, done: tuple[str, ...], timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = describe()
        if described[key] in done:
            return described
        time.sleep(0.1)
    raise AssertionError(f"still {described[key]} after {timeout} s")


def zipped(source: str) -> bytes:
    return lambda_package({"app.py": source})


def training_request(name: str, data: str, rounds: int) -> dict:
    return {
        "TrainingJobName": name,
        "RoleArn": ROLE,
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "OutputDataConfig": {"S3OutputPath": f"{data}/output"},
        "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.m4.xlarge", "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "HyperParameters": {"objective": "reg:squarederror", "num_round": str(rounds), "max_depth": "3"},
        "InputDataConfig": [
            {
                "ChannelName": channel,
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"{data}/{channel}/"}},
                "ContentType": "text/csv",
            }
            for channel in ("train", "validation")
        ],
    }


def create_inventory(emulator: EmulatorProcess, tmp_path: Path) -> dict:
    """One of everything the issue lists, and what each answers now."""
    s3, iam, sagemaker = emulator.client("s3"), emulator.client("iam"), emulator.client("sagemaker")
    logs, apigateway = emulator.client("logs"), emulator.client("apigateway")
    split = boston_data.prepare(tmp_path / "boston")
    s3.create_bucket(Bucket=BUCKET)
    for path in (split.train_csv, split.validation_csv):
        s3.upload_file(str(path), BUCKET, f"data/{path.stem}/{path.name}")
    s3.put_object(Bucket=BUCKET, Key="notes/hello.txt", Body=b"hello, restart", ContentType="text/plain")
    iam.create_role(RoleName="persisted-role", AssumeRolePolicyDocument='{"Version": "2012-10-17"}')
    iam.put_role_policy(  # what the function calls with the role's keys (IAM is enforced, as on AWS)
        RoleName="persisted-role",
        PolicyName="invoke",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "sagemaker:InvokeEndpoint",
                        "Resource": "arn:aws:sagemaker:us-east-1:000000000000:endpoint/persisted-endpoint",
                    }
                ],
            }
        ),
    )
    iam.attach_role_policy(RoleName="persisted-role", PolicyArn=LOGS_POLICY)

    sagemaker.create_training_job(**training_request("persisted-job", f"s3://{BUCKET}/data", rounds=20))
    job = wait_for(
        lambda: sagemaker.describe_training_job(TrainingJobName="persisted-job"),
        "TrainingJobStatus",
        ("Completed", "Failed"),
    )
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    sagemaker.create_model(
        ModelName="persisted-model",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": job["ModelArtifacts"]["S3ModelArtifacts"]},
    )
    sagemaker.create_model_package_group(ModelPackageGroupName="persisted-group")
    sagemaker.create_endpoint_config(
        EndpointConfigName="persisted-config",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "persisted-model",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m4.xlarge",
            }
        ],
    )
    sagemaker.create_endpoint(EndpointName="persisted-endpoint", EndpointConfigName="persisted-config")
    endpoint = wait_for(
        lambda: sagemaker.describe_endpoint(EndpointName="persisted-endpoint"),
        "EndpointStatus",
        ("InService", "Failed"),
    )
    assert endpoint["EndpointStatus"] == "InService", endpoint.get("FailureReason")

    function_arn = emulator.client("lambda").create_function(
        FunctionName="persisted-predict",
        Runtime="python3.12",
        Role="arn:aws:iam::000000000000:role/persisted-role",
        Handler="app.handler",
        Code={"ZipFile": zipped(PREDICT_SOURCE)},
        Environment={"Variables": {"ENDPOINT": "persisted-endpoint"}},
        Timeout=30,
    )["FunctionArn"]
    emulator.client("lambda").get_waiter("function_active_v2").wait(
        FunctionName="persisted-predict", WaiterConfig={"Delay": 0.1}
    )
    api_id = apigateway.create_rest_api(name="persisted-api")["id"]
    root = apigateway.get_resources(restApiId=api_id)["items"][0]["id"]
    apigateway.put_method(restApiId=api_id, resourceId=root, httpMethod="POST", authorizationType="NONE")
    apigateway.put_integration(
        restApiId=api_id,
        resourceId=root,
        httpMethod="POST",
        type="AWS_PROXY",
        integrationHttpMethod="POST",
        uri=f"arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{function_arn}/invocations",
    )
    emulator.client("lambda").add_permission(
        FunctionName="persisted-predict",
        StatementId="api",
        Action="lambda:InvokeFunction",
        Principal="apigateway.amazonaws.com",
        SourceArn=f"arn:aws:execute-api:us-east-1:000000000000:{api_id}/*/POST/",
    )
    apigateway.create_deployment(restApiId=api_id, stageName="prod")

    logs.create_log_group(logGroupName="persisted-group")
    logs.create_log_stream(logGroupName="persisted-group", logStreamName="stream")
    now = int(time.time() * 1000)
    logs.put_log_events(
        logGroupName="persisted-group",
        logStreamName="stream",
        logEvents=[{"timestamp": now, "message": "first"}, {"timestamp": now + 1, "message": "second"}],
    )

    row = split.test_csv.read_text().splitlines()[0].split(",", 1)[1]  # features, without the label
    public_url = f"{emulator.url}/_aws/execute-api/{api_id}/prod/"
    return {
        "row": row,
        "public_url": public_url,
        "prediction": predict(emulator, row),
        "verdict": verdict(public_url, row),
        "training_job": job,
    }


def predict(emulator: EmulatorProcess, row: str) -> bytes:
    answer = emulator.client("sagemaker-runtime").invoke_endpoint(
        EndpointName="persisted-endpoint", ContentType="text/csv", Body=row
    )
    return answer["Body"].read()


def verdict(public_url: str, row: str) -> tuple[int, str]:
    answer = requests.post(public_url, data=row, timeout=60)
    return answer.status_code, answer.text


@pytest.mark.parametrize("ending", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_restart_brings_back_everything_and_the_endpoint_answers_the_same(emulator_on, tmp_path, ending):
    data_dir, port = tmp_path / "data", free_port()
    first = emulator_on(data_dir, port)
    before = create_inventory(first, tmp_path)
    assert before["verdict"][0] == 200 and float(before["verdict"][1]) == float(before["prediction"])
    # A job still running when the emulator stops.
    first.client("sagemaker").create_training_job(
        **training_request("running-at-shutdown", f"s3://{BUCKET}/data", rounds=1_000_000)
    )
    wait_for(
        lambda: first.client("sagemaker").describe_training_job(TrainingJobName="running-at-shutdown"),
        "SecondaryStatus",
        ("Training",),
    )
    first.stop(ending)  # SIGKILL: nothing is saved on the way out, every write before it counts

    second = emulator_on(data_dir, port)
    s3, sagemaker, logs = second.client("s3"), second.client("sagemaker"), second.client("logs")
    note = s3.get_object(Bucket=BUCKET, Key="notes/hello.txt")
    assert (note["Body"].read(), note["ContentType"]) == (b"hello, restart", "text/plain")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert {"data/train/train.csv", "data/validation/validation.csv"} <= keys
    iam = second.client("iam")
    assert iam.get_role(RoleName="persisted-role")["Role"]["RoleName"] == "persisted-role"
    attached = iam.list_attached_role_policies(RoleName="persisted-role")["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [LOGS_POLICY]
    assert "sagemaker:InvokeEndpoint" in json.dumps(
        iam.get_role_policy(RoleName="persisted-role", PolicyName="invoke")["PolicyDocument"]
    )
    assert iam.get_policy(PolicyArn=LOGS_POLICY)["Policy"]["AttachmentCount"] == 1
    assert (
        iam.get_policy(PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess")["Policy"]["AttachmentCount"] == 0
    )
    assert second.client("lambda").get_function(FunctionName="persisted-predict")["Configuration"][
        "Handler"
    ] == ("app.handler")
    events = logs.get_log_events(logGroupName="persisted-group", logStreamName="stream")["events"]
    assert [e["message"] for e in events] == ["first", "second"]

    job = sagemaker.describe_training_job(TrainingJobName="persisted-job")
    for field in ("TrainingJobStatus", "ModelArtifacts", "FinalMetricDataList", "TrainingStartTime"):
        assert job[field] == before["training_job"][field]
    interrupted = sagemaker.describe_training_job(TrainingJobName="running-at-shutdown")
    assert interrupted["TrainingJobStatus"] == "Failed"
    assert "restarted" in interrupted["FailureReason"]
    assert sagemaker.describe_model(ModelName="persisted-model")["PrimaryContainer"]["Image"] == IMAGE
    assert (
        sagemaker.describe_model_package_group(ModelPackageGroupName="persisted-group")[
            "ModelPackageGroupStatus"
        ]
        == "Completed"
    )
    config = sagemaker.describe_endpoint_config(EndpointConfigName="persisted-config")
    assert config["ProductionVariants"][0]["ModelName"] == "persisted-model"

    endpoint = wait_for(
        lambda: sagemaker.describe_endpoint(EndpointName="persisted-endpoint"),
        "EndpointStatus",
        ("InService", "Failed"),
    )
    assert endpoint["EndpointStatus"] == "InService", endpoint.get("FailureReason")
    assert predict(second, before["row"]) == before["prediction"]
    assert verdict(before["public_url"], before["row"]) == before["verdict"]


def test_sigkill_during_a_burst_of_writes_keeps_every_acknowledged_write(emulator_on, tmp_path):
    data_dir, port = tmp_path / "data", free_port()
    first = emulator_on(data_dir, port)
    first.client("s3").create_bucket(Bucket=BUCKET)
    acknowledged: list[tuple[str, str]] = []  # (kind, name)
    stop = threading.Event()

    def write(kind: str) -> None:
        s3, iam = first.client("s3"), first.client("iam")
        while not stop.is_set():
            name = f"{kind}-{uuid.uuid4().hex[:12]}"
            try:
                if kind == "object":
                    s3.put_object(Bucket=BUCKET, Key=name, Body=name.encode() * 100)
                else:
                    iam.create_role(RoleName=name, AssumeRolePolicyDocument="{}")
            except Exception:  # the kill cut this one off: not acknowledged
                return
            acknowledged.append((kind, name))

    writers = [threading.Thread(target=write, args=(kind,)) for kind in ("object", "object", "role", "role")]
    for writer in writers:
        writer.start()
    while len(acknowledged) < 60:
        time.sleep(0.01)
    first.stop(signal.SIGKILL)  # mid-burst: writes are in flight
    stop.set()
    for writer in writers:
        writer.join(30)
    kept = list(acknowledged)

    second = emulator_on(data_dir, port)
    s3, iam = second.client("s3"), second.client("iam")
    objects = [name for kind, name in kept if kind == "object"]
    roles = [name for kind, name in kept if kind == "role"]
    assert objects and roles
    for name in objects:
        assert s3.get_object(Bucket=BUCKET, Key=name)["Body"].read() == name.encode() * 100
    for name in roles:
        assert iam.get_role(RoleName=name)["Role"]["RoleName"] == name
    # and it keeps working: a new write after the restart
    s3.put_object(Bucket=BUCKET, Key="after-restart", Body=b"ok")
    assert s3.get_object(Bucket=BUCKET, Key="after-restart")["Body"].read() == b"ok"


def test_without_a_data_directory_a_restart_starts_empty(emulator_on):
    port = free_port()
    for attempt in range(2):
        emulator = emulator_on(None, port)
        s3 = emulator.client("s3")
        assert s3.list_buckets()["Buckets"] == []  # also on the second start
        s3.create_bucket(Bucket=f"ephemeral-{attempt}")
        emulator.stop(signal.SIGTERM)


def refusal(data_dir: Path) -> str:
    """Start an emulator that is expected to refuse the data directory; its message."""
    command = [sys.executable, "-m", "workflows.cli", "emulator", "--port", str(free_port())]
    finished = subprocess.run(
        [*command, "--data-dir", str(data_dir)], capture_output=True, text=True, timeout=60
    )
    assert finished.returncode == 2, finished.stderr
    return finished.stderr


def test_one_emulator_per_data_directory_and_a_damaged_snapshot_is_reported(emulator_on, tmp_path):
    data_dir = tmp_path / "data"
    first = emulator_on(data_dir, free_port())
    first.client("s3").create_bucket(Bucket=BUCKET)
    assert "another sagelocal emulator is using the data directory" in refusal(data_dir)
    first.stop(signal.SIGTERM)

    snapshot = data_dir / "state" / "moto.s3.state"
    damaged = bytearray(snapshot.read_bytes())
    damaged[-1] ^= 0xFF
    snapshot.write_bytes(bytes(damaged))
    message = refusal(data_dir)
    assert str(snapshot) in message and "damaged" in message
