"""sagelocal's pytest plugin (registered through the ``pytest11`` entry point): test your own
SageMaker / boto3 code against the emulator, with no change to that code.

- ``sagelocal`` (session-scoped fixture): an emulator on a free port for the whole test session
  (in a child process: it works on another core than the tests),
  or the running one named by ``--sagelocal-endpoint`` / ``$SAGELOCAL_ENDPOINT`` (inside
  ``sagelocal exec -- pytest`` that is exec's emulator). It gives the URL, region, account, role,
  default bucket and ready boto3 clients.
- ``@pytest.mark.sagelocal``: the test runs as ``sagelocal exec`` runs a program. The standard AWS
  variables point at the emulator, the SageMaker SDK's defaults file names the default bucket and
  the role and turns telemetry off, ``get_execution_role()`` answers the local role, the SDK's poll
  sleeps are virtual; and whatever the test created through boto3's default session (which
  ``boto3.client(...)`` and ``sagemaker.Session()`` use) is removed when it ends, even when it fails.

Nothing happens in tests that neither use the fixture nor carry the marker, and loading the
plugin imports neither the emulator nor the SDK.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

MARKER = "sagelocal"


@dataclass
class SageLocal:
    """The emulator a test session uses, and what code needs to reach it."""

    url: str
    region: str
    account_id: str
    role_arn: str
    bucket: str
    #: The variables ``sagelocal exec`` gives a program (None: unset); marked tests run with them.
    environment: dict[str, str | None]
    _clients: dict = field(default_factory=dict, repr=False)

    @property
    def boto_session(self):
        import boto3

        environment = self.environment
        return boto3.Session(
            aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
            region_name=self.region,
        )

    def client(self, service: str):
        """A boto3 client for ``service`` pointed at the emulator (cached per service)."""
        if service not in self._clients:
            self._clients[service] = self.boto_session.client(service, endpoint_url=self.url)
        return self._clients[service]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sagelocal", "sagelocal emulator")
    group.addoption(
        "--sagelocal-endpoint",
        default=None,
        help="use the sagelocal emulator running at this URL instead of starting one (default: $SAGELOCAL_ENDPOINT)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}: run the test against the sagelocal emulator (AWS SDKs pointed at it, SageMaker SDK "
        "defaults, local role, virtual poll sleeps); what it creates is removed afterwards",
    )


@pytest.fixture(scope="session")
def sagelocal(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    from emulation.config import EmulatorConfig
    from workflows.execute import program_environment
    from workflows.target import ENDPOINT_ENV, default_bucket_name

    url = request.config.getoption("--sagelocal-endpoint") or os.environ.get(ENDPOINT_ENV)
    with contextlib.ExitStack() as stack:
        config = EmulatorConfig(port=0, data_dir=tmp_path_factory.mktemp("sagelocal-data"))
        if not url:
            from emulation.child import EmulatorProcess

            url = stack.enter_context(EmulatorProcess(config)).url
        region = config.region
        environment = program_environment(
            url.rstrip("/"), config, region, config.role_arn, Path(tmp_path_factory.mktemp("sagelocal-sdk"))
        )
        yield SageLocal(
            url=url.rstrip("/"),
            region=region,
            account_id=config.account_id,
            role_arn=config.role_arn,
            bucket=default_bucket_name(region, config.account_id),
            environment=environment,
        )


@pytest.fixture(autouse=True)
def _sagelocal_marked_test(request: pytest.FixtureRequest):
    """For tests marked ``sagelocal``: the emulator's environment, then cleanup."""
    if request.node.get_closest_marker(MARKER) is None:
        yield
        return
    import boto3

    from workflows import sdk_hooks
    from workflows.cleanup import ResourceTracker
    from workflows.target import temporary_environment

    local: SageLocal = request.getfixturevalue("sagelocal")
    environment = local.environment
    previous_default = boto3.DEFAULT_SESSION
    with contextlib.ExitStack() as stack:
        stack.enter_context(temporary_environment(**environment))
        stack.enter_context(
            sdk_hooks.SdkAdjustments(role_metadata_file=environment[sdk_hooks.ROLE_METADATA_ENV])
        )
        boto3.setup_default_session()  # reads the variables just set
        tracker = ResourceTracker(boto3.DEFAULT_SESSION)
        try:
            yield
        finally:
            problems = tracker.cleanup(log=lambda message: None)
            boto3.DEFAULT_SESSION = previous_default
            if problems:
                pytest.fail("sagelocal could not remove: " + "; ".join(problems), pytrace=False)
