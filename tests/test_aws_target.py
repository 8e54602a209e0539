"""The aws target without an AWS account: what it builds, what it refuses, and its cleanup.

Nothing here reaches the network. Where boto3 clients are built, every request is refused by a
``before-send`` hook. Runs against moto's in-process AWS happen in child processes (``mock_aws``
resets moto's global backends, which the session's live emulator uses): the cleanup of IAM, Lambda
and API Gateway resources below, and every registered workflow end to end (tests/moto_aws.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import boto3
import pytest

from workflows import registry
from workflows import target as target_module
from workflows.target import TargetError, TargetSettings, open_target

ROOT = Path(__file__).resolve().parent.parent
REGION = "eu-west-1"
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
BUCKET = "my-sagemaker-bucket"


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """A clean AWS environment: no variables, empty config and credentials files, no IMDS."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "SAGELOCAL_")):
            monkeypatch.delenv(name)
    for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        empty = tmp_path / name.lower()
        empty.write_text("")
        monkeypatch.setenv(name, str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return monkeypatch


@pytest.fixture
def fake_credentials(aws_env):
    aws_env.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    aws_env.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    return aws_env


class _NoNetwork(Exception):
    pass


@pytest.fixture
def recorded(monkeypatch):
    """Every boto3 session the target builds, and every API call its clients try (none may leave)."""
    record = {"sessions": [], "calls": []}

    class RecordingSession(boto3.Session):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            record["sessions"].append(self)
            self.events.register("before-call", self._record_call)
            self.events.register("before-send", self._refuse)

        @staticmethod
        def _record_call(model=None, **kwargs):
            record["calls"].append(f"{model.service_model.service_name}.{model.name}")

        @staticmethod
        def _refuse(request=None, **kwargs):
            raise _NoNetwork(f"a test tried to reach {request.url}")

    monkeypatch.setattr(target_module.boto3, "Session", RecordingSession)
    return record


def _aws(**overrides) -> TargetSettings:
    return TargetSettings(
        **{"name": "aws", "region": REGION, "role_arn": ROLE, "bucket": BUCKET, **overrides}
    )


def test_aws_target_uses_the_real_regional_endpoints_and_the_given_role(fake_credentials, recorded):
    with open_target(_aws(), log=lambda *_: None) as target:
        assert target.name == "aws"
        assert target.region == REGION
        assert target.role_arn == ROLE
        assert target.bucket == BUCKET
        assert target.endpoint_url is None
        assert target.boto_session.region_name == REGION
        assert target.client("sagemaker").meta.endpoint_url == f"https://api.sagemaker.{REGION}.amazonaws.com"
        assert target.client("s3").meta.endpoint_url == f"https://s3.{REGION}.amazonaws.com"
        assert target.client("lambda").meta.endpoint_url == f"https://lambda.{REGION}.amazonaws.com"
        sdk = target.sagemaker_session
        assert sdk.boto_session is target.boto_session
        assert sdk.sagemaker_client.meta.endpoint_url == f"https://api.sagemaker.{REGION}.amazonaws.com"
        assert (
            sdk.sagemaker_runtime_client.meta.endpoint_url
            == f"https://runtime.sagemaker.{REGION}.amazonaws.com"
        )
        # The bucket is passed in, so default_bucket() never has to ask STS for the account.
        assert sdk._default_bucket_name_override == BUCKET
        assert "AWS_ENDPOINT_URL" not in os.environ
    # Opening the target and closing it with nothing created made no API call (no STS either).
    assert recorded["calls"] == []
    assert recorded["sessions"][0] is target.boto_session


def test_aws_target_without_a_bucket_asks_sts_for_the_account(fake_credentials, recorded):
    # The only call the aws target makes by itself; refused here, so the target never opens.
    with pytest.raises(_NoNetwork), open_target(_aws(bucket=None), log=lambda *_: None):
        pytest.fail("the target opened")
    assert recorded["calls"] == ["sts.GetCallerIdentity"]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"role_arn": None}, "--role-arn (or SAGELOCAL_ROLE_ARN)"),
        ({"region": None}, "--region (or AWS_REGION)"),
        ({"role_arn": None, "region": None}, "--region (or AWS_REGION) and --role-arn"),
        ({"role_arn": ""}, "--role-arn"),
    ],
)
def test_aws_target_refuses_to_start_without_role_or_region(fake_credentials, recorded, overrides, expected):
    with pytest.raises(TargetError, match="the aws target needs") as error, open_target(_aws(**overrides)):
        pytest.fail("the target opened")
    assert expected in str(error.value)
    assert recorded["sessions"] == [] and recorded["calls"] == []


def test_aws_target_refuses_without_credentials(aws_env, recorded):
    with pytest.raises(TargetError, match="no AWS credentials found") as error, open_target(_aws()):
        pytest.fail("the target opened")
    assert "aws configure" in str(error.value)
    assert recorded["calls"] == []


def test_aws_target_refuses_when_aws_endpoint_url_points_elsewhere(fake_credentials, recorded):
    fake_credentials.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    with pytest.raises(TargetError, match="AWS_ENDPOINT_URL is set"), open_target(_aws()):
        pytest.fail("the target opened")
    assert recorded["sessions"] == [] and recorded["calls"] == []


# --- the CLI -----------------------------------------------------------------------------------


def _cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    clean = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "AWS_EC2_METADATA_DISABLED": "true",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "workflows.cli", *args],
        cwd=tmp_path,
        env={**clean, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_aws_target_without_role_or_region_exits_2_with_a_clear_message(tmp_path):
    result = _cli(tmp_path, "run", "boston-low-level", "--target", "aws")
    assert result.returncode == 2, result.stderr
    assert "sagelocal: the aws target needs --region (or AWS_REGION) and --role-arn" in result.stderr
    assert "Traceback" not in result.stderr
    assert "== boston-low-level" not in result.stdout  # the workflow never started
    assert not (tmp_path / "sagelocal-output").exists()


def test_cli_target_from_the_environment_is_the_same_setting(tmp_path):
    result = _cli(tmp_path, "run", "boston-low-level", SAGELOCAL_TARGET="aws", AWS_REGION=REGION)
    assert result.returncode == 2, result.stderr
    assert "needs --role-arn (or SAGELOCAL_ROLE_ARN)" in result.stderr
    assert "--region" not in result.stderr


def test_cli_unknown_target_in_the_environment_exits_2(tmp_path):
    result = _cli(tmp_path, "run", "boston-low-level", SAGELOCAL_TARGET="gcp")
    assert result.returncode == 2
    assert "unknown target 'gcp'" in result.stderr


# --- TargetSettings.from_environment -------------------------------------------------------------


def test_settings_flags_win_over_the_environment(aws_env):
    aws_env.setenv("SAGELOCAL_TARGET", "local")
    aws_env.setenv("AWS_REGION", "us-east-1")
    aws_env.setenv("SAGELOCAL_ROLE_ARN", "arn:aws:iam::000000000000:role/FromEnv")
    aws_env.setenv("SAGELOCAL_BUCKET", "bucket-from-env")
    aws_env.setenv("SAGELOCAL_ENDPOINT", "http://127.0.0.1:4566")
    settings = TargetSettings.from_environment(
        name="aws",
        region=REGION,
        role_arn=ROLE,
        bucket=BUCKET,
        endpoint_url="http://127.0.0.1:9999",
        keep=True,
    )
    assert settings == TargetSettings(
        name="aws",
        region=REGION,
        role_arn=ROLE,
        bucket=BUCKET,
        endpoint_url="http://127.0.0.1:9999",
        keep=True,
    )


def test_settings_unset_flags_fall_back_to_the_environment(aws_env):
    aws_env.setenv("SAGELOCAL_TARGET", "aws")
    aws_env.setenv("AWS_DEFAULT_REGION", REGION)
    aws_env.setenv("SAGELOCAL_ROLE_ARN", ROLE)
    aws_env.setenv("SAGELOCAL_BUCKET", BUCKET)
    settings = TargetSettings.from_environment(name=None, region=None, role_arn=None, bucket=None, keep=False)
    assert settings == TargetSettings(name="aws", region=REGION, role_arn=ROLE, bucket=BUCKET)
    aws_env.setenv("AWS_REGION", "ap-south-1")  # AWS_REGION before AWS_DEFAULT_REGION, as in botocore
    assert TargetSettings.from_environment().region == "ap-south-1"


def test_settings_default_to_local(aws_env):
    assert TargetSettings.from_environment(name=None) == TargetSettings(name="local")


@pytest.mark.parametrize("where", ["flag", "environment"])
def test_settings_unknown_target_raises(aws_env, where):
    if where == "environment":
        aws_env.setenv("SAGELOCAL_TARGET", "azure")
    with pytest.raises(TargetError, match=r"unknown target 'azure': choose one of local, aws"):
        TargetSettings.from_environment(name="azure" if where == "flag" else None)


# --- cleanup of IAM, Lambda and API Gateway, in a child process under moto's mock ---------------

SCENARIO = textwrap.dedent(
    """
    import io, json, zipfile

    import boto3
    from moto import mock_aws

    from workflows.target import TargetSettings, open_target

    REGION = "eu-west-1"
    SETTINGS = TargetSettings(name="aws", region=REGION, role_arn="arn:aws:iam::123456789012:role/SageMakerRole",
                              bucket="unused-bucket")
    TRUST = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    INLINE = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": "sagemaker:InvokeEndpoint", "Resource": "*"}]})
    MANAGED = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
    report = {}


    def package():
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("lambda_function.py", "def lambda_handler(event, context):\\n    return {}\\n")
        return buffer.getvalue()


    def create_all(target, fail_after_role=False):
        iam, fn, api = target.client("iam"), target.client("lambda"), target.client("apigateway")
        arn = iam.create_role(RoleName="sentiment-lambda", AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
        iam.put_role_policy(RoleName="sentiment-lambda", PolicyName="invoke-endpoint", PolicyDocument=INLINE)
        iam.attach_role_policy(RoleName="sentiment-lambda", PolicyArn=MANAGED)
        if fail_after_role:
            raise RuntimeError("injected failure between creations")
        fn.create_function(FunctionName="sentiment", Runtime="python3.11", Role=arn,
                           Handler="lambda_function.lambda_handler", Code={"ZipFile": package()})
        api.create_rest_api(name="sentiment-api")
        return sorted(f"{r.service}:{r.kind}" for r in target.tracker.created)


    def left(session):
        iam, fn, api = session.client("iam"), session.client("lambda"), session.client("apigateway")
        return {
            "roles": [r["RoleName"] for r in iam.list_roles()["Roles"]],
            "functions": [f["FunctionName"] for f in fn.list_functions()["Functions"]],
            "rest_apis": [a["name"] for a in api.get_rest_apis()["items"]],
        }


    with mock_aws():
        observer = boto3.Session(region_name=REGION)

        with open_target(SETTINGS, log=lambda *_: None) as target:
            report["tracked"] = create_all(target)
            report["before_cleanup"] = left(observer)
        report["after_cleanup"] = left(observer)

        try:
            with open_target(SETTINGS, log=lambda *_: None) as target:
                create_all(target, fail_after_role=True)
        except RuntimeError as error:
            report["failure"] = str(error)
        report["after_failure"] = left(observer)

        with open_target(SETTINGS, log=lambda *_: None) as target:
            create_all(target)
            target.client("lambda").delete_function(FunctionName="sentiment")  # the workflow's own delete
            report["already_gone_problems"] = target.tracker.cleanup(log=lambda *_: None)
        report["after_already_gone"] = left(observer)

        with open_target(TargetSettings(**{**SETTINGS.__dict__, "keep": True}), log=lambda *_: None) as target:
            create_all(target)
        report["after_keep"] = left(observer)

    print("REPORT " + json.dumps(report))
    """
)


def test_cleanup_removes_iam_lambda_and_api_gateway_resources_also_after_a_failure(tmp_path):
    script = tmp_path / "cleanup_scenario.py"
    script.write_text(SCENARIO)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
        "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
        # AWS managed policies (AWSLambdaBasicExecutionRole, as the imdb-web-app workflow attaches).
        "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
    }
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout.split("REPORT ", 1)[1])
    nothing = {"roles": [], "functions": [], "rest_apis": []}
    everything = {"roles": ["sentiment-lambda"], "functions": ["sentiment"], "rest_apis": ["sentiment-api"]}

    assert report["tracked"] == [
        "apigateway:rest-api",
        "iam:inline-policy",
        "iam:role",
        "iam:role-policy",
        "lambda:function",
        "logs:log-group",
    ]
    assert report["before_cleanup"] == everything
    assert report["after_cleanup"] == nothing
    assert report["failure"] == "injected failure between creations"
    assert report["after_failure"] == nothing
    assert report["already_gone_problems"] == []
    assert report["after_already_gone"] == nothing
    assert report["after_keep"] == everything


# --- every workflow on the aws target against moto: creation, cleanup, failures, Ctrl-C, quotas -----


def _moto_run(workflow: str, tmp_path: Path) -> dict:
    """tests/moto_aws.py in its own process (mock_aws replaces moto's global state)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        "MPLBACKEND": "Agg",
    }
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "moto_aws.py"), workflow, str(tmp_path / "out")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=3000,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return json.loads(result.stdout.split("REPORT ", 1)[1])


#: What each workflow must create on AWS (beyond its uploads), as the tracker sees the calls.
EXPECTED_CREATIONS = {
    "boston-high-level": {"CreateTrainingJob", "CreateModel", "CreateTransformJob", "CreateEndpointConfig", "CreateEndpoint"},
    "boston-low-level": {"CreateTrainingJob", "CreateModel", "CreateTransformJob", "CreateEndpointConfig", "CreateEndpoint"},
    "boston-tuning-high-level": {"CreateHyperParameterTuningJob", "CreateModel", "CreateTransformJob"},
    "boston-tuning-low-level": {"CreateHyperParameterTuningJob", "CreateModel", "CreateTransformJob"},
    "boston-script-mode": {
        "CreateProcessingJob", "CreateHyperParameterTuningJob", "CreateModel", "CreateEndpointConfig",
        "CreateEndpoint",
    },
    "imdb-web-app": {
        "CreateTrainingJob", "CreateModel", "CreateTransformJob", "CreateEndpointConfig", "CreateEndpoint",
        "CreateRole", "PutRolePolicy", "CreateFunction", "CreateRestApi",
    },
}  # fmt: skip


def test_every_workflow_has_a_run_on_moto():
    assert sorted(EXPECTED_CREATIONS) == sorted(registry.WORKFLOWS)


@pytest.mark.parametrize("workflow", list(EXPECTED_CREATIONS))
def test_workflow_on_the_aws_target_leaves_nothing_behind_also_after_failures_and_ctrl_c(workflow, tmp_path):
    """The workflow's real code path (SDK included) against moto's AWS: a clean run, a failure
    injected at each creating call, Ctrl-C at each (with a second Ctrl-C during cleanup), and a
    quota of 0; after each, listing the whole account finds nothing the run made."""
    report = _moto_run(workflow, tmp_path)
    # --plan with credentials reads the account's quotas (moto has no Price List API: it says so).
    assert "ml.m5.xlarge for training job usage >= " in report["plan"]
    assert "(this account: " in report["plan"] and "nothing was created." in report["plan"]
    assert "the Price List API did not answer" in report["plan"]
    scenarios = report["scenarios"]
    clean = scenarios["clean"]
    assert clean["outcome"] == "completed", clean["outcome"]
    assert EXPECTED_CREATIONS[workflow] <= set(clean["creating_calls"])
    assert "PutObject" in clean["creating_calls"]  # the uploads, removed by cleanup too
    assert any("deleted 1 object(s) of job-outputs" in line for line in clean["cleanup_log"]), clean[
        "cleanup_log"
    ]
    assert any(
        "log stream(s) of log-streams /aws/sagemaker/TrainingJobs" in line for line in clean["cleanup_log"]
    )
    steps = len(clean["creating_calls"])
    assert sorted(scenarios) == sorted(
        [
            "clean",
            "quota",
            *(f"fail@{n}" for n in range(1, steps + 1)),
            *(f"ctrl-c@{n}" for n in range(1, steps + 1)),
        ]
    )
    for label, scenario in scenarios.items():
        assert scenario["left"] == {}, f"{label}: {scenario['left']} ({scenario['outcome']})"
        if label.startswith("fail@"):
            assert scenario["outcome"] == "injected failure", f"{label}: {scenario['outcome']}"
        if label.startswith("ctrl-c@"):
            assert scenario["outcome"] == "interrupted", f"{label}: {scenario['outcome']}"
    # Once something exists, the second Ctrl-C arrives during cleanup and does not stop it.
    assert all(scenarios[f"ctrl-c@{n}"]["second_ctrl_c_sent"] for n in range(2, steps + 1))
    quota = scenarios["quota"]
    assert quota["outcome"].startswith("TargetError: this account's SageMaker quotas would stop the run")
    short = "endpoint usage" if "CreateEndpoint" in EXPECTED_CREATIONS[workflow] else "training job usage"
    assert f'ml.m5.xlarge for {short}" is 0, the run needs' in quota["outcome"]
    assert quota["creating_calls"] == []  # refused before anything was created
