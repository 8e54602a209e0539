"""The command line: every command run for real (on free ports, stopped by Ctrl-C), plans that
create nothing, and clear refusals."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import boto3
import pytest
import requests

from workflows import registry
from workflows.imdb_web_app import ask_public_api


def sagelocal(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "workflows.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_help_names_every_workflow_and_command():
    shown = sagelocal("--help")
    assert shown.returncode == 0
    for name in registry.WORKFLOWS:
        assert name in shown.stdout
    for command in ("run", "up", "demo", "emulator", "web"):
        assert command in shown.stdout


@pytest.mark.parametrize("name", list(registry.WORKFLOWS))
def test_plan_creates_nothing_even_without_credentials(name, tmp_path):
    """--plan on the aws target needs no account: it lists what would be created and exits."""
    empty = tmp_path / "empty"
    empty.write_text("")
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(empty), "AWS_CONFIG_FILE": str(empty), "AWS_ACCESS_KEY_ID": "",
           "AWS_SECRET_ACCESS_KEY": "", "HOME": str(tmp_path)}  # fmt: skip
    planned = sagelocal(
        "run",
        name,
        "--target",
        "aws",
        "--region",
        "eu-west-1",
        "--plan",
        "--output",
        str(tmp_path / "out"),
        env=env,
    )
    assert planned.returncode == 0, planned.stderr
    assert "would create" in planned.stdout and "nothing was created" in planned.stdout
    assert "1 x ml.m5.xlarge" in planned.stdout  # the default: a current generation
    assert "ml.m5.xlarge for training job usage >= " in planned.stdout  # the quotas it needs
    assert "prices and quotas not read: no AWS credentials" in planned.stdout
    assert not (tmp_path / "out").exists()


def test_unknown_workflow_is_refused():
    refused = sagelocal("run", "no-such-workflow")
    assert refused.returncode == 2
    assert "invalid choice" in refused.stderr


# -- the long-running commands, for real ----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Command:
    """``sagelocal <args>`` in the background; its output is collected line by line as it comes."""

    def __init__(self, *args: str, env: dict | None = None):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "workflows.cli", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
            # Ctrl-C as in a terminal, even when pytest itself was started in the background by a
            # shell without job control (which starts it, and so every child, ignoring SIGINT)
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.output)
            if match:
                return match
            assert self.process.poll() is None, f"exited {self.process.returncode}:\n{self.output}"
            time.sleep(0.1)
        raise AssertionError(f"no {pattern!r} after {timeout} s:\n{self.output}")

    def interrupt(self, timeout: float = 60) -> int:
        """Ctrl-C, as a user stops it; the exit status."""
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout)
        finally:
            self._reader.join(5)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def command():
    started: list[Command] = []

    def start(*args: str, env: dict | None = None) -> Command:
        started.append(Command(*args, env=env))
        return started[-1]

    yield start
    for running in started:
        running.kill()


def refuses_connections(url: str) -> bool:
    try:
        requests.get(url, timeout=5)
    except requests.ConnectionError:
        return True
    return False


def test_emulator_command_serves_signed_calls_until_ctrl_c(command):
    port = free_port()
    emulator = command("emulator", "--port", str(port))
    emulator.wait_for(rf"listening on http://127\.0\.0\.1:{port}", timeout=60)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while refuses_connections(f"{url}/_sagelocal/health") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert requests.get(f"{url}/_sagelocal/health", timeout=5).json()["status"] == "running"
    session = boto3.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
    assert session.client("sagemaker", endpoint_url=url).list_models()["Models"] == []
    s3 = session.client("s3", endpoint_url=url)
    s3.create_bucket(Bucket="cli-test")
    s3.put_object(Bucket="cli-test", Key="k", Body=b"v")
    assert s3.get_object(Bucket="cli-test", Key="k")["Body"].read() == b"v"
    assert emulator.interrupt() == 0
    assert refuses_connections(f"{url}/_sagelocal/health")


def test_web_command_serves_the_page_and_its_config_until_ctrl_c(command):
    api = "http://127.0.0.1:9/_aws/execute-api/abc/prod/"
    web = command("web", "--port", "0", "--api-url", api)
    url = web.wait_for(r"web page on (http://\S+/)", timeout=60)[1]
    page = requests.get(url, timeout=5)
    assert page.status_code == 200 and "<title>Sentiment Analysis Web App</title>" in page.text
    assert requests.get(f"{url}config.json", timeout=5).json() == {"apiUrl": api}
    assert web.interrupt() == 0
    assert refuses_connections(url)


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_up_command_serves_the_app_until_ctrl_c(command, tmp_path):
    up = command("up", "--port", "0", "--web-port", "0", "--output", str(tmp_path))
    up.wait_for("Ctrl-C to stop.", timeout=600)
    page_url = re.search(r"web page\s+(\S+)", up.output)[1]
    api_url = re.search(r"public API\s+(\S+)", up.output)[1]
    emulator_url = re.search(r"emulator\s+(http://\S+)", up.output)[1]
    with urllib.request.urlopen(page_url, timeout=10) as page:
        assert b"Sentiment Analysis Web App" in page.read()
    assert requests.get(f"{page_url}config.json", timeout=5).json() == {"apiUrl": api_url}
    status, body, score = ask_public_api(api_url, "A wonderful, moving film. Brilliant acting, I loved it.")
    assert (status, body) == (200, "1") and score > 0.5
    assert up.interrupt() == 0
    assert refuses_connections(page_url) and refuses_connections(f"{emulator_url}/_sagelocal/health")


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_run_command_writes_the_output_folder(tmp_path):
    """A local run with its own embedded emulator (no SAGELOCAL_ENDPOINT): figures printed, plots written."""
    env = {k: v for k, v in os.environ.items() if k != "SAGELOCAL_ENDPOINT"}
    ran = subprocess.run(
        [sys.executable, "-m", "workflows.cli", "run", "boston-low-level", "--output", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert ran.returncode == 0, ran.stderr
    assert re.search(r"== boston-low-level done in [0-9.]+ s: test_rmse [0-9.]+", ran.stdout)
    plots = sorted((tmp_path / "out" / "boston-low-level").glob("*.png"))
    assert plots and all(plot.stat().st_size > 10_000 for plot in plots)
    assert all(f"plot: {plot}" in ran.stdout for plot in plots)


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_demo_command_runs_every_workflow(tmp_path):
    ran = subprocess.run(
        [sys.executable, "-m", "workflows.cli", "demo", "--output", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    summary = ran.stdout[ran.stdout.index("workflow  ") :]
    for name in registry.WORKFLOWS:
        row = next(line for line in summary.splitlines() if line.startswith(name + " "))
        assert "FAILED" not in row and re.search(r"[0-9.]+ s", row), row
        assert any((tmp_path / name).glob("*.png")), name


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_run_keep_leaves_the_created_resources(emulator, client, tmp_path):
    """``--keep`` against a running emulator: the app's endpoint, config, model, Lambda, role and REST
    API stay, and the endpoint is still in service (without it, test_imdb_app shows nothing stays)."""
    sagemaker, awslambda, iam, apigateway = (client(s) for s in ("sagemaker", "lambda", "iam", "apigateway"))

    def inventory():
        return (
            {e["EndpointName"] for e in sagemaker.list_endpoints(MaxResults=100)["Endpoints"]},
            {
                c["EndpointConfigName"]
                for c in sagemaker.list_endpoint_configs(MaxResults=100)["EndpointConfigs"]
            },
            {m["ModelName"] for m in sagemaker.list_models(MaxResults=100)["Models"]},
            {f["FunctionName"] for f in awslambda.list_functions()["Functions"]},
            {r["RoleName"] for r in iam.list_roles()["Roles"]},
            {a["id"] for a in apigateway.get_rest_apis()["items"]},
        )

    before = inventory()
    ran = sagelocal("run", "imdb-web-app", "--keep", "--output", str(tmp_path),
                    env={"SAGELOCAL_ENDPOINT": emulator.url})  # fmt: skip
    endpoints, configs, models, functions, roles, apis = (
        after - earlier for after, earlier in zip(inventory(), before, strict=True)
    )
    try:
        assert ran.returncode == 0, ran.stderr
        assert "--keep: leaving" in ran.stdout
        assert [len(kept) for kept in (endpoints, configs, functions, roles, apis)] == [1] * 5
        (endpoint,), (config,) = endpoints, configs
        assert sagemaker.describe_endpoint(EndpointName=endpoint)["EndpointStatus"] == "InService"
        served = sagemaker.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"][0]
        assert served["ModelName"] in models  # with the transform's model too
    finally:
        for name in endpoints:
            sagemaker.delete_endpoint(EndpointName=name)
        for name in configs:
            sagemaker.delete_endpoint_config(EndpointConfigName=name)
        for name in models:
            sagemaker.delete_model(ModelName=name)
        for name in functions:
            awslambda.delete_function(FunctionName=name)
        for name in roles:
            for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
                iam.delete_role_policy(RoleName=name, PolicyName=policy)
            iam.delete_role(RoleName=name)
        for api in apis:
            apigateway.delete_rest_api(restApiId=api)
