"""Shared fixtures: one real emulator on a free port for the whole session, and clients for it."""

from __future__ import annotations

import os

import boto3
import pytest

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

from emulation import Emulator, EmulatorConfig  # noqa: E402

REGION = "us-east-1"


@pytest.fixture(scope="session")
def emulator(tmp_path_factory):
    config = EmulatorConfig(port=0, data_dir=tmp_path_factory.mktemp("sagelocal-data"))
    with Emulator(config) as running:
        yield running


@pytest.fixture(scope="session")
def boto_session(emulator):
    return boto3.Session(
        aws_access_key_id=emulator.config.access_key_id,
        aws_secret_access_key=emulator.config.secret_access_key,
        region_name=REGION,
    )


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
