"""Processing jobs through the SageMaker SDK v2's processors: the script really runs, its inputs come
from S3 into /opt/ml/processing/..., its outputs land in S3."""

from __future__ import annotations

import io
import textwrap
import time
import uuid

import pandas as pd
import pytest
from response_shapes import check_responses

from emulation import sandbox
from workflows.target import TargetSettings, open_target

pytestmark = pytest.mark.e2e
INSTANCE = "ml.m5.xlarge"

#: Splits a CSV into train and test by a seeded shuffle. Its paths come as arguments (/opt/ml/...,
#: pointed at the job directory when there is no sandbox), so it runs with or without bubblewrap.
SPLIT_SCRIPT = """
    import argparse, os
    import pandas as pd

    parser = argparse.ArgumentParser()
    parser.add_argument("--input")
    parser.add_argument("--output")
    parser.add_argument("--test-fraction", type=float)
    args = parser.parse_args()
    frame = pd.concat(pd.read_csv(os.path.join(args.input, f)) for f in sorted(os.listdir(args.input)))
    shuffled = frame.sample(frac=1.0, random_state=int(os.environ["SPLIT_SEED"]))
    cut = int(len(shuffled) * args.test_fraction)
    for name, part in (("test", shuffled[:cut]), ("train", shuffled[cut:])):
        os.makedirs(os.path.join(args.output, name), exist_ok=True)
        part.to_csv(os.path.join(args.output, name, f"{name}.csv"), index=False)
        print(f"{name}: {len(part)} rows")
"""


@pytest.fixture(scope="module")
def target(emulator):
    with open_target(TargetSettings(name="local", endpoint_url=emulator.url), log=lambda *_: None) as opened:
        check_responses(opened.boto_session)  # every SageMaker answer must fit botocore's output shape
        yield opened


@pytest.fixture(scope="module")
def raw_data(target):
    frame = pd.DataFrame({"x": range(100), "y": [v * 2 for v in range(100)]})
    key = f"processing-{uuid.uuid4().hex[:8]}/raw/data.csv"
    target.client("s3").put_object(Bucket=target.bucket, Key=key, Body=frame.to_csv(index=False).encode())
    return f"s3://{target.bucket}/{key.rsplit('/', 1)[0]}/"


def write(path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return str(path)


def read_csv(target, uri: str) -> pd.DataFrame:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    return pd.read_csv(io.BytesIO(target.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()))


def split_inputs_outputs(raw_data):
    from sagemaker.processing import ProcessingInput, ProcessingOutput

    inputs = [ProcessingInput(source=raw_data, destination="/opt/ml/processing/input/data")]
    outputs = [
        ProcessingOutput(output_name=name, source=f"/opt/ml/processing/{name}") for name in ("train", "test")
    ]
    return inputs, outputs


def assert_split_in_s3(target, processor):
    described = processor.latest_job.describe()
    assert described["ProcessingJobStatus"] == "Completed"
    uris = {o["OutputName"]: o["S3Output"]["S3Uri"] for o in described["ProcessingOutputConfig"]["Outputs"]}
    train = read_csv(target, f"{uris['train']}/train.csv")
    test = read_csv(target, f"{uris['test']}/test.csv")
    assert (len(train), len(test)) == (75, 25)
    assert sorted(pd.concat([train, test])["x"]) == list(range(100))  # every row, once
    assert (train["y"] == 2 * train["x"]).all()


def test_sklearn_processor_leaves_its_outputs_in_s3(target, raw_data, tmp_path):
    from sagemaker.sklearn.processing import SKLearnProcessor

    processor = SKLearnProcessor(
        framework_version="1.2-1",
        role=target.role_arn,
        instance_type=INSTANCE,
        instance_count=1,
        env={"SPLIT_SEED": "7"},
        sagemaker_session=target.sagemaker_session,
    )
    inputs, outputs = split_inputs_outputs(raw_data)
    processor.run(
        code=write(tmp_path / "split.py", SPLIT_SCRIPT),
        inputs=inputs,
        outputs=outputs,
        arguments=[
            "--input",
            "/opt/ml/processing/input/data",
            "--output",
            "/opt/ml/processing",
            "--test-fraction",
            "0.25",
        ],
        logs=False,
    )
    assert_split_in_s3(target, processor)
    logs = target.client("logs")
    streams = logs.describe_log_streams(
        logGroupName="/aws/sagemaker/ProcessingJobs", logStreamNamePrefix=processor.latest_job.job_name
    )["logStreams"]
    events = logs.get_log_events(
        logGroupName="/aws/sagemaker/ProcessingJobs", logStreamName=streams[0]["logStreamName"]
    )
    assert {"train: 75 rows", "test: 25 rows"} <= {e["message"] for e in events["events"]}


def test_script_processor_runs_its_command_on_the_image(target, raw_data, tmp_path):
    from sagemaker import image_uris
    from sagemaker.processing import ScriptProcessor

    processor = ScriptProcessor(
        command=["python3"],
        image_uri=image_uris.retrieve("sklearn", target.region, version="1.2-1"),
        role=target.role_arn,
        instance_type=INSTANCE,
        instance_count=1,
        env={"SPLIT_SEED": "3"},
        sagemaker_session=target.sagemaker_session,
    )
    inputs, outputs = split_inputs_outputs(raw_data)
    processor.run(
        code=write(tmp_path / "split.py", SPLIT_SCRIPT),
        inputs=inputs,
        outputs=outputs,
        arguments=[
            "--test-fraction",
            "0.25",
            "--input",
            "/opt/ml/processing/input/data",
            "--output",
            "/opt/ml/processing",
        ],
        logs=False,
    )
    assert_split_in_s3(target, processor)


@pytest.mark.skipif(
    not sandbox.available(), reason="the SDK's runproc.sh hard-codes /opt/ml: needs bubblewrap"
)
@pytest.mark.parametrize("framework", ["xgboost", "pytorch"])
def test_framework_processors_unpack_the_source_and_install_its_requirements(
    framework, target, raw_data, tmp_path
):
    from sagemaker.processing import FrameworkProcessor
    from sagemaker.pytorch.processing import PyTorchProcessor
    from sagemaker.xgboost import XGBoost

    common = dict(role=target.role_arn, instance_type=INSTANCE, instance_count=1, env={"SPLIT_SEED": "5"},
                  sagemaker_session=target.sagemaker_session)  # fmt: skip
    if framework == "xgboost":
        processor = FrameworkProcessor(XGBoost, "1.7-1", **common)
    else:
        processor = PyTorchProcessor(framework_version="2.3", py_version="py311", **common)
    code = tmp_path / "code"
    write(code / "split.py", "import inflection  # from requirements.txt\n" + textwrap.dedent(SPLIT_SCRIPT))
    write(code / "requirements.txt", "inflection==0.5.1\n")
    inputs, outputs = split_inputs_outputs(raw_data)
    processor.run(
        code="split.py", source_dir=str(code), inputs=inputs, outputs=outputs, logs=False,
        arguments=["--test-fraction", "0.25", "--input", "/opt/ml/processing/input/data", "--output", "/opt/ml/processing"],
    )  # fmt: skip
    assert_split_in_s3(target, processor)


def test_a_failing_processing_script_fails_the_job_and_stop_stops_one(target, tmp_path, client):
    from sagemaker.processing import ScriptProcessor
    from sagemaker.sklearn.processing import SKLearnProcessor

    failing = SKLearnProcessor(
        framework_version="1.2-1", role=target.role_arn, instance_type=INSTANCE, instance_count=1,
        sagemaker_session=target.sagemaker_session,
    )  # fmt: skip
    with pytest.raises(Exception, match="AlgorithmError: See job logs for more information"):
        failing.run(code=write(tmp_path / "fail.py", "raise SystemExit('no input given')\n"), logs=False)
    assert failing.latest_job.describe()["ProcessingJobStatus"] == "Failed"

    sleeper = ScriptProcessor(
        command=["python3"], image_uri=failing.image_uri, role=target.role_arn, instance_type=INSTANCE,
        instance_count=1, sagemaker_session=target.sagemaker_session,
    )  # fmt: skip
    sleeper.run(code=write(tmp_path / "sleep.py", "import time\ntime.sleep(600)\n"), wait=False, logs=False)
    name = sleeper.latest_job.job_name
    sagemaker = client("sagemaker")
    summaries = sagemaker.list_processing_jobs(NameContains=name)["ProcessingJobSummaries"]
    assert [(s["ProcessingJobName"], s["ProcessingJobStatus"]) for s in summaries] == [(name, "InProgress")]
    sagemaker.stop_processing_job(ProcessingJobName=name)
    deadline = time.monotonic() + 30
    while sagemaker.describe_processing_job(ProcessingJobName=name)["ProcessingJobStatus"] != "Stopped":
        assert time.monotonic() < deadline, "the processing job did not stop"
        time.sleep(0.1)


def test_processing_inputs_must_be_under_opt_ml_processing(client, bucket):
    from botocore.exceptions import ClientError

    client("s3").put_object(Bucket=bucket, Key="processing-bad/x.csv", Body=b"1\n")
    with pytest.raises(ClientError, match="must be under /opt/ml/processing/"):
        client("sagemaker").create_processing_job(
            ProcessingJobName=f"bad-path-{uuid.uuid4().hex[:8]}",
            RoleArn="arn:aws:iam::000000000000:role/SageLocalExecutionRole",
            AppSpecification={
                "ImageUri": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
                "ContainerEntrypoint": ["python3", "-c", "pass"],
            },
            ProcessingResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": INSTANCE, "VolumeSizeInGB": 5}},
            ProcessingInputs=[
                {"InputName": "data", "S3Input": {"S3Uri": f"s3://{bucket}/processing-bad/", "LocalPath": "/data",
                                                   "S3DataType": "S3Prefix", "S3InputMode": "File"}}
            ],
        )  # fmt: skip


def test_a_processing_job_is_kept_across_a_restart(in_process_emulator, client, bucket, tmp_path):
    """What the state store saves and loads: a finished job is described the same afterwards; one
    that was running ends Failed, as training and transform jobs do."""
    from emulation.sagemaker import records
    from emulation.sagemaker.backend import SageMakerBackend

    sagemaker = client("sagemaker")
    request = dict(
        RoleArn="arn:aws:iam::000000000000:role/SageLocalExecutionRole",
        AppSpecification={
            "ImageUri": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
            "ContainerEntrypoint": ["python3", "-c", "import time, sys; time.sleep(float(sys.argv[1]))"],
        },
        ProcessingResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": INSTANCE, "VolumeSizeInGB": 5}},
    )  # fmt: skip
    done, running = f"kept-{uuid.uuid4().hex[:8]}", f"cut-{uuid.uuid4().hex[:8]}"
    sagemaker.create_processing_job(ProcessingJobName=done, **{**request, "AppSpecification": {
        **request["AppSpecification"], "ContainerArguments": ["0"]}})  # fmt: skip
    deadline = time.monotonic() + 60
    while sagemaker.describe_processing_job(ProcessingJobName=done)["ProcessingJobStatus"] == "InProgress":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    sagemaker.create_processing_job(ProcessingJobName=running, **{**request, "AppSpecification": {
        **request["AppSpecification"], "ContainerArguments": ["600"]}})  # fmt: skip
    old = in_process_emulator.sagemaker
    saved = records.capture(old)
    fresh = SageMakerBackend(old.config, old.moto, old.runner)
    records.restore(fresh, saved)
    assert fresh.processing_job(done).describe() == old.processing_job(done).describe()
    restored = fresh.processing_job(running).describe()
    assert restored["ProcessingJobStatus"] == "Failed" and "restarted" in restored["FailureReason"]
    sagemaker.stop_processing_job(ProcessingJobName=running)
