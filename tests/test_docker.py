"""The Docker runner: real containers of the job's own image, through the SageMaker API.

Marked ``docker``: skipped where no Docker daemon answers or the stand-in image
(``sagelocal build-image xgboost:1.7-1``, which ``.ci/run`` builds) is missing or stale.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from emulation.containers import build
from emulation.runners import docker as docker_runner

VERSION = "1.7-1"
IMAGE = build.xgboost_image_uri(VERSION)
ROLE = "arn:aws:iam::000000000000:role/SageLocalExecutionRole"
ROOT = Path(__file__).resolve().parent.parent


def _image_ready() -> str | None:
    """Why the docker tests cannot run here, or None."""
    if not docker_runner.daemon_answers():
        return "no Docker daemon answers"
    import docker

    for base in (build.DEBOOTSTRAP_BASE, build.DEFAULT_BASE):
        if build.xgboost_image_current(VERSION, base):
            return None
    if build.image_present(IMAGE, docker.from_env()):
        return f"{IMAGE} is stale: rebuild it with `sagelocal build-image --force xgboost:{VERSION}`"
    return f"{IMAGE} is missing: `sagelocal build-image xgboost:{VERSION}` builds it"


_SKIP = _image_ready()
pytestmark = [pytest.mark.docker, pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def docker_emulator(tmp_path_factory):
    """An emulator of its own whose runner is Docker (the session's emulator runs processes)."""
    from emulation import Emulator, EmulatorConfig

    config = EmulatorConfig(port=0, data_dir=tmp_path_factory.mktemp("docker-data"), runner="docker")
    with Emulator(config) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def sagemaker_client(docker_emulator):
    import boto3

    session = boto3.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
    return lambda service: session.client(service, endpoint_url=docker_emulator.url)


def _run_workflow(workflow: str, endpoint: str, output: Path) -> dict:
    completed = subprocess.run(
        [sys.executable, "-m", "workflows.cli", "run", workflow, "--output", str(output)],
        env={**_clean_env(), "SAGELOCAL_ENDPOINT": endpoint},
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    # The SDK's progress dots may precede the line on the same line ("---!== boston-... done").
    marker = f"== {workflow} done"
    line = next(line for line in completed.stdout.splitlines() if marker in line).split(marker, 1)[1]
    figures = dict(part.strip().rsplit(" ", 1) for part in line.split(":", 1)[1].split(","))
    return {k: float(v) for k, v in figures.items()}


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}


@pytest.mark.parametrize("workflow", ["boston-high-level", "boston-low-level"])
def test_boston_workflow_on_docker_matches_the_process_runner(workflow, docker_emulator, emulator, tmp_path):
    docker_figures = _run_workflow(workflow, docker_emulator.url, tmp_path / "docker")
    process_figures = _run_workflow(workflow, emulator.url, tmp_path / "process")
    # The same algorithm code on xgboost 1.7.4 (the image's) and on the installed release.
    assert abs(docker_figures["test_rmse"] - process_figures["test_rmse"]) < 0.5, (
        docker_figures,
        process_figures,
    )
    assert docker_figures["endpoint_test_rmse"] == pytest.approx(docker_figures["test_rmse"], abs=1e-3)


def test_a_killed_container_fails_its_training_job(docker_emulator, sagemaker_client, bucket_data):
    import docker

    sagemaker = sagemaker_client("sagemaker")
    name = unique("killed")
    sagemaker.create_training_job(**_training_request(name, bucket_data, num_round="100000"))
    client = docker.from_env()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        running = [c for c in client.containers.list() if c.image.tags and IMAGE in c.image.tags]
        if running and sagemaker.describe_training_job(TrainingJobName=name)["SecondaryStatus"] == "Training":
            break
        time.sleep(0.5)
    for container in running:
        container.kill()
    described = _wait(lambda: sagemaker.describe_training_job(TrainingJobName=name), "TrainingJobStatus")
    assert described["TrainingJobStatus"] == "Failed"
    assert "137" in described["FailureReason"]


@pytest.fixture(scope="module")
def bucket_data(sagemaker_client, tmp_path_factory):
    from workflows.datasets import boston as boston_data

    split = boston_data.prepare(tmp_path_factory.mktemp("boston"))
    s3 = sagemaker_client("s3")
    bucket = unique("docker-tests")
    s3.create_bucket(Bucket=bucket)
    s3.upload_file(str(split.train_csv), bucket, "train/train.csv")
    s3.upload_file(str(split.validation_csv), bucket, "validation/validation.csv")
    return f"s3://{bucket}"


def _training_request(name: str, data: str, image: str = IMAGE, **hyperparameters) -> dict:
    return {
        "TrainingJobName": name,
        "RoleArn": ROLE,
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
        "OutputDataConfig": {"S3OutputPath": f"{data}/output"},
        "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "HyperParameters": {"objective": "reg:squarederror", "num_round": "20", **hyperparameters},
        "InputDataConfig": [
            {
                "ChannelName": channel,
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"{data}/{channel}/"}},
                "ContentType": "text/csv",
            }
            for channel in ("train", "validation")
        ],
    }


def _wait(describe, key: str, done=("Completed", "Failed", "Stopped", "InService"), timeout: float = 600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = describe()
        if described[key] in done:
            return described
        time.sleep(0.2)
    raise AssertionError(f"still {described[key]} after {timeout} s")


_BYO_TRAIN = """\
#!/usr/bin/env python3
# A bring-your-own algorithm: the mean of the training labels is the whole model.
import glob, json, os
rows = [line.split(",") for path in glob.glob("/opt/ml/input/data/train/*") for line in open(path) if line.strip()]
mean = sum(float(r[0]) for r in rows) / len(rows)
print(f"trained on {len(rows)} rows; mean={mean:.4f}", flush=True)
json.dump({"mean": mean}, open("/opt/ml/model/model.json", "w"))
"""

_BYO_SERVE = """\
#!/usr/bin/env python3
import json
from http.server import BaseHTTPRequestHandler, HTTPServer
MODEL = json.load(open("/opt/ml/model/model.json"))
class Handler(BaseHTTPRequestHandler):
    def _answer(self, body):
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def do_GET(self):
        self._answer(b"")
    def do_POST(self):
        lines = self.rfile.read(int(self.headers["Content-Length"])).decode().strip().splitlines()
        self._answer("\\n".join(str(MODEL["mean"]) for _ in lines).encode())
HTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
"""


@pytest.fixture(scope="module")
def byo_image(tmp_path_factory):
    import docker

    client = docker.from_env()
    base = build.DEBOOTSTRAP_BASE if build.image_present(build.DEBOOTSTRAP_BASE) else build.DEFAULT_BASE
    context = tmp_path_factory.mktemp("byo")
    for name, text in (("train", _BYO_TRAIN), ("serve", _BYO_SERVE)):
        (context / name).write_text(text)
        (context / name).chmod(0o755)
    (context / "Dockerfile").write_text(
        textwrap.dedent(f"""\
            FROM {base}
            COPY train serve /usr/local/bin/
            """)
    )
    tag = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mean-regressor:1"
    client.images.build(path=str(context), tag=tag, rm=True)
    yield tag
    client.images.remove(tag, force=True)


def test_bring_your_own_image_trains_and_serves(docker_emulator, sagemaker_client, bucket_data, byo_image):
    sagemaker = sagemaker_client("sagemaker")
    job = unique("byo")
    request = _training_request(job, bucket_data, image=byo_image)
    request["HyperParameters"] = {}
    sagemaker.create_training_job(**request)
    described = _wait(lambda: sagemaker.describe_training_job(TrainingJobName=job), "TrainingJobStatus")
    assert described["TrainingJobStatus"] == "Completed", described.get("FailureReason")
    model = unique("byo-model")
    sagemaker.create_model(
        ModelName=model,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={
            "Image": byo_image,
            "ModelDataUrl": described["ModelArtifacts"]["S3ModelArtifacts"],
        },
    )
    endpoint = unique("byo-endpoint")
    sagemaker.create_endpoint_config(
        EndpointConfigName=endpoint,
        ProductionVariants=[
            {
                "VariantName": "all",
                "ModelName": model,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    sagemaker.create_endpoint(EndpointName=endpoint, EndpointConfigName=endpoint)
    try:
        status = _wait(lambda: sagemaker.describe_endpoint(EndpointName=endpoint), "EndpointStatus")
        assert status["EndpointStatus"] == "InService", status.get("FailureReason")
        answer = sagemaker_client("sagemaker-runtime").invoke_endpoint(
            EndpointName=endpoint, Body=b"1,2,3\n4,5,6\n", ContentType="text/csv"
        )
        predictions = [float(v) for v in answer["Body"].read().decode().split()]
        from workflows.datasets import boston as boston_data

        labels = np.loadtxt(
            boston_data.prepare(Path(docker_emulator.config.data_dir) / "byo-check").train_csv, delimiter=","
        )[:, 0]
        assert predictions == pytest.approx([labels.mean()] * 2, rel=1e-6)
    finally:
        sagemaker.delete_endpoint(EndpointName=endpoint)


def test_runner_reports_how_a_container_ended(tmp_path):
    """The runner alone: the job's exit code, and a kill reported as the signal it was."""
    from emulation.containers.images import resolve

    runner = docker_runner.DockerRunner()
    try:
        job = tmp_path / "job"
        (job / "input" / "config").mkdir(parents=True)
        (job / "input" / "config" / "hyperparameters.json").write_text(json.dumps({"num_round": "5"}))
        (job / "input" / "config" / "inputdataconfig.json").write_text("{}")
        failed = runner.start(resolve(IMAGE), "train", job)
        status = failed.wait(300)
        assert status is not None and status.code == 1  # no train channel: the algorithm's own error
        assert "train" in (job / "output" / "failure").read_text().lower()
    finally:
        runner.shutdown()


def test_sdk_local_mode_runs_workflow_1a_with_the_stand_in_image(emulator, tmp_path):
    """``instance_type='local'``: the SDK's own local mode runs the image through docker-compose,
    with the emulator as its S3; train, deploy and predict as in workflow 1a."""
    import boto3
    from sagemaker.deserializers import CSVDeserializer
    from sagemaker.estimator import Estimator
    from sagemaker.inputs import TrainingInput
    from sagemaker.local import LocalSession
    from sagemaker.serializers import CSVSerializer

    from workflows import boston
    from workflows.datasets import boston as boston_data

    boto_session = boto3.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    )
    session = LocalSession(
        boto_session=boto_session,
        s3_endpoint_url=emulator.url,
        disable_local_code=True,
        sagemaker_config={
            "SchemaVersion": "1.0",
            "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}},
        },
    )
    session.config = {"local": {"local_code": True, "container_root": str(tmp_path)}}
    bucket = unique("local-mode")
    session.s3_client.create_bucket(Bucket=bucket)
    split = boston_data.prepare(tmp_path / "boston")
    train = session.upload_data(str(split.train_csv), bucket=bucket, key_prefix="train")
    validation = session.upload_data(str(split.validation_csv), bucket=bucket, key_prefix="validation")

    estimator = Estimator(
        IMAGE,
        ROLE,
        instance_count=1,
        instance_type="local",
        output_path=f"s3://{bucket}/output",
        sagemaker_session=session,
        hyperparameters={**boston.HYPERPARAMETERS},
    )
    estimator.fit(
        {
            "train": TrainingInput(train, content_type="text/csv"),
            "validation": TrainingInput(validation, content_type="text/csv"),
        }
    )
    assert estimator.model_data.startswith(f"s3://{bucket}/output/")
    predictor = estimator.deploy(1, "local", serializer=CSVSerializer(), deserializer=CSVDeserializer())
    try:
        predictions = np.array(predictor.predict(split.X_test.values), dtype=float).ravel()
    finally:
        predictor.delete_endpoint()
        import docker

        for container in docker.from_env().containers.list(
            all=True, filters={"ancestor": IMAGE, "status": "exited"}
        ):
            if docker_runner.OWNER_LABEL not in container.labels:  # local mode's own, left behind by the SDK
                container.remove()
    rmse = float(np.sqrt(np.mean((predictions - split.Y_test.values) ** 2)))
    assert predictions.shape == (len(split.Y_test),) and rmse < 5.0, rmse  # 1a's test RMSE is ~3.6


def test_tuning_job_on_docker_finds_the_best_child(docker_emulator, sagemaker_client, bucket_data):
    sagemaker = sagemaker_client("sagemaker")
    name = unique("docker-tune")
    definition = _training_request("unused", bucket_data)
    definition.pop("TrainingJobName")
    definition["StaticHyperParameters"] = definition.pop("HyperParameters")
    sagemaker.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name,
        HyperParameterTuningJobConfig={
            "Strategy": "Random",
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "validation:rmse"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 3, "MaxParallelTrainingJobs": 2},
            "ParameterRanges": {
                "ContinuousParameterRanges": [{"Name": "eta", "MinValue": "0.05", "MaxValue": "0.5"}]
            },
        },
        TrainingJobDefinition=definition,
    )
    described = _wait(
        lambda: sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name),
        "HyperParameterTuningJobStatus",
    )
    assert described["HyperParameterTuningJobStatus"] == "Completed", described.get("FailureReason")
    assert described["TrainingJobStatusCounters"]["Completed"] == 3
    children = sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    values = [
        c["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for c in children["TrainingJobSummaries"]
    ]
    best = described["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
    assert best == min(values) and best < 6.0
