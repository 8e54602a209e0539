"""The SageMaker control plane and runtime, through plain boto3 against a real emulator.

Every job here really trains with xgboost in a child process and every endpoint really serves
over HTTP; the assertions are what a user of the real service would check.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import signal
import tarfile
import time
import uuid

import botocore.exceptions
import numpy as np
import pytest

from workflows import boston
from workflows.datasets import boston as boston_data

ROLE = "arn:aws:iam::000000000000:role/SageLocalExecutionRole"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
FAST = {**{k: str(v) for k, v in boston.HYPERPARAMETERS.items()}, "num_round": "30"}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def wait_for(describe, status_key: str, done=("Completed", "Failed", "Stopped"), timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = describe()
        if described[status_key] in done:
            return described
        time.sleep(0.05)
    raise AssertionError(f"still {described[status_key]} after {timeout} s")


@pytest.fixture(scope="module")
def data(client, bucket, tmp_path_factory):
    split = boston_data.prepare(tmp_path_factory.mktemp("boston"))
    s3 = client("s3")
    prefix = unique("api-tests")
    for path in (split.train_csv, split.validation_csv, split.test_csv):
        s3.upload_file(str(path), bucket, f"{prefix}/{path.stem}/{path.name}")
    return split, f"s3://{bucket}/{prefix}"


def training_request(
    name: str, data_uri: str, hyperparameters=None, channels=("train", "validation"), **extra
):
    return {
        "TrainingJobName": name,
        "RoleArn": ROLE,
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "OutputDataConfig": {"S3OutputPath": f"{data_uri}/output"},
        "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.m4.xlarge", "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "HyperParameters": hyperparameters or FAST,
        "InputDataConfig": [
            {
                "ChannelName": channel,
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"{data_uri}/{channel}/"}},
                "ContentType": "text/csv",
            }
            for channel in channels
        ],
        **extra,
    }


def train(client, data_uri, **kwargs):
    sagemaker = client("sagemaker")
    name = unique("job")
    sagemaker.create_training_job(**training_request(name, data_uri, **kwargs))
    return wait_for(lambda: sagemaker.describe_training_job(TrainingJobName=name), "TrainingJobStatus")


@pytest.fixture(scope="module")
def trained(client, data):
    described = train(client, data[1])
    assert described["TrainingJobStatus"] == "Completed", described.get("FailureReason")
    return described


@pytest.fixture(scope="module")
def model_name(client, trained):
    name = unique("model")
    client("sagemaker").create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": trained["ModelArtifacts"]["S3ModelArtifacts"]},
    )
    return name


def deploy(client, model_name, variants=None):
    sagemaker = client("sagemaker")
    endpoint = unique("endpoint")
    sagemaker.create_endpoint_config(
        EndpointConfigName=endpoint,
        ProductionVariants=variants
        or [
            {
                "VariantName": "AllTraffic",
                "ModelName": model_name,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m4.xlarge",
            }
        ],
    )
    sagemaker.create_endpoint(EndpointName=endpoint, EndpointConfigName=endpoint)
    described = wait_for(
        lambda: sagemaker.describe_endpoint(EndpointName=endpoint),
        "EndpointStatus",
        done=("InService", "Failed"),
    )
    assert described["EndpointStatus"] == "InService", described.get("FailureReason")
    return endpoint


@pytest.fixture(scope="module")
def endpoint(client, model_name):
    name = deploy(client, model_name)
    yield name
    client("sagemaker").delete_endpoint(EndpointName=name)


# -- training ---------------------------------------------------------------------------------


def test_training_job_completes_with_the_service_state_machine(trained):
    assert [t["Status"] for t in trained["SecondaryStatusTransitions"]] == [
        "Starting", "Downloading", "Training", "Uploading", "Completed",
    ]  # fmt: skip
    assert trained["SecondaryStatusTransitions"][2]["StatusMessage"] == (
        "Training image download completed. Training in progress."
    )
    assert trained["ModelArtifacts"]["S3ModelArtifacts"].endswith(
        f"/{trained['TrainingJobName']}/output/model.tar.gz"
    )
    assert trained["TrainingJobArn"].endswith(f":training-job/{trained['TrainingJobName'].lower()}")
    assert trained["BillableTimeInSeconds"] >= 1
    metrics = {m["MetricName"]: m["Value"] for m in trained["FinalMetricDataList"]}
    assert 2.0 < metrics["validation:rmse"] < 8.0
    assert "train:rmse" in metrics


def test_model_artifact_holds_only_the_xgboost_model(client, trained):
    bucket, key = trained["ModelArtifacts"]["S3ModelArtifacts"][5:].split("/", 1)
    data = client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        assert archive.getnames() == ["xgboost-model"]


def test_training_log_has_round_lines_in_cloudwatch(client, trained):
    logs = client("logs")
    streams = logs.describe_log_streams(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=trained["TrainingJobName"] + "/"
    )["logStreams"]
    assert len(streams) == 1 and streams[0]["logStreamName"].startswith(
        trained["TrainingJobName"] + "/algo-1-"
    )
    events = logs.get_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs",
        logStreamName=streams[0]["logStreamName"],
        startFromHead=True,
    )["events"]
    messages = [e["message"] for e in events]
    assert any(m.startswith("[0]#011train-rmse:") and "#011validation-rmse:" in m for m in messages)


def test_duplicate_training_job_is_refused(client, data, trained):
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        client("sagemaker").create_training_job(**training_request(trained["TrainingJobName"], data[1]))
    error = raised.value.response["Error"]
    assert error["Code"] == "ResourceInUse"
    assert error["Message"].startswith("Training job names must be unique within an AWS account and region")


def test_unknown_training_job(client):
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        client("sagemaker").describe_training_job(TrainingJobName="does-not-exist")
    assert raised.value.response["Error"] == {
        "Code": "ValidationException",
        "Message": "Requested resource not found.",
    }


def test_invalid_name_is_refused_with_the_model_pattern(client, data):
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        client("sagemaker").create_training_job(**training_request("bad_name!", data[1]))
    message = raised.value.response["Error"]["Message"]
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert message.startswith(
        "1 validation error detected: Value 'bad_name!' at 'trainingJobName' failed to satisfy"
    )
    assert "regular expression pattern" in message


def test_empty_input_prefix_is_refused(client, bucket):
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        client("sagemaker").create_training_job(
            **training_request(unique("job"), f"s3://{bucket}/nothing-here")
        )
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert raised.value.response["Error"]["Message"].startswith(
        f'No S3 objects found under S3 URL "s3://{bucket}/nothing-here/train/"'
    )


@pytest.mark.parametrize(
    ("hyperparameters", "reason"),
    [
        ({"max_depth": "5"}, "Missing required hyperparameter: num_round"),
        ({"num_round": "10", "bogus": "1"}, "Extraneous hyperparameter found: bogus"),
        ({"num_round": "10", "eta": "1.5"}, "Hyperparameter eta: 1.5 is not in [0, 1]"),
        ({"num_round": "10", "max_depth": "6.0"}, "Hyperparameter max_depth: could not parse value"),
    ],
)
def test_bad_hyperparameters_fail_the_job_with_the_container_message(client, data, hyperparameters, reason):
    described = train(client, data[1], hyperparameters=hyperparameters)
    assert described["TrainingJobStatus"] == "Failed"
    assert reason in described["FailureReason"]
    assert described["SecondaryStatus"] == "Failed"


def test_missing_train_channel_fails_the_job(client, data):
    described = train(client, data[1], channels=("validation",))
    assert described["TrainingJobStatus"] == "Failed"
    assert "Missing required channel: train" in described["FailureReason"]


def test_stop_training_job(client, data):
    sagemaker = client("sagemaker")
    name = unique("job")
    slow = {**FAST, "num_round": "100000", "early_stopping_rounds": "100000", "eta": "0.001"}
    sagemaker.create_training_job(**training_request(name, data[1], hyperparameters=slow))
    wait_for(
        lambda: sagemaker.describe_training_job(TrainingJobName=name), "SecondaryStatus", done=("Training",)
    )
    sagemaker.stop_training_job(TrainingJobName=name)
    described = wait_for(lambda: sagemaker.describe_training_job(TrainingJobName=name), "TrainingJobStatus")
    assert described["TrainingJobStatus"] == "Stopped"
    assert described["SecondaryStatus"] == "Stopped"
    with pytest.raises(botocore.exceptions.ClientError):
        sagemaker.stop_training_job(TrainingJobName=name)


def test_a_job_whose_process_dies_fails_and_the_emulator_keeps_serving(in_process_emulator, client, data):
    sagemaker = client("sagemaker")
    name = unique("job")
    slow = {**FAST, "num_round": "100000", "early_stopping_rounds": "100000", "eta": "0.001"}
    sagemaker.create_training_job(**training_request(name, data[1], hyperparameters=slow))
    wait_for(
        lambda: sagemaker.describe_training_job(TrainingJobName=name), "SecondaryStatus", done=("Training",)
    )
    run = in_process_emulator.sagemaker.training_job(name)
    deadline = time.monotonic() + 10
    while not run._containers and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(run._containers[0].pid, signal.SIGKILL)
    described = wait_for(lambda: sagemaker.describe_training_job(TrainingJobName=name), "TrainingJobStatus")
    assert described["TrainingJobStatus"] == "Failed"
    assert described["FailureReason"] == "AlgorithmError: , exit code: 137"  # Docker's code for SIGKILL
    assert (
        sagemaker.list_training_jobs(NameContains=name)["TrainingJobSummaries"][0]["TrainingJobStatus"]
        == "Failed"
    )


def test_list_training_jobs_pages(client, data):
    """Pages through jobs this test creates itself (they fail fast: no num_round), newest first."""
    sagemaker = client("sagemaker")
    prefix = unique("pages")
    names = [f"{prefix}-{index}" for index in range(3)]
    for name in names:
        sagemaker.create_training_job(**training_request(name, data[1], hyperparameters={"max_depth": "2"}))
    seen, token = [], None
    while True:
        page = sagemaker.list_training_jobs(
            NameContains=prefix, MaxResults=1, **({"NextToken": token} if token else {})
        )
        assert len(page["TrainingJobSummaries"]) == 1
        seen.append(page["TrainingJobSummaries"][0]["TrainingJobName"])
        token = page.get("NextToken")
        if not token:
            break
    assert seen == names[::-1]  # the default order: CreationTime, descending
    for name in names:
        wait_for(lambda name=name: sagemaker.describe_training_job(TrainingJobName=name), "TrainingJobStatus")


# -- models and endpoint configs --------------------------------------------------------------


def test_duplicate_and_missing_models(client, model_name):
    sagemaker = client("sagemaker")
    arn = f"arn:aws:sagemaker:us-east-1:000000000000:model/{model_name}"
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        sagemaker.create_model(ModelName=model_name, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": IMAGE})
    assert raised.value.response["Error"]["Message"] == f'Cannot create already existing model "{arn}".'
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        sagemaker.describe_model(ModelName="no-such-model")
    assert raised.value.response["Error"]["Message"].startswith('Could not find model "')
    assert sagemaker.describe_model(ModelName=model_name)["ModelArn"] == arn


def test_endpoint_config_needs_an_existing_model(client):
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        client("sagemaker").create_endpoint_config(
            EndpointConfigName=unique("cfg"),
            ProductionVariants=[
                {
                    "VariantName": "v",
                    "ModelName": "ghost",
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.m4.xlarge",
                }
            ],
        )
    assert raised.value.response["Error"]["Message"].startswith('Could not find model "')


def test_delete_model_and_config(client, trained):
    sagemaker = client("sagemaker")
    name = unique("model")
    sagemaker.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": IMAGE})
    sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {"VariantName": "v", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m4.xlarge"}
        ],
    )
    sagemaker.delete_endpoint_config(EndpointConfigName=name)
    sagemaker.delete_model(ModelName=name)
    assert name not in [m["ModelName"] for m in sagemaker.list_models(MaxResults=100)["Models"]]
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        sagemaker.delete_endpoint_config(EndpointConfigName=name)
    assert raised.value.response["Error"]["Message"].startswith('Could not find endpoint configuration "')


# -- endpoints and the runtime ----------------------------------------------------------------


def test_invoke_endpoint_predicts_prices(client, data, endpoint):
    split = data[0]
    rows = "\n".join(",".join(str(v) for v in row) for row in split.X_test.values[:20])
    response = client("sagemaker-runtime").invoke_endpoint(
        EndpointName=endpoint, ContentType="text/csv", Body=rows
    )
    assert response["InvokedProductionVariant"] == "AllTraffic"
    predictions = boston_data.parse_predictions(response["Body"].read().decode())
    assert len(predictions) == 20
    assert float(np.sqrt(np.mean((predictions - split.Y_test.values[:20]) ** 2))) < 8


def test_describe_endpoint_in_service(client, endpoint):
    described = client("sagemaker").describe_endpoint(EndpointName=endpoint)
    assert described["EndpointStatus"] == "InService"
    assert described["ProductionVariants"][0]["CurrentInstanceCount"] == 1


def test_unsupported_content_type_is_a_model_error(client, endpoint):
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        client("sagemaker-runtime").invoke_endpoint(
            EndpointName=endpoint, ContentType="application/json", Body=b"{}"
        )
    response = raised.value.response
    assert response["Error"]["Code"] == "ModelError"
    assert response["OriginalStatusCode"] == 415
    assert "is not an accepted ContentType" in response["OriginalMessage"]
    assert response["Error"]["Message"].startswith("Received client error (415) from primary with message")


def test_wrong_feature_count_is_a_model_error(client, endpoint):
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        client("sagemaker-runtime").invoke_endpoint(
            EndpointName=endpoint, ContentType="text/csv", Body=b"1,2,3"
        )
    assert raised.value.response["OriginalStatusCode"] == 400
    assert (
        "Feature size of csv inference data 3 is not consistent" in raised.value.response["OriginalMessage"]
    )


def test_payload_over_6_mb_is_refused(client, endpoint):
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        client("sagemaker-runtime").invoke_endpoint(
            EndpointName=endpoint, ContentType="text/csv", Body=b"1" * (6 * 1024 * 1024 + 1)
        )
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413


def test_unknown_endpoint(client):
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        client("sagemaker-runtime").invoke_endpoint(EndpointName="ghost", ContentType="text/csv", Body=b"1")
    assert raised.value.response["Error"] == {
        "Code": "ValidationError",
        "Message": "Endpoint ghost of account 000000000000 not found.",
    }


def test_duplicate_endpoint_is_refused(client, endpoint):
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        client("sagemaker").create_endpoint(EndpointName=endpoint, EndpointConfigName=endpoint)
    assert raised.value.response["Error"]["Message"].startswith('Cannot create already existing endpoint "')


def test_variant_weights_are_honoured_and_update_endpoint_works(client, model_name, data):
    sagemaker, runtime = client("sagemaker"), client("sagemaker-runtime")
    variant = {"ModelName": model_name, "InitialInstanceCount": 1, "InstanceType": "ml.m4.xlarge"}
    name = deploy(
        client,
        model_name,
        [
            {**variant, "VariantName": "heavy", "InitialVariantWeight": 3.0},
            {**variant, "VariantName": "light", "InitialVariantWeight": 1.0},
        ],
    )
    try:
        row = ",".join(str(v) for v in data[0].X_test.values[0])
        seen = [
            runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=row)[
                "InvokedProductionVariant"
            ]
            for _ in range(200)
        ]
        assert 110 < seen.count("heavy") < 190 and seen.count("light") > 10
        targeted = runtime.invoke_endpoint(
            EndpointName=name, ContentType="text/csv", Body=row, TargetVariant="light"
        )
        assert targeted["InvokedProductionVariant"] == "light"

        new_config = unique("cfg")
        sagemaker.create_endpoint_config(
            EndpointConfigName=new_config, ProductionVariants=[{**variant, "VariantName": "solo"}]
        )
        sagemaker.update_endpoint(EndpointName=name, EndpointConfigName=new_config)
        described = wait_for(
            lambda: sagemaker.describe_endpoint(EndpointName=name),
            "EndpointStatus",
            done=("InService", "Failed"),
        )
        assert described["EndpointConfigName"] == new_config
        assert (
            runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=row)[
                "InvokedProductionVariant"
            ]
            == "solo"
        )
    finally:
        sagemaker.delete_endpoint(EndpointName=name)
    with pytest.raises(botocore.exceptions.ClientError):
        sagemaker.describe_endpoint(EndpointName=name)


def test_endpoint_with_missing_model_data_fails(client):
    sagemaker = client("sagemaker")
    name = unique("broken")
    sagemaker.create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": "s3://sagelocal-tests/none/model.tar.gz"},
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {"VariantName": "v", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m4.xlarge"}
        ],
    )
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)
    described = wait_for(
        lambda: sagemaker.describe_endpoint(EndpointName=name), "EndpointStatus", done=("InService", "Failed")
    )
    assert described["EndpointStatus"] == "Failed"
    assert described["FailureReason"].startswith("Failed to download model data")
    sagemaker.delete_endpoint(EndpointName=name)


# -- batch transform --------------------------------------------------------------------------


def transform(client, model_name: str, input_uri: str, output_uri: str, **settings):
    """Run a transform job over ``input_uri`` (CSV lines) and wait for it; returns its description."""
    sagemaker = client("sagemaker")
    name = unique("transform")
    accept = settings.pop("Accept", None)
    sagemaker.create_transform_job(
        TransformJobName=name,
        ModelName=model_name,
        TransformInput={
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        TransformOutput={
            "S3OutputPath": output_uri,
            "AssembleWith": "Line",
            **({"Accept": accept} if accept else {}),
        },
        TransformResources={"InstanceType": "ml.m4.xlarge", "InstanceCount": 1},
        **settings,
    )
    return wait_for(lambda: sagemaker.describe_transform_job(TransformJobName=name), "TransformJobStatus")


def read_s3(client, uri: str) -> bytes:
    bucket, key = uri[5:].split("/", 1)
    return client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


@pytest.fixture(scope="module")
def booster(client, trained):
    """The trained model, loaded here: what every record's prediction must be, in input order."""
    import xgboost

    artifact = read_s3(client, trained["ModelArtifacts"]["S3ModelArtifacts"])
    with tarfile.open(fileobj=io.BytesIO(artifact)) as archive:
        model = archive.extractfile("xgboost-model").read()
    loaded = xgboost.Booster()
    loaded.load_model(bytearray(model))
    return loaded


def expected_predictions(booster, csv: bytes) -> np.ndarray:
    import xgboost

    rows = np.loadtxt(io.StringIO(csv.decode()), delimiter=",", ndmin=2)
    return booster.predict(xgboost.DMatrix(rows))


@pytest.fixture(scope="module")
def large_input(client, data):
    """~2.6 MB of CSV records (lines of different lengths) under its own prefix: several 1 MB batches."""
    split, data_uri = data
    rng = np.random.default_rng(7)
    base = np.tile(split.X_test.values, (100, 1))
    noisy = base * rng.uniform(0.9, 1.1, size=base.shape)
    lines = [",".join(f"{v:.{3 + i % 9}f}" for v in row) for i, row in enumerate(noisy)]
    body = ("\n".join(lines) + "\n").encode()
    uri = f"{data_uri}/{unique('large')}/"
    client("s3").put_object(
        Bucket=uri[5:].split("/", 1)[0], Key=uri[5:].split("/", 1)[1] + "large.csv", Body=body
    )
    return uri, body


def test_multi_record_splits_at_max_payload_and_keeps_record_order(
    client, data, model_name, booster, large_input
):
    """MultiRecord packs whole records into requests of at most MaxPayloadInMB; with the JSON Accept
    each request's answer is one line, so the output shows where the service cut the batches."""
    uri, body = large_input
    output = f"{data[1]}/{unique('multi')}"
    described = transform(
        client, model_name, uri, output, BatchStrategy="MultiRecord", MaxPayloadInMB=1,
        MaxConcurrentTransforms=2, Accept="application/json",
    )  # fmt: skip
    assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")
    answers = read_s3(client, f"{output}/large.csv.out").decode().splitlines()
    batches = [[p["score"] for p in json.loads(line)["predictions"]] for line in answers]
    records = body.splitlines()
    assert len(batches) >= -(-len(body) // (1024 * 1024)) > 1
    start = 0
    for batch in batches:
        assert len(batch) > 1
        assert len(b"\n".join(records[start : start + len(batch)])) <= 1024 * 1024
        start += len(batch)
    assert start == len(records)
    scores = np.array([score for batch in batches for score in batch])
    np.testing.assert_allclose(scores, expected_predictions(booster, body), rtol=1e-6)


def test_single_record_sends_one_record_per_request(client, data, model_name, booster):
    split, data_uri = data
    output = f"{data_uri}/{unique('single')}"
    described = transform(
        client, model_name, f"{data_uri}/test/", output, BatchStrategy="SingleRecord", MaxPayloadInMB=1,
        MaxConcurrentTransforms=4, Accept="application/json",
    )  # fmt: skip
    assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")
    answers = read_s3(client, f"{output}/test.csv.out").decode().splitlines()
    batches = [[p["score"] for p in json.loads(line)["predictions"]] for line in answers]
    assert [len(batch) for batch in batches] == [1] * len(split.X_test)
    np.testing.assert_allclose(
        [batch[0] for batch in batches], expected_predictions(booster, split.test_csv.read_bytes()), rtol=1e-6
    )


@pytest.mark.parametrize("strategy", ["MultiRecord", "SingleRecord"])
def test_transform_job_writes_one_prediction_per_line(client, data, model_name, booster, strategy):
    """text/csv answers: one prediction per line, in the order of the input records."""
    split, data_uri = data
    output = f"{data_uri}/{unique('transform-' + strategy)}"
    described = transform(
        client, model_name, f"{data_uri}/test/", output, BatchStrategy=strategy, MaxPayloadInMB=1,
        MaxConcurrentTransforms=2,
    )  # fmt: skip
    assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")
    assert (described["BatchStrategy"], described["MaxPayloadInMB"]) == (strategy, 1)
    lines = read_s3(client, f"{output}/test.csv.out").decode().split("\n")
    assert lines[-1] == "" and len(lines) - 1 == len(split.X_test)
    predictions = np.array(lines[:-1], dtype=float)
    np.testing.assert_allclose(
        predictions, expected_predictions(booster, split.test_csv.read_bytes()), rtol=1e-6
    )
    assert float(np.sqrt(np.mean((predictions - split.Y_test.values) ** 2))) < 8


def test_a_record_larger_than_max_payload_fails_the_job(client, data, model_name):
    data_uri = data[1]
    prefix = unique("huge-record")
    bucket, key = f"{data_uri}/{prefix}/huge.csv"[5:].split("/", 1)
    client("s3").put_object(Bucket=bucket, Key=key, Body=b",".join([b"1.0000000"] * 120_000) + b"\n")
    output = f"{data_uri}/{unique('never')}"
    described = transform(client, model_name, f"{data_uri}/{prefix}/", output, MaxPayloadInMB=1)
    assert described["TransformJobStatus"] == "Failed"
    assert described["FailureReason"] == "A record is larger than MaxPayloadInMB (1 MB)."
    assert client("s3").list_objects_v2(Bucket=bucket, Prefix=output[5:].split("/", 1)[1])["KeyCount"] == 0


def test_transform_payload_limits_are_validated(client, data, model_name):
    """A request valid in every other way: refused only for MaxConcurrentTransforms x MaxPayloadInMB > 100."""
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        client("sagemaker").create_transform_job(
            TransformJobName=unique("transform"),
            ModelName=model_name,
            MaxConcurrentTransforms=10,
            MaxPayloadInMB=20,
            TransformInput={
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"{data[1]}/test/"}},
                "ContentType": "text/csv",
                "SplitType": "Line",
            },
            TransformOutput={"S3OutputPath": f"{data[1]}/never", "AssembleWith": "Line"},
            TransformResources={"InstanceType": "ml.m4.xlarge", "InstanceCount": 1},
        )
    assert raised.value.response["Error"] == {
        "Code": "ValidationException",
        "Message": "MaxConcurrentTransforms (10) * MaxPayloadInMB (20) must not exceed 100 MB.",
    }


def test_transform_with_bad_content_type_fails_and_writes_nothing(client, data, model_name):
    sagemaker = client("sagemaker")
    name = unique("transform")
    sagemaker.create_transform_job(
        TransformJobName=name,
        ModelName=model_name,
        TransformInput={
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"{data[1]}/test/"}},
            "ContentType": "application/json",
            "SplitType": "Line",
        },
        TransformOutput={"S3OutputPath": f"{data[1]}/bad-transform"},
        TransformResources={"InstanceType": "ml.m4.xlarge", "InstanceCount": 1},
    )
    described = wait_for(
        lambda: sagemaker.describe_transform_job(TransformJobName=name), "TransformJobStatus"
    )
    assert described["TransformJobStatus"] == "Failed"
    bucket, prefix = data[1][5:].split("/", 1)
    assert client("s3").list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/bad-transform")["KeyCount"] == 0


def test_unknown_transform_job(client):
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        client("sagemaker").describe_transform_job(TransformJobName="ghost")
    assert raised.value.response["Error"]["Code"] == "ValidationException"


def test_tags_round_trip(client, model_name):
    sagemaker = client("sagemaker")
    arn = sagemaker.describe_model(ModelName=model_name)["ModelArn"]
    sagemaker.add_tags(ResourceArn=arn, Tags=[{"Key": "team", "Value": "ml"}])
    assert sagemaker.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "ml"}]


def test_stop_and_list_transform_jobs(client, data, model_name, large_input):
    """Thousands of single-record requests one at a time: the job is surely still running when stopped."""
    sagemaker = client("sagemaker")
    name = unique("transform")
    output = f"{data[1]}/{unique('stopped')}"
    sagemaker.create_transform_job(
        TransformJobName=name,
        ModelName=model_name,
        BatchStrategy="SingleRecord",
        MaxConcurrentTransforms=1,
        TransformInput={
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": large_input[0]}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        TransformOutput={"S3OutputPath": output},
        TransformResources={"InstanceType": "ml.m4.xlarge", "InstanceCount": 1},
    )
    listed = sagemaker.list_transform_jobs(NameContains=name)["TransformJobSummaries"]
    assert [s["TransformJobName"] for s in listed] == [name]
    sagemaker.stop_transform_job(TransformJobName=name)
    described = wait_for(
        lambda: sagemaker.describe_transform_job(TransformJobName=name), "TransformJobStatus"
    )
    assert described["TransformJobStatus"] == "Stopped"
    bucket, prefix = output[5:].split("/", 1)
    assert client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)["KeyCount"] == 0
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        sagemaker.stop_transform_job(TransformJobName=name)
    assert raised.value.response["Error"]["Message"] == (
        "The request was rejected because the transform job is in status Stopped."
    )


def test_list_endpoint_configs_and_endpoints(client, endpoint):
    sagemaker = client("sagemaker")
    assert endpoint in [
        c["EndpointConfigName"]
        for c in sagemaker.list_endpoint_configs(NameContains=endpoint)["EndpointConfigs"]
    ]
    listed = sagemaker.list_endpoints(NameContains=endpoint, StatusEquals="InService")["Endpoints"]
    assert [e["EndpointName"] for e in listed] == [endpoint]


def test_max_runtime_stops_the_job(client, data):
    sagemaker = client("sagemaker")
    name = unique("job")
    slow = {**FAST, "num_round": "100000", "early_stopping_rounds": "100000", "eta": "0.001"}
    sagemaker.create_training_job(
        **training_request(name, data[1], hyperparameters=slow, StoppingCondition={"MaxRuntimeInSeconds": 1})
    )
    described = wait_for(
        lambda: sagemaker.describe_training_job(TrainingJobName=name), "TrainingJobStatus", timeout=30
    )
    assert described["TrainingJobStatus"] == "Stopped"
    assert described["SecondaryStatus"] == "MaxRuntimeExceeded"


def test_server_side_validation_when_the_client_skips_it(emulator, boto_session, client, model_name):
    """botocore validates client-side; the service validates again, in its own words."""
    from botocore.config import Config

    raw = boto_session.client(
        "sagemaker", endpoint_url=emulator.url, config=Config(parameter_validation=False)
    )
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        raw.create_training_job(TrainingJobName="no-role-no-anything")
    message = raised.value.response["Error"]["Message"]
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert "Value null at 'roleArn' failed to satisfy constraint: Member must not be null" in message
    assert message.startswith(f"{message.split()[0]} validation errors detected:")
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        raw.create_endpoint_config(
            EndpointConfigName="cfg", ProductionVariants=[{"VariantName": "v", "ModelName": "m" * 70}]
        )
    assert "Member must have length less than or equal to 63" in raised.value.response["Error"]["Message"]
    assert (
        client("sagemaker").describe_model(ModelName=model_name)["ModelName"] == model_name
    )  # still serving


def test_training_metrics_reach_cloudwatch_for_the_sdk_analytics(client, trained):
    """What sagemaker.analytics.TrainingJobAnalytics asks CloudWatch for."""
    datapoints = client("cloudwatch").get_metric_statistics(
        Namespace="/aws/sagemaker/TrainingJobs",
        MetricName="validation:rmse",
        Dimensions=[{"Name": "TrainingJobName", "Value": trained["TrainingJobName"]}],
        StartTime=trained["TrainingStartTime"],
        EndTime=trained["TrainingEndTime"] + datetime.timedelta(minutes=1),  # the SDK's interval
        Period=60,
        Statistics=["Average"],
    )["Datapoints"]
    assert datapoints and all(2.0 < point["Average"] < 30.0 for point in datapoints)


# -- other input formats through the service -----------------------------------------------------


def _upload(client, uri: str, body: bytes) -> None:
    bucket, key = uri[5:].split("/", 1)
    client("s3").put_object(Bucket=bucket, Key=key, Body=body)


def _libsvm(labels, features) -> bytes:
    lines = [
        f"{label:g} " + " ".join(f"{index}:{value:g}" for index, value in enumerate(row) if value != 0)
        for label, row in zip(labels, features, strict=True)
    ]
    return ("\n".join(lines) + "\n").encode()


def _recordio(labels, features) -> bytes:
    from sagemaker.amazon.common import write_numpy_to_dense_tensor

    buffer = io.BytesIO()
    write_numpy_to_dense_tensor(
        buffer, np.asarray(features, dtype="float32"), np.asarray(labels, dtype="float32")
    )
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("content_type", "encode"), [("text/libsvm", _libsvm), ("application/x-recordio-protobuf", _recordio)]
)
def test_training_on_libsvm_and_recordio_channels(client, data, content_type, encode):
    """The same Boston split in another format trains a model of the same quality as from CSV."""
    split, data_uri = data
    prefix = f"{data_uri}/{unique('format')}"
    _upload(client, f"{prefix}/train/train", encode(split.Y_train.values, split.X_train.values))
    _upload(client, f"{prefix}/validation/validation", encode(split.Y_val.values, split.X_val.values))
    request = training_request(unique("job"), prefix)
    for channel in request["InputDataConfig"]:
        channel["ContentType"] = content_type
    sagemaker = client("sagemaker")
    sagemaker.create_training_job(**request)
    described = wait_for(
        lambda: sagemaker.describe_training_job(TrainingJobName=request["TrainingJobName"]),
        "TrainingJobStatus",
    )
    assert described["TrainingJobStatus"] == "Completed", described.get("FailureReason")
    metrics = {m["MetricName"]: m["Value"] for m in described["FinalMetricDataList"]}
    assert 2.0 < metrics["validation:rmse"] < 8.0


# -- crash isolation ----------------------------------------------------------------------------


def serving_processes() -> set:
    """This process's descendants that listen on a TCP port: the serving containers."""
    import psutil

    found = set()
    for process in psutil.Process().children(recursive=True):
        try:
            if any(c.status == psutil.CONN_LISTEN for c in process.net_connections(kind="tcp")):
                found.add(process)
        except psutil.Error:  # it ended meanwhile
            continue
    return found


def test_a_dead_endpoint_process_harms_neither_the_emulator_nor_other_endpoints(
    in_process_emulator, client, data, model_name
):
    runtime = client("sagemaker-runtime")
    row = ",".join(str(v) for v in data[0].X_test.values[0])
    before = serving_processes()
    doomed = deploy(client, model_name)
    doomed_processes = serving_processes() - before
    survivor = deploy(client, model_name)
    try:
        assert len(doomed_processes) == 1
        for process in doomed_processes:
            process.kill()
            process.wait(10)
        try:  # the dead instance's requests fail cleanly (no instance serves until it is replaced), or
            # its replacement answers (tests/test_reliability.py follows the healing through)
            runtime.invoke_endpoint(EndpointName=doomed, ContentType="text/csv", Body=row)
        except botocore.exceptions.ClientError as error:
            assert error.response["Error"]["Code"] == "ServiceUnavailable", error.response
        answer = runtime.invoke_endpoint(EndpointName=survivor, ContentType="text/csv", Body=row)
        assert 5.0 < float(answer["Body"].read()) < 60.0
        assert client("sagemaker").describe_endpoint(EndpointName=survivor)["EndpointStatus"] == "InService"
    finally:
        for name in (doomed, survivor):
            client("sagemaker").delete_endpoint(EndpointName=name)


def test_a_dead_transform_process_fails_the_job_and_the_emulator_keeps_serving(
    in_process_emulator, client, data, model_name, large_input
):
    sagemaker = client("sagemaker")
    name = unique("transform")
    output = f"{data[1]}/{unique('crashed')}"
    before = serving_processes()
    sagemaker.create_transform_job(
        TransformJobName=name,
        ModelName=model_name,
        BatchStrategy="SingleRecord",
        MaxConcurrentTransforms=1,
        TransformInput={
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": large_input[0]}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        TransformOutput={"S3OutputPath": output},
        TransformResources={"InstanceType": "ml.m4.xlarge", "InstanceCount": 1},
    )
    deadline = time.monotonic() + 60
    while not (started := serving_processes() - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(started) == 1
    for process in started:
        process.kill()
    described = wait_for(
        lambda: sagemaker.describe_transform_job(TransformJobName=name), "TransformJobStatus"
    )
    assert described["TransformJobStatus"] == "Failed"
    assert described["FailureReason"]
    bucket, prefix = output[5:].split("/", 1)
    assert client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)["KeyCount"] == 0
    assert sagemaker.describe_model(ModelName=model_name)["ModelName"] == model_name


# -- the SDK on the local target -----------------------------------------------------------------


def test_sdk_waits_run_on_a_virtual_clock(emulator, trained, endpoint):
    """wait_for_job sleeps 5 s and wait_for_endpoint 30 s before their first describe: on the local
    target those sleeps advance the SDK's clock instead of the wall clock."""
    import sagemaker.session

    from workflows.sdk_hooks import VirtualClock
    from workflows.target import TargetSettings, open_target

    with open_target(TargetSettings(name="local", endpoint_url=emulator.url), log=lambda *_: None) as target:
        clock = sagemaker.session.time
        assert isinstance(clock, VirtualClock) and clock.offset == 0
        session = target.sagemaker_session
        assert session.wait_for_job(trained["TrainingJobName"])["TrainingJobStatus"] == "Completed"
        assert session.wait_for_endpoint(endpoint)["EndpointStatus"] == "InService"
        assert clock.offset >= 35 - 2 * clock.real_poll
        assert clock.time() - time.time() == pytest.approx(clock.offset, abs=1)
    assert sagemaker.session.time is time
