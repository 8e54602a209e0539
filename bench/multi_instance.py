"""Multi-instance training: a Boston job's wall time and test RMSE on one host and on two.

Each job trains 100 rounds on Boston's training rows, stored as two objects; the two-host job shards
them (ShardedByS3Key), so each host holds half and XGBoost's collective joins them every round.
Wall time is CreateTrainingJob to Completed (polled every 20 ms), median of 3. Both hosts run on
this machine, so two hosts are not faster: the ratio is what the collective (its tracker, two
rendezvous, an allreduce per round) costs here.
"""

from __future__ import annotations

import io
import statistics
import tarfile
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from bench.report import emit, parser

ROLE = "arn:aws:iam::000000000000:role/SageLocalExecutionRole"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
JOBS = 3


def _train(sagemaker, s3, bucket: str, instances: int) -> tuple[float, bytes]:
    name = f"bench-hosts-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    sagemaker.create_training_job(
        TrainingJobName=name,
        RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        OutputDataConfig={"S3OutputPath": f"s3://{bucket}/output"},
        ResourceConfig={"InstanceCount": instances, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
        HyperParameters={"objective": "reg:squarederror", "num_round": "100", "max_depth": "4", "eta": "0.1"},
        InputDataConfig=[
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"s3://{bucket}/train/",
                        "S3DataDistributionType": "ShardedByS3Key",
                    }
                },
                "ContentType": "text/csv",
            }
        ],
    )
    while True:
        described = sagemaker.describe_training_job(TrainingJobName=name)
        if described["TrainingJobStatus"] in ("Completed", "Failed", "Stopped"):
            break
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    if described["TrainingJobStatus"] != "Completed":
        raise RuntimeError(f"{name}: {described.get('FailureReason')}")
    key = described["ModelArtifacts"]["S3ModelArtifacts"].removeprefix(f"s3://{bucket}/")
    archive = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return seconds, tar.extractfile("xgboost-model").read()


def main(argv=None) -> dict:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    import boto3
    import xgboost

    from emulation import Emulator, EmulatorConfig
    from workflows.datasets import boston

    figures: dict[str, dict[str, float]] = {}
    with (
        tempfile.TemporaryDirectory() as data_dir,
        Emulator(EmulatorConfig(port=0, data_dir=Path(data_dir))) as emulator,
    ):
        session = boto3.Session(
            aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
        )
        s3 = session.client("s3", endpoint_url=emulator.url)
        sagemaker = session.client("sagemaker", endpoint_url=emulator.url)
        split = boston.prepare(Path(data_dir) / "boston")
        s3.create_bucket(Bucket="bench-hosts")
        lines = split.train_csv.read_text().splitlines(keepends=True)
        half = len(lines) // 2
        for number, part in enumerate((lines[:half], lines[half:])):
            s3.put_object(Bucket="bench-hosts", Key=f"train/part-{number}.csv", Body="".join(part).encode())
        for instances in (1, 2):
            runs = [_train(sagemaker, s3, "bench-hosts", instances) for _ in range(JOBS)]
            booster = xgboost.Booster()
            booster.load_model(bytearray(runs[-1][1]))
            predicted = booster.predict(xgboost.DMatrix(split.X_test.to_numpy()))
            figures[f"{instances}_hosts"] = {
                "wall_median_seconds": statistics.median(seconds for seconds, _ in runs),
                "test_rmse": float(np.sqrt(np.mean((predicted - split.Y_test.to_numpy()) ** 2))),
            }
    one, two = figures["1_hosts"], figures["2_hosts"]
    rows = [
        (
            f"100-round Boston job, create to Completed (median of {JOBS}): 1 host",
            one["wall_median_seconds"],
            "s",
        ),
        (
            "  the same job on 2 hosts (ShardedByS3Key)",
            two["wall_median_seconds"],
            f"s ({two['wall_median_seconds'] / one['wall_median_seconds']:.2f}x)",
        ),
        ("test RMSE: 1 host", one["test_rmse"], ""),
        ("test RMSE: 2 hosts", two["test_rmse"], ""),
    ]
    emit("Multi-instance training (both hosts on this machine)", rows, args, figures)
    return figures


if __name__ == "__main__":
    main()
