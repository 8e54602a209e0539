"""Shared fixtures: one real emulator on a free port for the whole session, and clients for it.

With SAGELOCAL_ENDPOINT set (``tox -e e2e`` against a running stack, e.g. ``sagelocal up`` or
``docker compose up``), the tests use that emulator instead of starting one.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import boto3
import pytest

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

from response_shapes import check_responses  # noqa: E402

from emulation import Emulator, EmulatorConfig  # noqa: E402

REGION = "us-east-1"


@dataclass
class RunningStack:
    """An emulator started elsewhere: only its URL and the default credentials are known."""

    url: str
    config: EmulatorConfig = field(default_factory=EmulatorConfig)


@pytest.fixture(scope="session")
def emulator(tmp_path_factory):
    if os.environ.get("SAGELOCAL_ENDPOINT"):
        yield RunningStack(os.environ["SAGELOCAL_ENDPOINT"].rstrip("/"))
        return
    config = EmulatorConfig(port=0, data_dir=tmp_path_factory.mktemp("sagelocal-data"))
    with Emulator(config) as running:
        yield running


@pytest.fixture
def in_process_emulator(emulator):
    """For tests that reach into the emulator's state (e.g. to kill a job's process)."""
    if isinstance(emulator, RunningStack):
        pytest.skip("needs the emulator in this process")
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
def lambda_role(emulator, client) -> str:
    """The tests' Lambda execution role, created once and then given time to propagate: like IAM,
    the emulator refuses a role for a moment after CreateRole (role_propagation_seconds)."""
    iam = client("iam")
    try:
        arn = iam.create_role(RoleName="lambda-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        return iam.get_role(RoleName="lambda-role")["Role"]["Arn"]
    time.sleep(emulator.config.role_propagation_seconds)
    return arn


@pytest.fixture(scope="session")
def bucket(client):
    name = "sagelocal-tests"
    client("s3").create_bucket(Bucket=name)
    return name
