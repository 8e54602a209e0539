"""Shared fixtures: one real emulator on a free port for the whole session, and clients for it.

With SAGELOCAL_ENDPOINT set (``tox -e e2e`` against a running stack, e.g. ``sagelocal emulator``,
``sagelocal up`` or ``docker compose up``), the tests use that emulator instead of starting one;
tests that reach into the emulator's process ask for ``in_process_emulator`` and are skipped there,
with the reason. Every test makes the resources it checks (names with a random suffix), so the
suite runs in any order, file by file, and against a stack that already holds other resources.
"""

from __future__ import annotations

import io
import json
import os
import re
import textwrap
import time
import zipfile
from dataclasses import dataclass, field

import boto3
import pytest

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

from response_shapes import check_responses  # noqa: E402

from emulation import Emulator, EmulatorConfig  # noqa: E402
from emulation.apigateway import execute_api_url  # noqa: E402

REGION = "us-east-1"


@dataclass
class RunningStack:
    """An emulator started elsewhere: only its URL and the default credentials are known."""

    url: str
    config: EmulatorConfig = field(default_factory=EmulatorConfig)

    def execute_api_url(self, api_id: str, stage: str) -> str:
        return execute_api_url(self.url, api_id, stage)


@pytest.fixture(scope="session")
def emulator(tmp_path_factory):
    if os.environ.get("SAGELOCAL_ENDPOINT"):
        yield RunningStack(os.environ["SAGELOCAL_ENDPOINT"].rstrip("/"))
        return
    config = EmulatorConfig(port=0, data_dir=tmp_path_factory.mktemp("sagelocal-data"))
    with Emulator(config) as running:
        yield running


@pytest.fixture(scope="session")
def emulator_capabilities(emulator) -> dict:
    """What the emulator's machine gives users' code (its health answer): a running stack may lack
    bubblewrap or a framework's package that this machine has."""
    import json
    import urllib.request

    with urllib.request.urlopen(f"{emulator.url}/_sagelocal/health", timeout=30) as answer:
        return json.load(answer)


@pytest.fixture
def sandboxed_emulator(emulator_capabilities):
    """For tests of what only bubblewrap gives a job (its directory at /opt/ml)."""
    if not emulator_capabilities["sandbox"]:
        pytest.skip("the emulator has no bubblewrap sandbox: a job's directory is at /opt/ml only inside it")


@pytest.fixture
def emulator_with_torch(emulator_capabilities):
    """For PyTorch script mode, which runs on the emulator's own torch (.ci/run installs the CPU build)."""
    if not emulator_capabilities["frameworks"]["pytorch"]:
        pytest.skip("the emulator's Python has no torch: PyTorch script mode runs on it")


@pytest.fixture
def in_process_emulator(emulator):
    """For tests that reach into the emulator's state or processes (e.g. to kill a job's process)."""
    if isinstance(emulator, RunningStack):
        pytest.skip(
            "reaches into the emulator's process: not possible with SAGELOCAL_ENDPOINT (an external stack)"
        )
    return emulator


@pytest.fixture(scope="session")
def boto_session(emulator):
    session = boto3.Session(
        aws_access_key_id=emulator.config.access_key_id,
        aws_secret_access_key=emulator.config.secret_access_key,
        region_name=REGION,
    )
    check_responses(session)  # every SageMaker answer the tests get must fit botocore's output shape
    return session


@pytest.fixture(scope="session")
def client(emulator, boto_session):
    """``client("sagemaker")``: a boto3 client pointed at the emulator."""
    cache = {}

    def make(service: str):
        if service not in cache:
            cache[service] = boto_session.client(service, endpoint_url=emulator.url)
        return cache[service]

    return make


@pytest.fixture(scope="session")
def bucket(client):
    name = "sagelocal-tests"
    client("s3").create_bucket(Bucket=name)
    return name


# -- Lambda ---------------------------------------------------------------------------------------
LAMBDA_ROLE_ARN = "arn:aws:iam::000000000000:role/lambda-role"


@pytest.fixture(scope="session")
def lambda_role(emulator, client) -> str:
    """The tests' Lambda execution role, created once and then given time to propagate: like IAM,
    the emulator refuses a role for a moment after CreateRole (role_propagation_seconds)."""
    iam = client("iam")
    try:
        arn = iam.create_role(RoleName="lambda-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        # Made a moment ago by another test's emulator (moto's state is per process): still new.
        arn = iam.get_role(RoleName="lambda-role")["Role"]["Arn"]
    time.sleep(emulator.config.role_propagation_seconds)
    return arn


@pytest.fixture(scope="module")
def lam(client, lambda_role):
    # What the functions in the tests call with the role's keys: IAM is enforced, as on AWS.
    client("iam").put_role_policy(
        RoleName="lambda-role",
        PolicyName="test-functions",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": ["s3:ListAllMyBuckets", "s3:PutObject"], "Resource": "*"}
                ],
            }
        ),
    )
    return client("lambda")


@pytest.fixture
def make_function(lam, request):
    """``make_function(source, **config)``: a python3.12 function named after the test, handler app.handler."""
    names = []

    def make(
        source: str | dict[str, str],
        *,
        handler: str = "app.handler",
        modes: dict[str, int] | None = None,
        **config,
    ) -> str:
        name = re.sub(r"[^a-zA-Z0-9-_]", "-", f"lt-{request.node.name}")[:60] + f"-{len(names)}"
        files = {"app.py": source} if isinstance(source, str) else source
        lam.create_function(
            FunctionName=name,
            Runtime=config.pop("Runtime", "python3.12"),
            Role=LAMBDA_ROLE_ARN,
            Handler=handler,
            Code={"ZipFile": lambda_package(files, modes)},
            **config,
        )
        names.append(name)
        lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 0.1})
        return name

    yield make
    for name in names:
        lam.delete_function(FunctionName=name)


def lambda_package(files: dict[str, str], modes: dict[str, int] | None = None) -> bytes:
    """A deployment package (.zip) from {path: source}; files are 0644 (Lambda needs them world-readable)
    unless ``modes`` says otherwise."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, source in files.items():
            entry = zipfile.ZipInfo(name)
            entry.external_attr = (0o100000 | (modes or {}).get(name, 0o644)) << 16
            archive.writestr(entry, textwrap.dedent(source))
    return buffer.getvalue()
