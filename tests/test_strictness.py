"""The emulator is as strict as AWS where a laptop would let a mistake through, and each
strictness can be relaxed with one setting:

- DeleteEndpoint of an endpoint still Creating is refused (SageMaker's "Cannot update in-progress
  endpoint"); the run's cleanup waits for the endpoint to settle and then deletes it.
- A role created a moment ago cannot be assumed yet (IAM's eventual consistency): SageMaker's
  "Could not assume role" (models, training, processing), Lambda's "cannot be assumed by Lambda".

Lambda's own strictness (a package file that is not world-readable, invoking a Pending function)
is tested in test_lambda_sandbox.py.
"""

from __future__ import annotations

import io
import threading
import time
import uuid
import zipfile

import boto3
import botocore.exceptions
import pytest

from emulation import Emulator, EmulatorConfig
from emulation.sagemaker import hosting
from workflows.target import TargetSettings, open_target

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
TRUST = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": ["sagemaker.amazonaws.com", "lambda.amazonaws.com"]}, "Action": "sts:AssumeRole"}]}'


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _client(emulator, service: str):
    return boto3.Session(
        aws_access_key_id=emulator.config.access_key_id,
        aws_secret_access_key=emulator.config.secret_access_key,
        region_name="us-east-1",
    ).client(service, endpoint_url=emulator.url)


@pytest.fixture
def held_endpoint_creation(monkeypatch):
    """Endpoints stay Creating until the returned event is set (their model download waits)."""
    release = threading.Event()
    fetch = hosting.fetch_model

    def waiting_fetch(*args, **kwargs):
        release.wait(30)
        return fetch(*args, **kwargs)

    monkeypatch.setattr(hosting, "fetch_model", waiting_fetch)
    yield release
    release.set()


def _create_endpoint(sagemaker, bucket: str) -> str:
    """An endpoint whose model data does not exist: it ends Failed once its creation goes on."""
    name = unique("strict")
    sagemaker.create_model(
        ModelName=name,
        ExecutionRoleArn="arn:aws:iam::000000000000:role/SageLocalExecutionRole",
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": f"s3://{bucket}/missing/model.tar.gz"},
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {"VariantName": "v", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m5.xlarge"}
        ],
    )
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)
    return name


def _status(sagemaker, name: str) -> str:
    return sagemaker.describe_endpoint(EndpointName=name)["EndpointStatus"]


def _wait_for_status(sagemaker, name: str, wanted: str) -> None:
    deadline = time.monotonic() + 30
    while _status(sagemaker, name) != wanted:
        assert time.monotonic() < deadline, f"endpoint still {_status(sagemaker, name)}"
        time.sleep(0.05)


# -- DeleteEndpoint while Creating ----------------------------------------------------------------


def test_deleting_a_creating_endpoint_is_refused_as_sagemaker_refuses_it(
    in_process_emulator, client, bucket, held_endpoint_creation
):
    sagemaker = client("sagemaker")
    name = _create_endpoint(sagemaker, bucket)
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        sagemaker.delete_endpoint(EndpointName=name)
    error = refused.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert error["Message"] == (
        f'Cannot update in-progress endpoint "arn:aws:sagemaker:us-east-1:000000000000:endpoint/{name}".'
    )
    assert _status(sagemaker, name) == "Creating"  # the refusal changed nothing

    held_endpoint_creation.set()
    _wait_for_status(sagemaker, name, "Failed")
    sagemaker.delete_endpoint(EndpointName=name)  # a settled endpoint can be deleted
    with pytest.raises(botocore.exceptions.ClientError, match="Could not find endpoint"):
        sagemaker.describe_endpoint(EndpointName=name)


def test_cleanup_waits_for_a_creating_endpoint_then_deletes_it(
    in_process_emulator, client, bucket, held_endpoint_creation
):
    """The mistake the strictness catches: a run interrupted while its endpoint is Creating.
    Cleanup must not give up (on AWS the endpoint would come up and bill); it waits, then deletes."""
    settings = TargetSettings(name="local", endpoint_url=in_process_emulator.url)
    logged = []
    with open_target(settings, log=logged.append) as target:
        name = _create_endpoint(target.client("sagemaker"), bucket)
        assert _status(target.client("sagemaker"), name) == "Creating"
        threading.Timer(0.5, held_endpoint_creation.set).start()  # it settles while cleanup runs
    assert not [line for line in logged if "COULD NOT REMOVE" in line], logged
    endpoints = client("sagemaker").list_endpoints(NameContains=name)["Endpoints"]
    assert endpoints == []
    assert client("sagemaker").list_models(NameContains=name)["Models"] == []


# -- a role used at once ------------------------------------------------------------------------


def _lambda_package() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("app.py")
        info.external_attr = 0o100644 << 16
        archive.writestr(info, "def handler(event, context):\n    return event\n")
    return buffer.getvalue()


def _use_role(sagemaker, lam, role_arn: str, bucket: str) -> dict[str, str]:
    """Try each service that assumes the role; the error code each one answered, or 'ok'."""
    outcome = {}
    name = unique("fresh-role")
    calls = {
        "CreateModel": lambda: sagemaker.create_model(
            ModelName=name,
            ExecutionRoleArn=role_arn,
            PrimaryContainer={"Image": IMAGE, "ModelDataUrl": f"s3://{bucket}/m/model.tar.gz"},
        ),
        "CreateTrainingJob": lambda: sagemaker.create_training_job(
            TrainingJobName=name,
            RoleArn=role_arn,
            AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
            OutputDataConfig={"S3OutputPath": f"s3://{bucket}/out"},
            ResourceConfig={"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 5},
            StoppingCondition={"MaxRuntimeInSeconds": 60},
            HyperParameters={"num_round": "1"},
        ),
        "CreateProcessingJob": lambda: sagemaker.create_processing_job(
            ProcessingJobName=name,
            RoleArn=role_arn,
            AppSpecification={"ImageUri": SKLEARN_IMAGE, "ContainerEntrypoint": ["python3", "-c", "pass"]},
            ProcessingResources={
                "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 5}
            },
        ),
        "CreateFunction": lambda: lam.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role_arn,
            Handler="app.handler",
            Code={"ZipFile": _lambda_package()},
        ),
    }
    for operation, call in calls.items():
        try:
            call()
            outcome[operation] = "ok"
        except botocore.exceptions.ClientError as error:
            outcome[operation] = f"{error.response['Error']['Code']}: {error.response['Error']['Message']}"
    with_model = sagemaker.list_models(NameContains=name)["Models"]
    if with_model:
        sagemaker.delete_model(ModelName=name)
    if outcome["CreateFunction"] == "ok":
        lam.delete_function(FunctionName=name)
    return outcome


def test_a_role_used_right_after_create_role_cannot_be_assumed_yet(emulator, client, bucket):
    iam = client("iam")
    role_name = unique("new-role")
    role_arn = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
    try:
        at_once = _use_role(client("sagemaker"), client("lambda"), role_arn, bucket)
        time.sleep(emulator.config.role_propagation_seconds)
        later = _use_role(client("sagemaker"), client("lambda"), role_arn, bucket)
    finally:
        iam.delete_role(RoleName=role_name)
    sagemaker_refusal = (
        f"ValidationException: Could not assume role {role_arn}. Please ensure that the role exists and "
        "allows principal 'sagemaker.amazonaws.com' to assume the role."
    )
    assert at_once == {
        "CreateModel": sagemaker_refusal,
        "CreateTrainingJob": sagemaker_refusal,
        "CreateProcessingJob": sagemaker_refusal,
        "CreateFunction": "InvalidParameterValueException: The role defined for the function cannot be assumed by Lambda.",
    }
    # Once propagated, the role is accepted (the training job then fails on its empty input: not a role error).
    assert later["CreateModel"] == "ok"
    assert later["CreateProcessingJob"] == "ok"
    assert later["CreateFunction"] == "ok"
    assert "Could not assume role" not in later["CreateTrainingJob"]


# -- each strictness relaxed with one setting -----------------------------------------------------


def test_each_strictness_can_be_relaxed_with_one_setting(tmp_path, held_endpoint_creation, monkeypatch):
    monkeypatch.setenv("SAGELOCAL_ROLE_PROPAGATION_SECONDS", "0")
    monkeypatch.setenv("SAGELOCAL_STRICT_ENDPOINT_DELETE", "0")
    config = EmulatorConfig(port=0, data_dir=tmp_path)
    assert config.role_propagation_seconds == 0 and not config.refuse_deleting_endpoints_in_progress
    with Emulator(config) as relaxed:
        s3, iam = _client(relaxed, "s3"), _client(relaxed, "iam")
        s3.create_bucket(Bucket="relaxed")
        role_arn = iam.create_role(RoleName="at-once", AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
        outcome = _use_role(_client(relaxed, "sagemaker"), _client(relaxed, "lambda"), role_arn, "relaxed")
        assert outcome["CreateModel"] == "ok" and outcome["CreateFunction"] == "ok"
        assert outcome["CreateProcessingJob"] == "ok"

        sagemaker = _client(relaxed, "sagemaker")
        name = _create_endpoint(sagemaker, "relaxed")
        sagemaker.delete_endpoint(EndpointName=name)  # while Creating: accepted when relaxed
        with pytest.raises(botocore.exceptions.ClientError, match="Could not find endpoint"):
            sagemaker.describe_endpoint(EndpointName=name)
