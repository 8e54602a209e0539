"""The cloud switch: the one place that decides whether a workflow talks to sagelocal or to AWS.

Workflow code receives a :class:`Target` and builds nothing itself. ``local`` (the default) starts
an embedded emulator, or attaches to a running one, and points every SDK at it through the
standard ``AWS_ENDPOINT_URL`` configuration with throwaway credentials. ``aws`` uses the normal
credential chain and refuses to start without a role ARN and a region; before anything billable
exists it checks the account's SageMaker quotas, and without ``--bucket`` it lets the SDK's own
``default_bucket()`` create and owner-check the bucket. The ``--target`` flag and the
``SAGELOCAL_TARGET`` environment variable are one setting.

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
import functools
import logging
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import boto3

from workflows import plan as plans
from workflows import sdk_hooks
from workflows.cleanup import LeftBehind, ResourceTracker

TARGET_ENV = "SAGELOCAL_TARGET"
TARGETS = ("local", "aws")
#: Attach to an already running emulator (e.g. `docker compose up`) instead of starting one.
ENDPOINT_ENV = "SAGELOCAL_ENDPOINT"
ROLE_ENV = "SAGELOCAL_ROLE_ARN"
BUCKET_ENV = "SAGELOCAL_BUCKET"
INSTANCE_TYPE_ENV = "SAGELOCAL_INSTANCE_TYPE"
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


#: How often cleanup and waits re-read a state, and the most they wait for one resource.
LOCAL_POLL_SECONDS, LOCAL_WAIT_SECONDS = 0.05, 120.0
AWS_POLL_SECONDS = 15.0


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
    instance_type: str | None = None

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
            instance_type=given.pop("instance_type", None) or os.environ.get(INSTANCE_TYPE_ENV),
            **given,
        )


@dataclass
class Target:
    """What a workflow needs: sessions for boto3 and the SageMaker SDK, a role, a bucket, the
    instance type, and the partition's names (``arn:aws-cn:...``, ``amazonaws.com.cn`` in China)."""

    name: str
    region: str
    role_arn: str
    bucket: str
    boto_session: boto3.Session
    sagemaker_session: object  # sagemaker.Session; imported lazily, the SDK is slow to import
    tracker: ResourceTracker
    ctrl_c: CtrlC
    endpoint_url: str | None = None
    instance_type: str = plans.DEFAULT_INSTANCE_TYPE
    #: Seconds between status checks while a workflow waits (AWS: its own pace; local: fast).
    poll_seconds: float = AWS_POLL_SECONDS
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

    @functools.cached_property
    def partition(self) -> str:
        return self.boto_session.get_partition_for_region(self.region)

    @functools.cached_property
    def dns_suffix(self) -> str:
        resolver = self.boto_session._session._get_internal_component("endpoint_resolver")
        return resolver.get_partition_dns_suffix(self.partition)

    @functools.cached_property
    def account(self) -> str:
        return self.client("sts").get_caller_identity()["Account"]

    def arn(
        self, service: str, resource: str, *, region: str | None = None, account: str | None = None
    ) -> str:
        """An ARN in this target's partition; ``region``/``account`` default to the target's."""
        region = self.region if region is None else region
        account = self.account if account is None else account
        return f"arn:{self.partition}:{service}:{region}:{account}:{resource}"

    def execute_api_url(self, api_id: str, stage: str) -> str:
        """The public URL of a deployed REST API stage's root resource."""
        if self.endpoint_url:
            from emulation.apigateway import execute_api_url

            return execute_api_url(self.endpoint_url, api_id, stage) + "/"
        return f"https://{api_id}.execute-api.{self.region}.{self.dns_suffix}/{stage}/"


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


def _sagemaker_session(boto_session: boto3.Session, bucket: str | None):
    """The SDK's session. Build it only after the tracker is attached to ``boto_session``: its
    clients are made here and copy the session's event handlers as they are now."""
    import sagemaker
    import sagemaker.utils

    sdk_hooks.validate_config_once(sagemaker.utils)
    return sagemaker.Session(
        boto_session=boto_session, default_bucket=bucket, sagemaker_config=TELEMETRY_OPT_OUT
    )


@contextlib.contextmanager
def open_target(
    settings: TargetSettings, log=print, plan: list[plans.Item] | None = None
) -> Iterator[Target]:
    """Yield a ready Target; on exit remove every resource the run created (unless ``keep``).

    ``plan`` (what the workflow will create) lets the aws target check the account's quotas before
    anything billable exists. Whatever cleanup cannot remove raises :class:`LeftBehind`.
    """
    opener = _open_local if settings.name == "local" else _open_aws
    with opener(settings, log, plan or []) as target:
        try:
            with target.ctrl_c.honoured():
                yield target
        finally:
            if settings.keep:
                _warn_kept(target, log)
            else:
                problems = target.tracker.cleanup(log)
                if problems:
                    raise LeftBehind(problems)


class CtrlC:
    """Ctrl-C stops the run even where the SDK swallows it.

    The SDK's telemetry wrapper (around ``fit``, ``deploy``, ``transform``...) returns from a
    ``finally`` block, which discards a KeyboardInterrupt raised inside: ``fit()`` would return as
    if training had finished. So during the run a Ctrl-C is remembered and raised again at the
    next AWS call. Attached to the session before any client exists (clients copy its handlers).
    """

    def __init__(self, boto_session: boto3.Session):
        self.pending = threading.Event()
        boto_session.events.register_first("before-call", self._raise_again)

    def _raise_again(self, **kwargs) -> None:
        if self.pending.is_set():
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def honoured(self) -> Iterator[None]:
        """While the run lasts (main thread only: signal handlers live there)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_ctrl_c(signum, frame):
            self.pending.set()
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGINT, on_ctrl_c)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
            self.pending.clear()  # cleanup's own calls go through


def _warn_kept(target: Target, log) -> None:
    kept = target.tracker.created
    if target.name == "local":
        log(f"--keep: leaving {len(kept)} resource(s) in place")
        return
    log(f"--keep: leaving {len(kept)} resource(s) in place; remove them yourself when done:")
    for resource in kept:
        log(f"  - {resource}")
    endpoints = [r.name for r in kept if r.kind == "endpoint"]
    if endpoints:
        log(
            f"  WARNING: endpoint(s) {', '.join(endpoints)} bill every hour they exist "
            f"({target.instance_type}; `sagelocal run ... --plan` shows the price)."
        )
    if any(r.kind == "rest-api" for r in kept):
        log("  WARNING: the REST API stage is public: anyone with its URL can call it (throttled per stage).")


@contextlib.contextmanager
def _open_local(settings: TargetSettings, log, plan: list[plans.Item]) -> Iterator[Target]:
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
        # Before any client exists: clients copy the session's handlers.
        ctrl_c = CtrlC(boto_session)
        tracker = ResourceTracker(
            boto_session, poll_seconds=LOCAL_POLL_SECONDS, wait_seconds=LOCAL_WAIT_SECONDS
        )
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
            ctrl_c=ctrl_c,
            endpoint_url=url,
            instance_type=settings.instance_type or plans.DEFAULT_INSTANCE_TYPE,
            poll_seconds=LOCAL_POLL_SECONDS,
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
def _open_aws(settings: TargetSettings, log, plan: list[plans.Item]) -> Iterator[Target]:
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
    instance_type = settings.instance_type or plans.DEFAULT_INSTANCE_TYPE
    # The tracker first: every client made after this (the SDK's included) reports what it creates.
    ctrl_c, tracker = CtrlC(boto_session), ResourceTracker(boto_session)
    _require_quotas(boto_session, plan, log)
    # Without --bucket the SDK's own default_bucket() makes sagemaker-<region>-<account> if needed
    # and checks that this account owns it (a bucket of that name may belong to someone else).
    sagemaker_session = _sagemaker_session(boto_session, settings.bucket)
    bucket = settings.bucket or sagemaker_session.default_bucket()
    log(
        f"target aws: region {settings.region}, role {settings.role_arn}, bucket {bucket}, "
        f"instances {instance_type}"
    )
    yield Target(
        name="aws",
        region=settings.region,
        role_arn=settings.role_arn,
        bucket=bucket,
        boto_session=boto_session,
        sagemaker_session=sagemaker_session,
        tracker=tracker,
        ctrl_c=ctrl_c,
        instance_type=instance_type,
        poll_seconds=AWS_POLL_SECONDS,
    )


def _require_quotas(boto_session: boto3.Session, plan: list[plans.Item], log) -> None:
    """Refuse a run the account's SageMaker quotas would stop halfway (after paying for the start)."""
    needs = plans.needed_quotas(plan)
    if not needs:
        return
    try:
        values = plans.sagemaker_quotas(boto_session, set(needs))
    except plans.QuotaUnavailable as error:
        log(f"WARNING: could not read the SageMaker quotas from Service Quotas ({error}); going on unchecked")
        return
    problems = plans.quota_problems(needs, values)
    if problems:
        raise TargetError(
            "this account's SageMaker quotas would stop the run: "
            + "; ".join(problems)
            + f". Pick another --instance-type or request an increase: {plans.QUOTA_INCREASE_URL}"
        )
