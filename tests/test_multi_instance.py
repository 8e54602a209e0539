"""Training jobs with InstanceCount > 1: one container per host (algo-1 ... algo-N), the XGBoost
containers training together through XGBoost's own collective, ShardedByS3Key dealing the objects
out, each host logging to its own stream, and one host's failure failing the job.

Everything runs for real against the emulator: the hosts are separate processes that find each
other by name and exchange gradient statistics every round; the assertions are what a user of the
real service sees (status, FailureReason, each host's log stream, the model's accuracy).
"""

from __future__ import annotations

import io
import re
import tarfile
import textwrap
import uuid

import botocore.exceptions
import numpy as np
import pytest
import xgboost

from emulation import sandbox
from workflows import boston
from workflows.datasets import boston as boston_data
from workflows.target import TargetSettings, open_target

ROLE = "arn:aws:iam::000000000000:role/SageLocalExecutionRole"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
HYPERPARAMETERS = {**{k: str(v) for k, v in boston.HYPERPARAMETERS.items()}, "num_round": "60"}
LOG_GROUP = "/aws/sagemaker/TrainingJobs"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def boston_split(tmp_path_factory):
    return boston_data.prepare(tmp_path_factory.mktemp("boston"))


def upload_parts(client, bucket: str, prefix: str, lines: list[str], parts: int) -> list[int]:
    """``lines`` as ``parts`` objects under ``prefix`` (keys sort in part order); their row counts."""
    chunks = np.array_split(np.array(lines, dtype=object), parts)
    for number, chunk in enumerate(chunks):
        client("s3").put_object(
            Bucket=bucket, Key=f"{prefix}/part-{number:02d}.csv", Body="".join(chunk).encode()
        )
    return [len(chunk) for chunk in chunks]


def train(client, name: str, channels: dict[str, tuple[str, str]], instances: int) -> dict:
    """Run a job whose channels are {name: (S3 URI, distribution)}; its final description."""
    sagemaker = client("sagemaker")
    sagemaker.create_training_job(
        TrainingJobName=name,
        RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        OutputDataConfig={"S3OutputPath": f"{channels['train'][0].rsplit('/', 2)[0]}/output"},
        ResourceConfig={"InstanceCount": instances, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
        HyperParameters=HYPERPARAMETERS,
        InputDataConfig=[
            {
                "ChannelName": channel,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": uri,
                        "S3DataDistributionType": distribution,
                    }
                },
                "ContentType": "text/csv",
            }
            for channel, (uri, distribution) in channels.items()
        ],
    )
    try:
        sagemaker.get_waiter("training_job_completed_or_stopped").wait(
            TrainingJobName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 600}
        )
    except botocore.exceptions.WaiterError:
        pass  # it failed: the description says why
    return sagemaker.describe_training_job(TrainingJobName=name)


def host_logs(client, job: str) -> dict[str, list[str]]:
    """Each host's log lines, by host, read from CloudWatch Logs as the SDK reads them."""
    logs = client("logs")
    streams = logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=f"{job}/")["logStreams"]
    by_host = {}
    for stream in streams:
        host = re.fullmatch(rf"{re.escape(job)}/(algo-\d+)-\d+", stream["logStreamName"])[1]
        events = logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=stream["logStreamName"])["events"]
        by_host[host] = [event["message"] for event in events]
    return by_host


def test_rmse(client, described: dict, split) -> float:
    uri = described["ModelArtifacts"]["S3ModelArtifacts"]
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    archive = client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        assert tar.getnames() == ["xgboost-model"]
        model = tar.extractfile("xgboost-model").read()
    booster = xgboost.Booster()
    booster.load_model(bytearray(model))
    predictions = booster.predict(xgboost.DMatrix(split.X_test.to_numpy()))
    return float(np.sqrt(np.mean((predictions - split.Y_test.to_numpy()) ** 2)))


test_rmse.__test__ = False  # a helper, not a test


@pytest.fixture(scope="module")
def sharded_uris(client, bucket, boston_split):
    """Boston's training rows in 4 objects, its validation rows in 2."""
    prefix = unique("multi-instance")
    train_lines = boston_split.train_csv.read_text().splitlines(keepends=True)
    validation_lines = boston_split.validation_csv.read_text().splitlines(keepends=True)
    rows = upload_parts(client, bucket, f"{prefix}/train", train_lines, 4)
    upload_parts(client, bucket, f"{prefix}/validation", validation_lines, 2)
    return f"s3://{bucket}/{prefix}/train/", f"s3://{bucket}/{prefix}/validation/", rows


@pytest.fixture(scope="module")
def one_instance(client, sharded_uris):
    train_uri, validation_uri, _ = sharded_uris
    described = train(
        client,
        unique("one-host"),
        {"train": (train_uri, "FullyReplicated"), "validation": (validation_uri, "FullyReplicated")},
        instances=1,
    )
    assert described["TrainingJobStatus"] == "Completed", described.get("FailureReason")
    return described


@pytest.fixture(scope="module")
def two_instances(client, sharded_uris):
    train_uri, validation_uri, _ = sharded_uris
    described = train(
        client,
        unique("two-hosts"),
        {"train": (train_uri, "ShardedByS3Key"), "validation": (validation_uri, "ShardedByS3Key")},
        instances=2,
    )
    assert described["TrainingJobStatus"] == "Completed", (
        described.get("FailureReason"),
        host_logs(client, described["TrainingJobName"]),
    )
    return described


def test_two_instances_train_on_two_hosts_through_the_collective(client, two_instances):
    logs = host_logs(client, two_instances["TrainingJobName"])
    assert sorted(logs) == ["algo-1", "algo-2"]
    for host, lines in logs.items():
        text = "\n".join(lines)
        assert "Distributed node training with 2 hosts: ['algo-1', 'algo-2']" in text, host
        assert "Connected to RabitTracker." in text, host
    # The tracker runs on the first host; both hosts joined the same collective, as ranks 0 and 1.
    assert any("RabitTracker started" in line for line in logs["algo-1"])
    assert not any("RabitTracker started" in line for line in logs["algo-2"])
    assert "Rabit started - Rank 0 of 2" in "\n".join(logs["algo-1"])
    assert "Rabit started - Rank 1 of 2" in "\n".join(logs["algo-2"])
    # The master reports the (global) evaluation of every round; the metrics come from it.
    rounds = [line for line in logs["algo-1"] if re.match(r"\[\d+\]#011train-rmse", line)]
    assert len(rounds) == 60
    assert not any(re.match(r"\[\d+\]#011", line) for line in logs["algo-2"])
    metrics = {m["MetricName"] for m in two_instances["FinalMetricDataList"]}
    assert {"train:rmse", "validation:rmse"} <= metrics


def test_sharded_by_s3_key_gives_each_host_its_share(client, two_instances, sharded_uris):
    rows = sharded_uris[2]
    logs = host_logs(client, two_instances["TrainingJobName"])
    seen = {
        host: int(re.search(r"Train matrix has (\d+) rows", "\n".join(lines))[1])
        for host, lines in logs.items()
    }
    # Four objects dealt out in key order: algo-1 gets parts 0 and 2, algo-2 parts 1 and 3.
    assert seen == {"algo-1": rows[0] + rows[2], "algo-2": rows[1] + rows[3]}


def test_two_instances_are_as_accurate_as_one(client, one_instance, two_instances, boston_split):
    split = boston_split
    one = test_rmse(client, one_instance, split)
    two = test_rmse(client, two_instances, split)
    print(f"test RMSE on Boston: one instance {one:.3f}, two instances {two:.3f}")
    # Same data, split between hosts: the collective's trees differ from one host's only through
    # the merged quantile sketches, so the test RMSE is the same within noise.
    assert abs(two - one) < 0.1 * one, (one, two)
    assert two < 0.5 * float(split.Y_test.std())  # and a real model: predicting the mean gives the std


def test_fully_replicated_gives_every_host_all_the_data(client, sharded_uris):
    train_uri, validation_uri, rows = sharded_uris
    name = unique("replicated")
    described = train(
        client,
        name,
        {"train": (train_uri, "FullyReplicated"), "validation": (validation_uri, "FullyReplicated")},
        instances=2,
    )
    assert described["TrainingJobStatus"] == "Completed", described.get("FailureReason")
    for host, lines in host_logs(client, name).items():
        assert f"Train matrix has {sum(rows)} rows" in "\n".join(lines), host


def test_a_host_without_its_share_of_data_is_left_out(client, bucket, boston_split):
    prefix = unique("one-object")
    client("s3").upload_file(str(boston_split.train_csv), bucket, f"{prefix}/train/train.csv")
    name = unique("left-out")
    described = train(
        client, name, {"train": (f"s3://{bucket}/{prefix}/train/", "ShardedByS3Key")}, instances=2
    )
    assert described["TrainingJobStatus"] == "Completed", described.get("FailureReason")
    logs = host_logs(client, name)
    assert any("Host algo-2 does not have training data" in line for line in logs["algo-2"])
    assert any("Host algo-2 not being used for distributed training." in line for line in logs["algo-2"])
    assert len([line for line in logs["algo-1"] if re.match(r"\[\d+\]#011", line)]) == 60


def test_one_host_failing_fails_the_job_and_stops_the_others(client, bucket, boston_split):
    prefix = unique("one-bad-shard")
    lines = boston_split.train_csv.read_text().splitlines(keepends=True)
    client("s3").put_object(Bucket=bucket, Key=f"{prefix}/train/part-0.csv", Body="".join(lines).encode())
    client("s3").put_object(Bucket=bucket, Key=f"{prefix}/train/part-1.csv", Body=b"label;feature\n1;2\n")
    name = unique("one-fails")
    described = train(
        client, name, {"train": (f"s3://{bucket}/{prefix}/train/", "ShardedByS3Key")}, instances=2
    )
    assert described["TrainingJobStatus"] == "Failed"
    logs = host_logs(client, name)
    # algo-2's own reason; algo-1, waiting for it in the collective, was stopped and never trained.
    assert described["FailureReason"] == (
        "Failed to load csv data with exception:\ncould not convert string to float: 'label'"
    )
    assert not any("Connected to RabitTracker." in line for line in logs["algo-1"])
    assert not any("Train matrix has" in line for line in logs["algo-1"])
    assert described["SecondaryStatus"] == "Failed"
    assert described["BillableTimeInSeconds"] >= 1


# -- through the SageMaker SDK ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def target(emulator):
    with open_target(TargetSettings(name="local", endpoint_url=emulator.url), log=lambda *_: None) as opened:
        yield opened


@pytest.fixture(scope="module")
def sdk_data(target, boston_split):
    prefix = unique("multi-instance-sdk")
    s3 = target.client("s3")
    lines = boston_split.train_csv.read_text().splitlines(keepends=True)
    for number, chunk in enumerate(np.array_split(np.array(lines, dtype=object), 2)):
        s3.put_object(
            Bucket=target.bucket, Key=f"{prefix}/train/part-{number}.csv", Body="".join(chunk).encode()
        )
    s3.upload_file(str(boston_split.validation_csv), target.bucket, f"{prefix}/validation/validation.csv")
    return f"s3://{target.bucket}/{prefix}"


def test_estimator_with_instance_count_2_trains_on_two_hosts(target, sdk_data, capsys):
    from sagemaker.estimator import Estimator
    from sagemaker.inputs import TrainingInput

    estimator = Estimator(
        image_uri=IMAGE,
        role=target.role_arn,
        instance_count=2,
        instance_type="ml.m5.xlarge",
        sagemaker_session=target.sagemaker_session,
        hyperparameters={**boston.HYPERPARAMETERS, "num_round": 20},
    )
    estimator.fit(
        {
            "train": TrainingInput(
                f"{sdk_data}/train/", content_type="text/csv", distribution="ShardedByS3Key"
            ),
            "validation": TrainingInput(f"{sdk_data}/validation/", content_type="text/csv"),
        },
        logs=True,  # the SDK follows one log stream per instance
    )
    printed = capsys.readouterr().out
    assert "Rabit started - Rank 0 of 2" in printed and "Rabit started - Rank 1 of 2" in printed
    described = estimator.latest_training_job.describe()
    assert described["TrainingJobStatus"] == "Completed"
    assert described["ResourceConfig"]["InstanceCount"] == 2
    assert estimator.model_data.endswith("/output/model.tar.gz")


@pytest.mark.skipif(not sandbox.available(), reason="host names resolve through the sandbox's /etc/hosts")
def test_script_mode_hosts_reach_each_other_by_name(target, sdk_data, tmp_path):
    """A user's script on two hosts: algo-2 connects to algo-1 by name, as a framework's collective would."""
    from sagemaker.xgboost import XGBoost

    script = """
        import json, os, socket, time
        hosts, me = json.loads(os.environ["SM_HOSTS"]), os.environ["SM_CURRENT_HOST"]
        if me == hosts[0]:
            server = socket.create_server((socket.gethostbyname(me), 7777))
            connection, _ = server.accept()
            with open(os.path.join(os.environ["SM_MODEL_DIR"], "greeting.txt"), "wb") as out:
                out.write(connection.recv(100))
        else:
            for _ in range(300):
                try:
                    with socket.create_connection((hosts[0], 7777)) as connection:
                        connection.sendall(f"hello from {me} to {hosts[0]}".encode())
                    break
                except OSError:
                    time.sleep(0.1)
            with open(os.path.join(os.environ["SM_MODEL_DIR"], "greeting.txt"), "w") as out:
                out.write("not uploaded: only algo-1's model is")
    """
    directory = tmp_path / "src"
    directory.mkdir()
    (directory / "train.py").write_text(textwrap.dedent(script))
    estimator = XGBoost(
        entry_point="train.py",
        source_dir=str(directory),
        framework_version="1.7-1",
        role=target.role_arn,
        instance_count=2,
        instance_type="ml.m5.xlarge",
        sagemaker_session=target.sagemaker_session,
    )
    estimator.fit({"train": f"{sdk_data}/train/"}, logs=False)
    bucket, key = estimator.model_data.removeprefix("s3://").split("/", 1)
    archive = target.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(archive)) as model:
        assert model.extractfile("greeting.txt").read() == b"hello from algo-2 to algo-1"
