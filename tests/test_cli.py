"""The command line: help, plans that create nothing, and clear refusals."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from workflows import registry


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
