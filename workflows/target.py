"""The cloud switch: the one place that decides whether a workflow talks to sagelocal or to AWS.

Workflow code receives a :class:`Target` and builds nothing itself. ``local`` (the default) starts
an embedded emulator, or attaches to a running one, and points every SDK at it through the
standard ``AWS_ENDPOINT_URL`` configuration with throwaway credentials. ``aws`` uses the normal
credential chain and refuses to start without a role ARN and a region. The ``--target`` flag and
the ``SAGELOCAL_TARGET`` environment variable are one setting.

The SageMaker SDK's traps are handled here. For the local target: ``default_bucket()`` would
call the real regional STS endpoint (so the bucket is passed in), ``fit()`` sends telemetry to a
real S3 host (opted out), and the SDK's fixed poll sleeps (5 s before every describe, 30 s before
an endpoint's first describe, 10 s per log loop) would dominate a local run, so ``sagemaker.session``
is given a clock whose ``sleep`` advances virtual time (``workflows.sdk_hooks``; see
shared/spec/sdk-v2-calls.md). For both targets: the telemetry opt-out config makes the SDK
re-validate it on every lookup, so each distinct config is validated once. ``sagelocal exec``
and the pytest plugin use the same environment and SDK defaults for programs they do not control.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import boto3

from workflows import sdk_hooks
from workflows.cleanup import ResourceTracker

TARGET_ENV = "SAGELOCAL_TARGET"
TARGETS = ("local", "aws")
#: Attach to an already running emulator (e.g. `docker compose up`) instead of starting one.
ENDPOINT_ENV = "SAGELOCAL_ENDPOINT"
ROLE_ENV = "SAGELOCAL_ROLE_ARN"
BUCKET_ENV = "SAGELOCAL_BUCKET"
TELEMETRY_OPT_OUT = {
    "SchemaVersion": "1.0",
    "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}},
}


def quiet_sdk() -> None:
    """The SDK's chatter (config-file discovery at INFO, the v2 deprecation nag: we use v2 on
    purpose, v3 removed Estimator) hides a workflow's own progress."""
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("sagemaker", "sagemaker.config", "sagemaker.deprecations", "botocore"):
        logging.getLogger(name).setLevel(logging.WARNING)


class TargetError(RuntimeError):
    """The target cannot be used as configured; raised before anything is created."""


@dataclass(frozen=True)
class TargetSettings:
    name: str = "local"
    region: str | None = None
    role_arn: str | None = None
    bucket: str | None = None
    endpoint_url: str | None = None
    keep: bool = False

    @classmethod
    def from_environment(cls, **overrides) -> TargetSettings:
        """Flags win over the environment; unset flags (None) fall back to it."""
        given = {k: v for k, v in overrides.items() if v is not None}
        name = given.pop("name", None) or os.environ.get(TARGET_ENV) or "local"
        if name not in TARGETS:
            raise TargetError(
                f"unknown target {name!r}: choose one of {', '.join(TARGETS)} (flag --target or ${TARGET_ENV})"
            )
        region = (
            given.pop("region", None) or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        )
        return cls(
            name=name,
            region=region,
            role_arn=given.pop("role_arn", None) or os.environ.get(ROLE_ENV),
            bucket=given.pop("bucket", None) or os.environ.get(BUCKET_ENV),
            endpoint_url=given.pop("endpoint_url", None) or os.environ.get(ENDPOINT_ENV),
            **given,
        )


@dataclass
class Target:
    """What a workflow needs: sessions for boto3 and the SageMaker SDK, a role, a bucket."""

    name: str
    region: str
    role_arn: str
    bucket: str
    boto_session: boto3.Session
    sagemaker_session: object  # sagemaker.Session; imported lazily, the SDK is slow to import
    tracker: ResourceTracker
    endpoint_url: str | None = None
    _clients: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        # The SDK session built these already; building a client costs tens of milliseconds.
        sdk = self.sagemaker_session
        self._clients.update(
            {
                "s3": sdk.s3_client,
                "sagemaker": sdk.sagemaker_client,
                "sagemaker-runtime": sdk.sagemaker_runtime_client,
            }
        )

    def client(self, service: str):
        if service not in self._clients:
            self._clients[service] = self.boto_session.client(service)
        return self._clients[service]

    def execute_api_url(self, api_id: str, stage: str) -> str:
        """The public URL of a deployed REST API stage's root resource."""
        if self.endpoint_url:
            from emulation.apigateway import execute_api_url

            return execute_api_url(self.endpoint_url, api_id, stage) + "/"
        return f"https://{api_id}.execute-api.{self.region}.amazonaws.com/{stage}/"


def local_environment(url: str, config, region: str) -> dict[str, str | None]:
    """The standard variables that point every AWS SDK at the emulator (None: unset).

    ``config`` is the emulator's ``EmulatorConfig``; a profile or session token from the user's
    own AWS set-up would otherwise mix real credentials into local calls.
    """
    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": config.access_key_id,
        "AWS_SECRET_ACCESS_KEY": config.secret_access_key,
        "AWS_SESSION_TOKEN": None,
        "AWS_PROFILE": None,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
    }


def default_bucket_name(region: str, account_id: str) -> str:
    """The SDK's own default bucket name, so local and AWS runs use the same one."""
    return f"sagemaker-{region}-{account_id}"


def sdk_defaults(bucket: str, role_arn: str) -> dict:
    """The SageMaker SDK's "intelligent defaults" for the local target, so that every Session the
    SDK creates by itself (inside ``Estimator.attach``, ``get_execution_role()``, ...) finds its
    default bucket without asking the real STS endpoint, sends no telemetry, and has a role."""
    return {
        "SchemaVersion": "1.0",
        "SageMaker": {
            "PythonSDK": {"Modules": {"TelemetryOptOut": True, "Session": {"DefaultS3Bucket": bucket}}},
            "TrainingJob": {"RoleArn": role_arn},
            "ProcessingJob": {"RoleArn": role_arn},
            "Model": {"ExecutionRoleArn": role_arn},
        },
    }


@contextlib.contextmanager
def temporary_environment(**values: str | None) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _sagemaker_session(boto_session: boto3.Session, bucket: str):
    import sagemaker
    import sagemaker.utils

    sdk_hooks.validate_config_once(sagemaker.utils)
    return sagemaker.Session(
        boto_session=boto_session, default_bucket=bucket, sagemaker_config=TELEMETRY_OPT_OUT
    )


@contextlib.contextmanager
def open_target(settings: TargetSettings, log=print) -> Iterator[Target]:
    """Yield a ready Target; on exit remove every resource the run created (unless ``keep``)."""
    opener = _open_local if settings.name == "local" else _open_aws
    with opener(settings, log) as target:
        try:
            yield target
        finally:
            if settings.keep:
                log(f"--keep: leaving {len(target.tracker.created)} resource(s) in place")
            else:
                target.tracker.cleanup(log)


@contextlib.contextmanager
def _open_local(settings: TargetSettings, log) -> Iterator[Target]:
    from emulation.child import EmulatorProcess
    from emulation.config import EmulatorConfig

    with contextlib.ExitStack() as stack:
        config = EmulatorConfig(port=0)
        url = settings.endpoint_url
        if url is None:
            emulator = stack.enter_context(EmulatorProcess(config))
            url = emulator.url
            log(f"sagelocal emulator started at {url}")
        else:
            log(f"using the sagelocal emulator at {url}")
        region = settings.region or config.region
        stack.enter_context(temporary_environment(**local_environment(url, config, region)))
        stack.enter_context(sdk_hooks.SdkAdjustments(virtual_clock=True))
        boto_session = boto3.Session(region_name=region)
        tracker = ResourceTracker(boto_session)  # before any client exists: clients copy the handlers
        bucket = settings.bucket or default_bucket_name(region, config.account_id)
        # The SDK's import (seconds) before the first call: a starting emulator imports meanwhile.
        target = Target(
            name="local",
            region=region,
            role_arn=settings.role_arn or config.role_arn,
            bucket=bucket,
            boto_session=boto_session,
            sagemaker_session=_sagemaker_session(boto_session, bucket),
            tracker=tracker,
            endpoint_url=url,
        )
        s3 = target.client("s3")
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=bucket)
        yield target


def aws_session(region: str | None) -> boto3.Session:
    """A boto3 session that reaches AWS itself: settings that point the SDKs elsewhere are refused
    (checked before any session exists)."""
    redirected = sorted(k for k, v in os.environ.items() if k.startswith("AWS_ENDPOINT_URL") and v)
    if redirected:
        raise TargetError(
            f"{', '.join(redirected)} is set: unset to reach real AWS (it points the SDKs elsewhere)"
        )
    boto_session = boto3.Session(region_name=region)
    if boto_session._session.get_scoped_config().get("endpoint_url"):
        raise TargetError(
            "the AWS config profile sets endpoint_url: use a profile without it to reach real AWS"
        )
    return boto_session


@contextlib.contextmanager
def _open_aws(settings: TargetSettings, log) -> Iterator[Target]:
    missing = [what for what, value in (("--region (or AWS_REGION)", settings.region),
                                        (f"--role-arn (or {ROLE_ENV})", settings.role_arn)) if not value]  # fmt: skip
    if missing:
        raise TargetError(
            "the aws target needs "
            + " and ".join(missing)
            + ": an execution role SageMaker and Lambda can assume, "
            "and the region to create resources in"
        )
    boto_session = aws_session(settings.region)
    if boto_session.get_credentials() is None:
        raise TargetError(
            "no AWS credentials found: configure them the usual way (aws configure, AWS_PROFILE, "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or an instance role)"
        )
    bucket = settings.bucket
    if bucket is None:
        account = boto_session.client("sts").get_caller_identity()["Account"]
        bucket = default_bucket_name(settings.region, account)
    log(f"target aws: region {settings.region}, role {settings.role_arn}, bucket {bucket}")
    tracker = ResourceTracker(boto_session)  # before the SDK's clients: clients copy the handlers
    yield Target(
        name="aws",
        region=settings.region,
        role_arn=settings.role_arn,
        bucket=bucket,
        boto_session=boto_session,
        sagemaker_session=_sagemaker_session(boto_session, bucket),
        tracker=tracker,
    )
