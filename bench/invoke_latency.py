"""InvokeEndpoint latency through boto3 for one Boston row, next to its two baselines.

Baselines measured in the same run: raw ``Booster.predict`` on the same model in-process (the
floor: the model's own cost) and a minimal boto3 call to the same emulator (STS
GetCallerIdentity: the floor of any boto3 round trip to a local server).
"""

from __future__ import annotations

import io
import tarfile
import tempfile
import time
from pathlib import Path

import boto3

from bench.report import emit, parser, percentiles
from emulation import Emulator, EmulatorConfig
from workflows import boston, steps
from workflows.datasets import boston as boston_data

ROLE = "arn:aws:iam::000000000000:role/SageLocalExecutionRole"


def timed(call, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def deploy_boston(client, work: Path) -> tuple[str, str, bytes]:
    """Train the Boston model and deploy it; return (endpoint, one CSV row, model.tar.gz bytes)."""
    split = boston_data.prepare(work)
    s3, sagemaker = client("s3"), client("sagemaker")
    s3.create_bucket(Bucket="bench")
    for path in (split.train_csv, split.validation_csv):
        s3.upload_file(str(path), "bench", f"boston/{path.stem}/{path.name}")
    image = steps.xgboost_image("us-east-1")
    sagemaker.create_training_job(
        TrainingJobName="bench-train",
        RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": image, "TrainingInputMode": "File"},
        OutputDataConfig={"S3OutputPath": "s3://bench/out"},
        ResourceConfig={"InstanceCount": 1, "InstanceType": "ml.m4.xlarge", "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
        HyperParameters={k: str(v) for k, v in boston.HYPERPARAMETERS.items()},
        InputDataConfig=[steps.csv_channel(c, f"s3://bench/boston/{c}/") for c in ("train", "validation")],
    )
    client("sagemaker").get_waiter("training_job_completed_or_stopped").wait(
        TrainingJobName="bench-train", WaiterConfig={"Delay": 1}
    )
    artifact = sagemaker.describe_training_job(TrainingJobName="bench-train")["ModelArtifacts"][
        "S3ModelArtifacts"
    ]
    sagemaker.create_model(
        ModelName="bench", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": image, "ModelDataUrl": artifact}
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName="bench",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "bench",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m4.xlarge",
            }
        ],
    )
    sagemaker.create_endpoint(EndpointName="bench", EndpointConfigName="bench")
    sagemaker.get_waiter("endpoint_in_service").wait(EndpointName="bench", WaiterConfig={"Delay": 1})
    row = ",".join(repr(float(v)) for v in split.X_test.values[0])
    bucket, key = artifact[5:].split("/", 1)
    return "bench", row, s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def raw_predict_samples(model_tar: bytes, row: str, count: int) -> list[float]:
    """The model's own cost: the serving container's loaded Booster, predicting in-process."""
    import numpy as np

    from emulation.containers.xgboost import inference
    from emulation.containment import extract_tar

    with tempfile.TemporaryDirectory() as directory:
        extract_tar(tarfile.open(fileobj=io.BytesIO(model_tar)), Path(directory), what="The model archive")
        model = inference.load_model(Path(directory))
    features = np.array([[float(v) for v in row.split(",")]])
    return timed(lambda: model.predict(features), count)


def main(argv=None) -> dict:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    count = 2000
    with (
        tempfile.TemporaryDirectory() as work,
        Emulator(EmulatorConfig(port=0, data_dir=Path(work) / "data")) as emulator,
    ):
        session = boto3.Session(
            aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
        )
        clients: dict = {}

        def client(name):
            return clients.setdefault(name, session.client(name, endpoint_url=emulator.url))

        endpoint, row, model_tar = deploy_boston(client, Path(work))
        runtime, sts = client("sagemaker-runtime"), client("sts")

        def invoke():
            return runtime.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body=row)[
                "Body"
            ].read()

        for _ in range(200):  # warm connections and caches
            invoke()
            sts.get_caller_identity()
        started = time.perf_counter()
        invoke_ms = timed(invoke, count)
        invoke_rps = count / (time.perf_counter() - started)
        sts_ms = timed(sts.get_caller_identity, count)
        raw_ms = raw_predict_samples(model_tar, row, count)

    invoke_p, sts_p, raw_p = percentiles(invoke_ms), percentiles(sts_ms), percentiles(raw_ms)
    figures = {
        "invoke_endpoint_ms": invoke_p,
        "invoke_endpoint_requests_per_s": invoke_rps,
        "sts_get_caller_identity_ms": sts_p,
        "raw_booster_predict_ms": raw_p,
        "invoke_over_sts_p50_ratio": invoke_p["p50"] / sts_p["p50"],
        "samples": count,
    }
    emit(
        f"InvokeEndpoint, one Boston row, {count} sequential calls through boto3 (goal: p50 < 3 ms)",
        [
            ("invoke_endpoint p50 (ms)", invoke_p["p50"], ""),
            ("invoke_endpoint p99 (ms)", invoke_p["p99"], ""),
            ("invoke_endpoint requests/s", invoke_rps, "one client, sequential"),
            ("baseline sts GetCallerIdentity p50 (ms)", sts_p["p50"], "minimal boto3 call, same emulator"),
            ("baseline sts GetCallerIdentity p99 (ms)", sts_p["p99"], ""),
            ("baseline raw Booster.inplace_predict p50 (ms)", raw_p["p50"], "same model, in-process"),
            ("invoke / sts p50", figures["invoke_over_sts_p50_ratio"], "x"),
        ],
        args,
        figures,
    )
    return figures


if __name__ == "__main__":
    main()
