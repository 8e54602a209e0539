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
is given a clock whose ``sleep`` advances virtual time (see shared/spec/sdk-v2-calls.md). For
both targets: the telemetry opt-out config makes the SDK re-validate it on every lookup, so each
distinct config is validated once.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import boto3

from workflows import plan as plans
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


class VirtualClock:
    """Stands in for the ``time`` module inside ``sagemaker.session`` on the local target.

    ``sleep(s)`` really sleeps at most ``real_poll`` seconds and advances ``time()`` by the rest,
    so the SDK's loops keep their logic (describe every 30 s of *their* time) at local speed.
    """

    def __init__(self, real_poll: float = 0.05):
        self.real_poll = real_poll
        self.offset = 0.0

    def sleep(self, seconds: float) -> None:
        real = min(seconds, self.real_poll)
        time.sleep(real)
        self.offset += max(0.0, seconds - real)

    def time(self) -> float:
        return time.time() + self.offset

    def __getattr__(self, name):
        return getattr(time, name)


@contextlib.contextmanager
def _patched_sdk_clock() -> Iterator[VirtualClock]:
    import sagemaker.session as sdk_session

    clock = VirtualClock()
    original = sdk_session.time
    sdk_session.time = clock
    try:
        yield clock
    finally:
        sdk_session.time = original


@contextlib.contextmanager
def _environment(**values: str | None) -> Iterator[None]:
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


@functools.cache
def _validate_sdk_config_once() -> None:
    """The SDK re-validates its whole config against a large JSON schema on every config lookup
    (about 70 per workflow, ~0.1 s each: seconds of a local run). The config does not change
    between lookups, so each distinct config is validated once; invalid ones still raise."""
    import sagemaker.utils as sdk_utils

    validate = sdk_utils.validate_sagemaker_config
    valid: set[str] = set()

    def validate_once(config=None):
        key = json.dumps(config, sort_keys=True, default=str)
        if key not in valid:
            validate(config)
            valid.add(key)

    sdk_utils.validate_sagemaker_config = validate_once


def _sagemaker_session(boto_session: boto3.Session, bucket: str | None):
    """The SDK's session. Build it only after the tracker is attached to ``boto_session``: its
    clients are made here and copy the session's event handlers as they are now."""
    import sagemaker

    _validate_sdk_config_once()
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
    from emulation import Emulator, EmulatorConfig

    with contextlib.ExitStack() as stack:
        config = EmulatorConfig(port=0)
        url = settings.endpoint_url
        if url is None:
            emulator = stack.enter_context(Emulator(config))
            url = emulator.url
            log(f"sagelocal emulator started at {url}")
        else:
            log(f"using the sagelocal emulator at {url}")
        region = settings.region or config.region
        stack.enter_context(
            _environment(
                AWS_ENDPOINT_URL=url,
                AWS_ACCESS_KEY_ID=config.access_key_id,
                AWS_SECRET_ACCESS_KEY=config.secret_access_key,
                AWS_SESSION_TOKEN=None,
                AWS_PROFILE=None,
                AWS_DEFAULT_REGION=region,
                AWS_REGION=region,
            )
        )
        stack.enter_context(_patched_sdk_clock())
        boto_session = boto3.Session(region_name=region)
        ctrl_c = CtrlC(boto_session)
        tracker = ResourceTracker(
            boto_session, poll_seconds=LOCAL_POLL_SECONDS, wait_seconds=LOCAL_WAIT_SECONDS
        )
        bucket = settings.bucket or f"sagemaker-{region}-{config.account_id}"
        s3 = boto_session.client("s3")
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=bucket)
        yield Target(
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


@contextlib.contextmanager
def _open_aws(settings: TargetSettings, log, plan: list[plans.Item]) -> Iterator[Target]:
    boto_session = aws_session(settings)
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


def aws_session(settings: TargetSettings) -> boto3.Session:
    """A boto3 session for real AWS, refusing what would send it elsewhere or nowhere."""
    missing = [what for what, value in (("--region (or AWS_REGION)", settings.region),
                                        (f"--role-arn (or {ROLE_ENV})", settings.role_arn)) if not value]  # fmt: skip
    if missing:
        raise TargetError(
            "the aws target needs "
            + " and ".join(missing)
            + ": an execution role SageMaker and Lambda can assume, "
            "and the region to create resources in"
        )
    redirected = sorted(k for k, v in os.environ.items() if k.startswith("AWS_ENDPOINT_URL") and v)
    if redirected:
        raise TargetError(
            f"{', '.join(redirected)} is set: unset to reach real AWS (it points the SDKs elsewhere)"
        )
    boto_session = boto3.Session(region_name=settings.region)
    if boto_session._session.get_scoped_config().get("endpoint_url"):
        raise TargetError(
            "the AWS config profile sets endpoint_url: use a profile without it to reach real AWS"
        )
    if boto_session.get_credentials() is None:
        raise TargetError(
            "no AWS credentials found: configure them the usual way (aws configure, AWS_PROFILE, "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or an instance role)"
        )
    return boto_session


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
