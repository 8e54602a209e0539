"""What the SageMaker SDK calls around training and hosting: the model registry, the lists its
cleanup reads, AWS-managed IAM policies, and errors in the order the service reports them.

Driven through the SDK v2 and boto3 against the real emulator: the models really train and the
registered package really deploys and predicts.
"""

from __future__ import annotations

import uuid

import botocore.exceptions
import numpy as np
import pytest

from workflows import boston
from workflows.datasets import boston as boston_data

ROLE = "arn:aws:iam::000000000000:role/SageLocalExecutionRole"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
TELEMETRY_OPT_OUT = {
    "SchemaVersion": "1.0",
    "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}},
}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def sdk_session(emulator, boto_session, bucket):
    import boto3
    import sagemaker

    patch = pytest.MonkeyPatch()
    patch.setenv("AWS_ENDPOINT_URL", emulator.url)  # the SDK's own S3 and STS clients
    credentials = boto_session.get_credentials()
    session = boto3.Session(
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key=credentials.secret_key,
        region_name=boto_session.region_name,
    )
    yield sagemaker.Session(boto_session=session, default_bucket=bucket, sagemaker_config=TELEMETRY_OPT_OUT)
    patch.undo()


@pytest.fixture(scope="module")
def boston_split(sdk_session, tmp_path_factory):
    split = boston_data.prepare(tmp_path_factory.mktemp("boston"))
    prefix = unique("surroundings")
    train = sdk_session.upload_data(str(split.train_csv), key_prefix=f"{prefix}/train")
    validation = sdk_session.upload_data(str(split.validation_csv), key_prefix=f"{prefix}/validation")
    return split, train, validation


@pytest.fixture(scope="module")
def estimator(sdk_session, boston_split):
    from sagemaker.estimator import Estimator
    from sagemaker.inputs import TrainingInput

    _, train, validation = boston_split
    estimator = Estimator(
        image_uri=IMAGE,
        role=ROLE,
        instance_count=1,
        instance_type="ml.m4.xlarge",
        sagemaker_session=sdk_session,
        hyperparameters={**boston.HYPERPARAMETERS, "num_round": 30},
        base_job_name="registry-train",  # Estimator.register names the package after it
    )
    estimator.fit(
        {
            "train": TrainingInput(train, content_type="text/csv"),
            "validation": TrainingInput(validation, content_type="text/csv"),
        },
        logs=False,
    )
    return estimator


def test_registered_model_is_approved_deployed_and_predicts(sdk_session, estimator, boston_split):
    from sagemaker import ModelPackage
    from sagemaker.deserializers import CSVDeserializer
    from sagemaker.serializers import CSVSerializer

    split, _, _ = boston_split
    client = sdk_session.sagemaker_client
    group = unique("boston-models")
    client.create_model_package_group(ModelPackageGroupName=group, ModelPackageGroupDescription="Boston")
    registered = estimator.register(
        content_types=["text/csv"],
        response_types=["text/csv"],
        inference_instances=["ml.m4.xlarge"],
        transform_instances=["ml.m4.xlarge"],
        model_package_group_name=group,
    )
    arn = registered.model_package_arn
    assert arn.endswith(f":model-package/{group.lower()}/1")
    described = client.describe_model_package(ModelPackageName=arn)
    assert described["ModelApprovalStatus"] == "PendingManualApproval"
    assert described["ModelPackageStatus"] == "Completed"
    assert described["InferenceSpecification"]["Containers"][0]["Image"] == IMAGE

    pending = client.list_model_packages(ModelPackageGroupName=group, ModelApprovalStatus="Approved")
    assert pending["ModelPackageSummaryList"] == []
    client.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
    approved = client.list_model_packages(ModelPackageGroupName=group, ModelApprovalStatus="Approved")
    assert [p["ModelPackageArn"] for p in approved["ModelPackageSummaryList"]] == [arn]

    endpoint = unique("registry-endpoint")
    model = ModelPackage(role=ROLE, model_package_arn=arn, sagemaker_session=sdk_session)
    model.deploy(initial_instance_count=1, instance_type="ml.m4.xlarge", endpoint_name=endpoint)
    try:
        from sagemaker.predictor import Predictor

        predictor = Predictor(
            endpoint,
            sagemaker_session=sdk_session,
            serializer=CSVSerializer(),
            deserializer=CSVDeserializer(),
        )
        rows = np.loadtxt(split.test_csv, delimiter=",")[:5]
        predictions = np.array(predictor.predict(rows[:, 1:]), dtype=float).ravel()
        # The registered artifact is the estimator's own: the same model predicts the same prices.
        direct = estimator.create_model().model_data
        assert described["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == direct
        assert predictions.shape == (5,) and np.all((predictions > 5) & (predictions < 55))
    finally:
        client.delete_endpoint(EndpointName=endpoint)

    with pytest.raises(botocore.exceptions.ClientError) as raised:
        client.delete_model_package_group(ModelPackageGroupName=group)
    assert raised.value.response["Error"]["Code"] == "ConflictException"
    client.delete_model_package(ModelPackageName=arn)
    client.delete_model_package_group(ModelPackageGroupName=group)
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        client.describe_model_package_group(ModelPackageGroupName=group)
    assert raised.value.response["Error"]["Message"].endswith(
        f"model-package-group/{group.lower()} does not exist."
    )


def test_versions_count_up_within_a_group(sdk_session, estimator):
    client = sdk_session.sagemaker_client
    group = unique("versions")
    client.create_model_package_group(ModelPackageGroupName=group)
    spec = {
        "Containers": [{"Image": IMAGE, "ModelDataUrl": estimator.model_data}],
        "SupportedContentTypes": ["text/csv"],
        "SupportedResponseMIMETypes": ["text/csv"],
    }
    arns = [
        client.create_model_package(ModelPackageGroupName=group, InferenceSpecification=spec)[
            "ModelPackageArn"
        ]
        for _ in range(3)
    ]
    assert [a.rsplit("/", 1)[1] for a in arns] == ["1", "2", "3"]
    listed = client.list_model_packages(
        ModelPackageGroupName=group, SortBy="CreationTime", SortOrder="Ascending"
    )
    assert [p["ModelPackageVersion"] for p in listed["ModelPackageSummaryList"]] == [1, 2, 3]
    for arn in arns:
        client.delete_model_package(ModelPackageName=arn)
    client.delete_model_package_group(ModelPackageGroupName=group)


def test_package_in_a_missing_group_is_refused(sdk_session):
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        sdk_session.sagemaker_client.create_model_package(
            ModelPackageGroupName=unique("ghost"),
            InferenceSpecification={
                "Containers": [{"Image": IMAGE}],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
            },
        )
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert "does not exist" in raised.value.response["Error"]["Message"]


def test_predictor_cleanup_after_list_monitors_deletes_the_endpoint(sdk_session, estimator):
    from sagemaker.predictor import Predictor

    endpoint = unique("monitored")
    estimator.deploy(initial_instance_count=1, instance_type="ml.m4.xlarge", endpoint_name=endpoint)
    predictor = Predictor(endpoint, sagemaker_session=sdk_session)
    assert predictor.list_monitors() == []
    predictor.delete_endpoint()
    names = [
        e["EndpointName"] for e in sdk_session.sagemaker_client.list_endpoints(MaxResults=100)["Endpoints"]
    ]
    assert endpoint not in names


def test_notebook_role_step_attaches_the_managed_policy(client):
    """The original web-app notebook's role: trust SageMaker, attach AmazonSageMakerFullAccess."""
    import json

    iam = client("iam")
    name = unique("notebook-role")
    iam.create_role(
        RoleName=name,
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "sagemaker.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )
    arn = "arn:aws:iam::aws:policy/AmazonSageMakerFullAccess"
    iam.attach_role_policy(RoleName=name, PolicyArn=arn)
    attached = iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
    assert attached == [{"PolicyName": "AmazonSageMakerFullAccess", "PolicyArn": arn}]
    document = iam.get_policy_version(
        PolicyArn=arn, VersionId=iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    )
    assert "sagemaker:*" in json.dumps(document["PolicyVersion"]["Document"])
    iam.detach_role_policy(RoleName=name, PolicyArn=arn)
    iam.delete_role(RoleName=name)


def test_tuning_job_reports_the_image_before_the_metric(client, bucket):
    """An image sagelocal cannot run is the first thing wrong with this request, as on AWS."""
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        client("sagemaker").create_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=unique("image-first"),
            HyperParameterTuningJobConfig={
                "Strategy": "Random",
                "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "validation:rmse"},
                "ResourceLimits": {"MaxNumberOfTrainingJobs": 2, "MaxParallelTrainingJobs": 1},
                "ParameterRanges": {
                    "ContinuousParameterRanges": [{"Name": "eta", "MinValue": "0.1", "MaxValue": "0.5"}]
                },
            },
            TrainingJobDefinition={
                "AlgorithmSpecification": {
                    "TrainingImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-own-algorithm:latest",
                    "TrainingInputMode": "File",
                },
                "RoleArn": ROLE,
                "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/out"},
                "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.m4.xlarge", "VolumeSizeInGB": 5},
                "StoppingCondition": {"MaxRuntimeInSeconds": 60},
            },
        )
    error = raised.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert "my-own-algorithm" in error["Message"]


def test_response_shape_check_catches_a_wrong_answer():
    """The check every test's SageMaker client runs: a response that parses but is not AWS's fails."""
    import threading

    import boto3
    from response_shapes import ResponseShapeError, check_responses
    from werkzeug.serving import make_server
    from werkzeug.wrappers import Response

    body = b'{"ModelName": "m", "CreationTime": 1.7e9, "EnableNetworkIsolation": "no", "Internal": 1}'
    server = make_server(
        "127.0.0.1", 0, lambda env, start: Response(body, content_type="application/json")(env, start)
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        session = boto3.Session(
            aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
        )
        check_responses(session)
        client = session.client("sagemaker", endpoint_url=f"http://127.0.0.1:{server.server_port}")
        with pytest.raises(ResponseShapeError) as raised:
            client.describe_model(ModelName="m")
    finally:
        server.shutdown()
    message = str(raised.value)
    assert "DescribeModel.ModelArn: required member missing" in message
    assert "EnableNetworkIsolation: expected a boolean" in message
    assert "Internal: not a member" in message
