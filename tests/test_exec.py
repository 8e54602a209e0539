"""``sagelocal exec``: users' programs (a notebook, a script, a pytest file) run unchanged against
the emulator, offline.

Offline is enforced: every program runs with HTTP(S)_PROXY pointing at a closed port and only
127.0.0.1 exempt, so a call that escaped to a real AWS host (STS for the default bucket or the
role, telemetry) would fail the program.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

FIXTURES = Path(__file__).parent / "fixtures"
BOSTON_CSV = Path(__file__).parents[1] / "workflows" / "datasets" / "data" / "boston_house_prices.csv"
DEAD_PROXY = "http://127.0.0.1:9"


def offline_environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SAGELOCAL_", "SAGEMAKER_"))}
    env.update(
        HTTP_PROXY=DEAD_PROXY,
        HTTPS_PROXY=DEAD_PROXY,
        NO_PROXY="127.0.0.1,localhost",
        SAGEMAKER_SUPPRESS_V2_WARNING="1",
        **extra,
    )
    return env


def sagelocal_exec(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600):
    return subprocess.run(
        [sys.executable, "-m", "workflows.cli", "exec", *args],
        cwd=cwd,
        env=env or offline_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def succeeded(completed: subprocess.CompletedProcess) -> bool:
    if completed.returncode != 0:
        print(completed.stdout[-4000:], completed.stderr[-4000:], sep="\n")
    return completed.returncode == 0


@pytest.mark.e2e
def test_the_seed_boston_deploy_notebook_runs_unchanged_with_jupyter_execute(tmp_path, emulator, client):
    """The seed's high-level deploy notebook (SDK v2 names only): get_execution_role(), a bare
    sagemaker.Session(), fit with logs, deploy, predict, delete_endpoint, shell magics."""
    notebook_dir = tmp_path / "notebooks"
    notebook_dir.mkdir()
    shutil.copy(FIXTURES / "boston_deploy_high_level.ipynb", notebook_dir)
    shutil.copy(BOSTON_CSV, notebook_dir)
    endpoints_before = {e["EndpointName"] for e in client("sagemaker").list_endpoints()["Endpoints"]}

    completed = sagelocal_exec(
        "--endpoint",
        emulator.url,
        "--",
        "jupyter",
        "execute",
        "boston_deploy_high_level.ipynb",
        "--output=executed.ipynb",
        cwd=notebook_dir,
    )

    assert succeeded(completed)
    executed = nbformat.read(notebook_dir / "executed.ipynb", as_version=4)
    outputs = [o for cell in executed.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o["output_type"] == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "the scatter plot was drawn"
    logs = "".join(o.get("text", "") for o in outputs if o["output_type"] == "stream")
    assert "validation-rmse" in logs and "Completed - Training job completed" in logs
    sagemaker = client("sagemaker")
    job = sagemaker.list_training_jobs(SortBy="CreationTime", SortOrder="Descending")["TrainingJobSummaries"][
        0
    ]
    described = sagemaker.describe_training_job(TrainingJobName=job["TrainingJobName"])
    assert described["TrainingJobStatus"] == "Completed"
    assert described["RoleArn"] == emulator.config.role_arn  # what get_execution_role() answered
    assert described["OutputDataConfig"]["S3OutputPath"] == (
        f"s3://sagemaker-us-east-1-{emulator.config.account_id}/boston-xgboost-deploy-hl/output"
    )
    endpoints_after = {e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]}
    assert endpoints_after == endpoints_before, "the notebook deleted its endpoint"
    assert not (tmp_path / "data" / "boston").exists(), "the clean-up cell's shell commands ran"


ATTACH_SCRIPT = """\
import sys, time
import boto3
import sagemaker
from sagemaker.estimator import Estimator

sm = boto3.client("sagemaker")
name = "attach-me-" + time.strftime("%H%M%S")
bucket = "sagemaker-us-east-1-000000000000"
s3 = boto3.client("s3")
s3.create_bucket(Bucket=bucket)
s3.put_object(Bucket=bucket, Key="attach/train.csv", Body=open(sys.argv[1], "rb").read())
sm.create_training_job(
    TrainingJobName=name,
    AlgorithmSpecification={"TrainingImage": sagemaker.image_uris.retrieve("xgboost", "us-east-1", "1.7-1"),
                            "TrainingInputMode": "File"},
    RoleArn=sagemaker.get_execution_role(),
    InputDataConfig=[{"ChannelName": "train", "ContentType": "text/csv", "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/attach/", "S3DataDistributionType": "FullyReplicated"}}}],
    OutputDataConfig={"S3OutputPath": f"s3://{bucket}/attach/output"},
    ResourceConfig={"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5},
    StoppingCondition={"MaxRuntimeInSeconds": 600},
    HyperParameters={"objective": "reg:squarederror", "num_round": "5"},
)
started = time.monotonic()
estimator = Estimator.attach(name)  # its own Session(), waits for the job (a 5 s sleep per poll)
print("model_data", estimator.model_data)
print("waited", round(time.monotonic() - started, 1))
"""


@pytest.mark.e2e
def test_a_script_calling_estimator_attach_runs_unchanged_on_its_own_emulator(tmp_path):
    """Estimator.attach builds its own Session (default bucket from the SDK config, no STS) and
    waits with the SDK's poll sleeps; exec starts an emulator of its own for the script."""
    rows = "\n".join(",".join(line.split(",")[-1:] + line.split(",")[:-1]) for line in
                     BOSTON_CSV.read_text().splitlines()[2:80])  # fmt: skip
    (tmp_path / "train.csv").write_text(rows + "\n")
    (tmp_path / "attach.py").write_text(ATTACH_SCRIPT)

    completed = sagelocal_exec("--", sys.executable, "attach.py", "train.csv", cwd=tmp_path)

    assert succeeded(completed)
    lines = dict(line.split(" ", 1) for line in completed.stdout.splitlines() if " " in line)
    assert lines["model_data"].startswith("s3://sagemaker-us-east-1-000000000000/attach/output/attach-me-")
    assert lines["model_data"].endswith("/output/model.tar.gz")
    assert "emulator started at http://127.0.0.1:" in completed.stderr


USER_TESTS = """\
import boto3
import sagemaker
from sagemaker import get_execution_role


def test_upload_and_list():
    session = sagemaker.Session()
    uri = session.upload_data("data.csv", key_prefix="user-tests")
    assert uri == f"s3://{session.default_bucket()}/user-tests/data.csv"
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=session.default_bucket())["Contents"]]
    assert "user-tests/data.csv" in keys


def test_role():
    assert get_execution_role().endswith(":role/SageLocalExecutionRole")
"""


def test_a_pytest_file_runs_unchanged(tmp_path):
    (tmp_path / "data.csv").write_text("1,2\n3,4\n")
    (tmp_path / "test_user_code.py").write_text(USER_TESTS)

    completed = sagelocal_exec(
        "--",
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:randomly",
        "-p",
        "no:cacheprovider",
        cwd=tmp_path,
    )

    assert succeeded(completed)
    assert "2 passed" in completed.stdout


def test_the_exit_status_is_the_commands(tmp_path):
    assert sagelocal_exec("--", sys.executable, "-c", "raise SystemExit(3)", cwd=tmp_path).returncode == 3
    missing = sagelocal_exec("--", "no-such-command-sagelocal", cwd=tmp_path)
    assert missing.returncode == 127 and "command not found" in missing.stderr


def test_what_the_program_is_given_and_the_real_sleeps_switch(tmp_path, emulator):
    probe = (
        "import json, os, sagemaker.session as s;"
        "print(json.dumps({'endpoint': os.environ['AWS_ENDPOINT_URL'], 'clock': type(s.time).__name__,"
        "'attach': os.environ['SAGELOCAL_ENDPOINT']}))"
    )
    virtual = sagelocal_exec("--endpoint", emulator.url, "--", sys.executable, "-c", probe, cwd=tmp_path)
    real = sagelocal_exec(
        "--endpoint", emulator.url, "--real-sleeps", "--", sys.executable, "-c", probe, cwd=tmp_path
    )

    assert succeeded(virtual) and succeeded(real)
    assert json.loads(virtual.stdout.splitlines()[-1]) == {
        "endpoint": emulator.url,
        "clock": "VirtualClock",
        "attach": emulator.url,
    }
    assert json.loads(real.stdout.splitlines()[-1])["clock"] == "module"


def test_target_aws_runs_the_command_with_the_environment_untouched(tmp_path):
    probe = "import os, sys; print(os.environ.get('AWS_ENDPOINT_URL'), 'exec_site' in repr(sys.modules.get('sitecustomize')))"
    env = offline_environment(AWS_ACCESS_KEY_ID="AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY="x")

    completed = sagelocal_exec("--target", "aws", "--", sys.executable, "-c", probe, cwd=tmp_path, env=env)
    refused = sagelocal_exec(
        "--target", "aws", "--", sys.executable, "-c", probe, cwd=tmp_path,
        env={**env, "AWS_ENDPOINT_URL": "http://127.0.0.1:4566"},
    )  # fmt: skip

    assert succeeded(completed)
    assert completed.stdout.split() == ["None", "False"]
    assert refused.returncode == 2 and "AWS_ENDPOINT_URL is set" in refused.stderr


def test_the_sdk_adjustments_apply_in_process_and_are_put_back(tmp_path):
    import boto3
    import sagemaker
    import sagemaker.session

    from workflows import sdk_hooks

    original_time, original_metadata = sagemaker.session.time, sagemaker.session.NOTEBOOK_METADATA_FILE
    role = "arn:aws:iam::000000000000:role/SomeLocalRole"
    metadata = sdk_hooks.write_role_metadata(str(tmp_path / "resource-metadata.json"), role)

    with sdk_hooks.SdkAdjustments(role_metadata_file=metadata) as adjustments:
        session = sagemaker.Session(boto3.Session(region_name="us-east-1"), default_bucket="unused")
        assert sagemaker.get_execution_role(sagemaker_session=session) == role  # no STS/IAM call
        before = sagemaker.session.time.time()
        sagemaker.session.time.sleep(30)  # what wait_for_endpoint does before its first describe
        assert sagemaker.session.time.time() - before >= 30
        assert adjustments.clock.offset >= 29.9

    assert sagemaker.session.time is original_time
    assert sagemaker.session.NOTEBOOK_METADATA_FILE == original_metadata


def test_the_sdk_defaults_file_is_valid_for_the_sdk():
    from sagemaker.config import validate_sagemaker_config

    from workflows.target import sdk_defaults

    validate_sagemaker_config(sdk_defaults("a-bucket", "arn:aws:iam::000000000000:role/R"))
