"""Script mode on the local target: what a training job costs beyond the user's script, and what a
``requirements.txt`` environment costs the first time (cold) and afterwards (warm).

Overhead = the job's wall time (CreateTrainingJob until DescribeTrainingJob says Completed, polled
every 5 ms) minus the script's own time (it prints how long it ran; a MetricDefinition reads it
back). The baseline, measured in the same run: the same script started directly with
``subprocess`` (interpreter start included), i.e. what running ``python train.py`` yourself costs
beyond the script. Goal: overhead under 300 ms warm. The cold figure is one pip install into a
fresh environment cache (it includes reaching the package index).
"""

from __future__ import annotations

import io
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import boto3

from bench.report import emit, parser
from emulation import Emulator, EmulatorConfig, sandbox

ROLE = "arn:aws:iam::000000000000:role/SageLocalExecutionRole"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
#: A script that does a fixed amount of work and reports how long it ran, start of file to end.
SCRIPT = """\
import time
started = time.perf_counter()
import argparse, os
parser = argparse.ArgumentParser()
parser.add_argument("--work-seconds", type=float)
args = parser.parse_args()
time.sleep(args.work_seconds)
open(os.path.join(os.environ.get("SM_MODEL_DIR", "."), "model.txt"), "w").write("done")
print(f"script_seconds={time.perf_counter() - started:.6f}")
"""
REQUIREMENTS = "inflection==0.5.1\n"
WORK_SECONDS = 0.2
RUNS = 7


def _source(requirements: bool) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        files = {"train.py": SCRIPT, **({"requirements.txt": REQUIREMENTS} if requirements else {})}
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def train(sagemaker, name: str, source_uri: str) -> tuple[float, float, str]:
    """(wall seconds, the script's own seconds, status) of one script-mode training job."""
    started = time.perf_counter()
    sagemaker.create_training_job(
        TrainingJobName=name,
        RoleArn=ROLE,
        AlgorithmSpecification={
            "TrainingImage": IMAGE,
            "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": "script:seconds", "Regex": r"script_seconds=([0-9.]+)"}],
        },
        HyperParameters={
            "sagemaker_program": '"train.py"',
            "sagemaker_submit_directory": f'"{source_uri}"',
            "work-seconds": str(WORK_SECONDS),
        },
        InputDataConfig=[
            {
                "ChannelName": "train",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bench/data/"}},
            }
        ],
        OutputDataConfig={"S3OutputPath": "s3://bench/out"},
        ResourceConfig={"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
    )
    while True:
        described = sagemaker.describe_training_job(TrainingJobName=name)
        if described["TrainingJobStatus"] not in ("InProgress", "Stopping"):
            break
        time.sleep(0.005)
    wall = time.perf_counter() - started
    metrics = {m["MetricName"]: m["Value"] for m in described.get("FinalMetricDataList", [])}
    return wall, metrics.get("script:seconds", float("nan")), described["TrainingJobStatus"]


def direct_overhead(work: Path) -> float:
    """Running the script yourself: subprocess wall time minus the script's own time (median)."""
    script = work / "direct.py"
    script.write_text(SCRIPT)
    overheads = []
    for _ in range(RUNS):
        started = time.perf_counter()
        output = subprocess.run(
            [sys.executable, str(script), "--work-seconds", str(WORK_SECONDS)],
            cwd=work, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        wall = time.perf_counter() - started
        overheads.append(wall - float(re.search(r"script_seconds=([0-9.]+)", output)[1]))
    return statistics.median(overheads)


def main(argv: list[str] | None = None) -> dict:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        config = EmulatorConfig(port=0, data_dir=work / "data", cache_dir=work / "cache")
        with Emulator(config) as emulator:
            session = boto3.Session(
                aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
            )
            s3 = session.client("s3", endpoint_url=emulator.url)
            sagemaker = session.client("sagemaker", endpoint_url=emulator.url)
            s3.create_bucket(Bucket="bench")
            s3.put_object(Bucket="bench", Key="data/rows.csv", Body=b"1,2,3\n")
            for requirements in (False, True):
                s3.put_object(Bucket="bench", Key=f"source/{requirements}.tar.gz", Body=_source(requirements))
            plain = "s3://bench/source/False.tar.gz"
            with_requirements = "s3://bench/source/True.tar.gz"

            train(sagemaker, "warm-up", plain)  # the first job pays the emulator's own lazy imports
            plain_runs = [train(sagemaker, f"plain-{i}", plain) for i in range(RUNS)]
            cold = train(sagemaker, "requirements-cold", with_requirements)
            warm_runs = [train(sagemaker, f"requirements-warm-{i}", with_requirements) for i in range(RUNS)]
        baseline = direct_overhead(work)

    statuses = {status for _, _, status in [*plain_runs, cold, *warm_runs]}
    overhead = statistics.median(wall - own for wall, own, _ in plain_runs)
    warm = statistics.median(wall - own for wall, own, _ in warm_runs)
    cold_overhead = cold[0] - cold[1]
    figures = {
        "sandboxed": sandbox.available(),
        "job_statuses": sorted(statuses),
        "script_seconds": WORK_SECONDS,
        "overhead_s_median": overhead,
        "direct_subprocess_overhead_s_median": baseline,
        "overhead_beyond_direct_run_s": overhead - baseline,
        "requirements_cold_overhead_s": cold_overhead,
        "requirements_warm_overhead_s_median": warm,
        "requirements_cold_cost_s": cold_overhead - overhead,
        "requirements_warm_cost_s": warm - overhead,
    }
    rows = [
        ("sandbox (bubblewrap)", "yes" if figures["sandboxed"] else "no", ""),
        ("job statuses", ", ".join(figures["job_statuses"]), f"{2 * RUNS + 2} jobs"),
        (
            "script-mode job overhead, median (s)",
            overhead,
            f"wall minus the script's own {WORK_SECONDS} s; goal < 0.3",
        ),
        ("  running the script yourself (s)", baseline, "subprocess wall minus the script's time, same run"),
        ("  overhead beyond that (s)", overhead - baseline, ""),
        (
            "requirements.txt, cold: job overhead (s)",
            cold_overhead,
            "first use: pip install into a new environment",
        ),
        ("requirements.txt, warm: job overhead, median (s)", warm, "the cached environment"),
        (
            "  cold cost of the environment (s)",
            cold_overhead - overhead,
            "cold overhead minus plain overhead",
        ),
        ("  warm cost of the environment (s)", warm - overhead, "warm overhead minus plain overhead"),
    ]
    emit("Script mode: training job overhead and requirements.txt environments", rows, args, figures)
    return figures


if __name__ == "__main__":
    main()
