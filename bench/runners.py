"""The two runners side by side: workflow 1a's wall time and a training job's overhead with each.

``process`` runs this project's XGBoost container code in forked child processes; ``docker`` runs
the job's own image (the stand-in ``sagelocal build-image xgboost:1.7-1`` makes). The per-job
overhead is the wall time of a 10-round Boston job (CreateTrainingJob to Completed, polled every
20 ms): its training takes milliseconds, so the figure is what the runner costs. Needs a Docker
daemon and the image; says why not otherwise.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.report import emit, parser

ROOT = Path(__file__).resolve().parent.parent
ROLE = "arn:aws:iam::000000000000:role/SageLocalExecutionRole"
JOBS = 3


def _workflow_seconds(endpoint: str) -> float:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as output:
        subprocess.run(
            [sys.executable, "-m", "workflows.cli", "run", "boston-high-level", "--output", output],
            env={**environment, "SAGELOCAL_ENDPOINT": endpoint},
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
    return time.perf_counter() - started


def _job_overheads(emulator, data_uri: str, image: str) -> list[float]:
    import boto3

    sagemaker = boto3.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    ).client("sagemaker", endpoint_url=emulator.url)
    overheads = []
    for _ in range(JOBS):
        name = f"overhead-{uuid.uuid4().hex[:8]}"
        started = time.perf_counter()
        sagemaker.create_training_job(
            TrainingJobName=name,
            RoleArn=ROLE,
            AlgorithmSpecification={"TrainingImage": image, "TrainingInputMode": "File"},
            OutputDataConfig={"S3OutputPath": f"{data_uri}/output"},
            ResourceConfig={"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5},
            StoppingCondition={"MaxRuntimeInSeconds": 600},
            HyperParameters={"objective": "reg:squarederror", "num_round": "10"},
            InputDataConfig=[
                {
                    "ChannelName": "train",
                    "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"{data_uri}/train/"}},
                    "ContentType": "text/csv",
                }
            ],
        )
        while True:
            described = sagemaker.describe_training_job(TrainingJobName=name)
            if described["TrainingJobStatus"] in ("Completed", "Failed", "Stopped"):
                break
            time.sleep(0.02)
        if described["TrainingJobStatus"] != "Completed":
            raise RuntimeError(f"{name}: {described.get('FailureReason')}")
        overheads.append(time.perf_counter() - started)
    return overheads


def main(argv=None) -> dict:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    from emulation import Emulator, EmulatorConfig
    from emulation.containers import build
    from emulation.runners import docker as docker_runner

    if not docker_runner.daemon_answers():
        print("bench.runners: no Docker daemon answers; nothing measured", file=sys.stderr)
        return {"skipped": "no Docker daemon"}
    image = build.xgboost_image_uri("1.7-1")
    if not build.image_present(image):
        print(f"bench.runners: {image} is missing (sagelocal build-image xgboost:1.7-1)", file=sys.stderr)
        return {"skipped": "image missing"}

    figures: dict[str, dict[str, float]] = {}
    for runner in ("process", "docker"):
        with tempfile.TemporaryDirectory() as data_dir:
            config = EmulatorConfig(port=0, data_dir=Path(data_dir), runner=runner)
            with Emulator(config) as emulator:
                import boto3

                from workflows.datasets import boston

                s3 = boto3.Session(
                    aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
                ).client("s3", endpoint_url=emulator.url)
                split = boston.prepare(Path(data_dir) / "boston")
                s3.create_bucket(Bucket="bench-runners")
                s3.upload_file(str(split.train_csv), "bench-runners", "train/train.csv")
                jobs = _job_overheads(emulator, "s3://bench-runners", image)
                figures[runner] = {
                    "boston_high_level_seconds": _workflow_seconds(emulator.url),
                    "training_job_wall_median_seconds": statistics.median(jobs),
                }
    rows = []
    for key, what in (
        ("boston_high_level_seconds", "1a `sagelocal run` wall (train, transform, endpoint)"),
        (
            "training_job_wall_median_seconds",
            f"10-round training job, create to Completed (median of {JOBS})",
        ),
    ):
        process, docker = figures["process"][key], figures["docker"][key]
        rows.append((f"{what}: process", process, "s"))
        rows.append((f"{what}: docker", docker, f"s ({docker / process:.1f}x)"))
    emit("Runners: process vs docker (the stand-in sagemaker-xgboost:1.7-1 image)", rows, args, figures)
    return figures


if __name__ == "__main__":
    main()
