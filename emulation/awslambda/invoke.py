"""Lambda's Invoke data plane: run a function's handler from its deployment package, as AWS does.

moto keeps the control plane (CreateFunction, GetFunction, UpdateFunctionCode, DeleteFunction...);
this service reads the function's configuration and package from moto's backend in-process and runs
the handler in an execution environment (:mod:`emulation.awslambda.runtime`). Environments stay warm
between invocations and are replaced after a code or configuration change, a timeout or a crash;
concurrent invocations get extra environments; idle ones are reclaimed after a while, and a deleted
or updated function's at once. Wire behaviour (status codes, headers, error payloads, limits, log
lines) follows shared/spec/lambda-apigateway-sigv4.md, sections 4 and 5.

In front of moto's control plane (:meth:`LambdaService.control_plane`) this service adds what moto
leaves out: a new function is Pending for a moment before it is Active, as on AWS, and invoking it
meanwhile fails as on AWS.
"""

from __future__ import annotations

import base64
import binascii
import functools
import io
import json
import logging
import math
import re
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from moto.awslambda.exceptions import LambdaClientError, UnknownFunctionException
from moto.utilities.utils import get_partition
from werkzeug.wrappers import Request, Response
from werkzeug.wsgi import get_input_stream

from emulation import sigv4
from emulation.awslambda import runtime_support
from emulation.awslambda.runtime import (
    EnvironmentFactory,
    ExecutionEnvironment,
    FunctionSpec,
    Outcome,
    RoleCredentials,
)
from emulation.awslambda.runtime_api import Invocation
from emulation.config import EmulatorConfig
from emulation.moto_bridge import MotoServices
from emulation.protocol import AwsError, operation_model, validate_input

MAX_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024
MAX_EVENT_PAYLOAD_BYTES = 1024 * 1024
LOG_TAIL_BYTES = 4096
#: How often idle environments are looked for (at most; sooner when the idle limit is shorter).
RECLAIM_INTERVAL_SECONDS = 30
#: The runtimes that run here: Python ones under awslambdaric, OS-only ones from the package's bootstrap.
CUSTOM_RUNTIMES = ("provided.al2023", "provided.al2")
#: A role session lasts at most 12 hours; the emulator does not expire them sooner.
_SESSION_SECONDS = 43200

_INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations$")
_FUNCTIONS_PATH = re.compile(r"^/2015-03-31/functions(?:/(?P<name>[^/]+)(?P<part>/code|/configuration)?)?/?$")
# The grammar of the model's FunctionName pattern, with the parts we need named.
_FUNCTION_NAME = re.compile(
    r"(?:arn:(?:aws[a-zA-Z-]*)?:lambda:)?(?:(?P<region>[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d):)?(?:\d{12}:)?"
    r"(?:function:)?(?P<name>[a-zA-Z0-9-_.]+)(?::(?P<qualifier>\$LATEST(?:\.PUBLISHED)?|[a-zA-Z0-9-_]+))?"
)
_logger = logging.getLogger("sagelocal.lambda")


@dataclass(frozen=True)
class InvokeResult:
    """What Invoke answers: the status code, the payload and the response headers' values."""

    status_code: int
    payload: bytes
    request_id: str
    function_error: str | None = None  # "Unhandled" when the function failed
    executed_version: str | None = None
    log_result: str | None = None  # base64 of the log's last 4 KB, when asked for with LogType Tail

    def to_response(self) -> Response:
        headers = {"x-amzn-RequestId": self.request_id}
        if self.executed_version is not None:
            headers["X-Amz-Executed-Version"] = self.executed_version
        if self.function_error is not None:
            headers["X-Amz-Function-Error"] = self.function_error
        if self.log_result is not None:
            headers["X-Amz-Log-Result"] = self.log_result
        return Response(
            self.payload, status=self.status_code, headers=headers, content_type="application/json"
        )


@dataclass
class _Pool:
    """The warm environments of one function version, all made from the same spec."""

    spec: FunctionSpec
    idle: list[tuple[ExecutionEnvironment, float]] = field(default_factory=list)  # (environment, idle since)


class LambdaService:
    """Invoke, for the REST route (:meth:`handle`) and in-process callers such as API Gateway (:meth:`invoke`).

    Each function gets its role's temporary keys from STS (moto's AssumeRole), which the edge gate's
    credential registry accepts while they last. ``endpoint_url`` returns the emulator's URL (known only once it listens), given to functions as
    ``AWS_ENDPOINT_URL``.
    """

    def __init__(
        self,
        config: EmulatorConfig,
        moto: MotoServices,
        endpoint_url: Callable[[], str],
    ):
        self.config = config
        self.moto = moto
        self.endpoint_url = endpoint_url
        self._lock = threading.Lock()
        self._pools: dict[str, _Pool] = {}
        self._environments: set[ExecutionEnvironment] = set()  # every live one, idle or busy
        self._role_credentials: dict[tuple[str, str, str], RoleCredentials] = {}
        self._log_lock = threading.Lock()  # moto's logs backend is not thread-safe
        self._events = ThreadPoolExecutor(max_workers=32, thread_name_prefix="lambda-event")
        self._closing = False
        self._stopped = threading.Event()
        self._pending: dict[int, tuple[Any, float]] = {}  # id -> (moto's function, when it becomes Active)
        threading.Thread(target=self._reclaim_periodically, name="lambda-reclaim", daemon=True).start()

    @functools.cached_property
    def _factory(self) -> EnvironmentFactory:
        """Made on first use: it probes for the sandbox and makes the private directory."""
        if sys.platform != "linux":
            raise AwsError(
                "ServiceException",
                "sagelocal runs Lambda functions on Linux only (elsewhere, run the emulator with docker compose).",
                status=500,
            )
        return EnvironmentFactory(
            self.config.data_dir / "lambda", strict_permissions=self.config.lambda_strict_permissions
        )

    # -- the control plane, in front of moto ---------------------------------------------------------
    def control_plane(self, moto_app):
        """moto's WSGI app, with what Lambda's control plane does that moto does not.

        CreateFunction and UpdateFunctionConfiguration refuse a runtime AWS no longer accepts
        (:mod:`emulation.awslambda.runtime_support`). CreateFunction leaves the function Pending
        for ``lambda_pending_seconds`` (its answer and GetFunction say so, with AWS's reason);
        DeleteFunction, UpdateFunctionCode and UpdateFunctionConfiguration stop the function's idle
        environments at once.
        """

        def app(environ, start_response):
            match = _FUNCTIONS_PATH.match(environ.get("PATH_INFO", ""))
            request = Request(environ) if match else None
            scope = sigv4.scope_of(request.headers, request.args) if request else None
            if scope is None or scope[0] != "lambda":
                return moto_app(environ, start_response)
            method, region = environ["REQUEST_METHOD"], scope[1]
            creating = method == "POST" and match["name"] is None
            if creating or (method == "PUT" and match["part"] == "/configuration"):
                refusal = _refused_runtime(environ, creating=creating)
                if refusal is not None:
                    return refusal(environ, start_response)
            self._activate_due(region, unquote(match["name"]) if match["name"] else None)
            captured: list = []
            body = b"".join(
                moto_app(environ, lambda status, headers, *exc: captured.extend([status, headers]))
            )
            status, headers = captured
            if status.startswith("2"):
                if method == "POST" and match["name"] is None:
                    body = self._created(region, body)
                    headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
                    headers.append(("Content-Length", str(len(body))))
                elif (method == "DELETE" and match["part"] is None) or (method == "PUT" and match["part"]):
                    self._release_function(region, unquote(match["name"]))
            start_response(status, headers)
            return [body]

        return app

    def _created(self, region: str, body: bytes) -> bytes:
        """A function just made: Pending for a moment, as CreateFunction's answer says."""
        delay = self.config.lambda_pending_seconds
        if delay <= 0:
            return body
        configuration = json.loads(body)
        try:
            function = self.moto.backend("lambda", region).get_function(configuration["FunctionName"])
        except LambdaClientError:
            return body
        with self._lock:
            self._pending[id(function)] = (function, time.monotonic() + delay)
        function.state = "Pending"
        configuration.update(
            State="Pending", StateReason="The function is being created.", StateReasonCode="Creating"
        )
        return json.dumps(configuration).encode()

    def _activate_due(self, region: str | None = None, function_name: str | None = None) -> None:
        """Make Active the functions whose moment has passed, and a named function Pending for no
        reason this emulator knows (restored from a snapshot taken while it was Pending)."""
        now = time.monotonic()
        with self._lock:
            due = [function for function, at in self._pending.values() if at <= now]
            for function in due:
                del self._pending[id(function)]
            if function_name is not None:
                try:
                    named = self.moto.backend("lambda", region).get_function(function_name)
                except LambdaClientError:
                    named = None
                if named is not None and named.state == "Pending" and id(named) not in self._pending:
                    due.append(named)
        for function in due:
            function.state = "Active"

    def _release_function(self, region: str, function_name: str) -> None:
        """Stop the idle environments of every version of a function (deleted or changed)."""
        name = _FUNCTION_NAME.fullmatch(function_name)["name"]
        with self._lock:
            pools = [p for key, p in self._pools.items() if p.spec.name == name and p.spec.region == region]
            stale = []
            for pool in pools:
                del self._pools[pool.spec.arn]
                stale += self._forget(pool)
        for env in stale:
            env.close()

    # -- the REST route ---------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        """``POST /2015-03-31/functions/<name>/invocations``; the Edge has verified the signature."""
        scope = sigv4.scope_of(request.headers, request.args)
        try:
            result = self.invoke(
                _INVOKE_PATH.match(request.path)["name"],
                request.get_data(),
                invocation_type=request.headers.get("X-Amz-Invocation-Type") or "RequestResponse",
                log_type=request.headers.get("X-Amz-Log-Type"),
                client_context=request.headers.get("X-Amz-Client-Context"),
                qualifier=request.args.get("Qualifier"),
                region=scope[1] if scope else None,
                trace_id=request.headers.get("X-Amzn-Trace-Id"),
            )
        except AwsError as error:
            return _error_response(error)
        return result.to_response()

    # -- in-process ---------------------------------------------------------------------------------
    def invoke(
        self,
        function_name: str,
        payload: bytes = b"",
        invocation_type: str = "RequestResponse",
        log_type: str | None = None,
        client_context: str | None = None,
        *,
        qualifier: str | None = None,
        region: str | None = None,
        trace_id: str | None = None,
    ) -> InvokeResult:
        """Invoke a function by name, partial or full ARN; raises AwsError where Invoke answers an API error.

        ``client_context`` is base64 of a JSON object, as in the API. ``region`` applies to plain names
        (an ARN names its own region) and defaults to the emulator's.
        """
        request_id = str(uuid.uuid4())
        params = {
            "FunctionName": function_name,
            "InvocationType": invocation_type,
            "LogType": log_type,
            "ClientContext": client_context,
            "Qualifier": qualifier,
        }
        validate_input(operation_model("lambda", "Invoke"), params)
        spec, invoked_arn = self._resolve(function_name, qualifier, region)
        size = len(payload)
        if invocation_type == "Event" and size > MAX_EVENT_PAYLOAD_BYTES:
            raise AwsError(
                "RequestEntityTooLargeException",
                f"{size} byte payload is too large for the Event invocation type (limit {MAX_EVENT_PAYLOAD_BYTES} bytes)",
                status=413,
            )
        if size > MAX_SYNC_PAYLOAD_BYTES:
            raise AwsError(
                "RequestEntityTooLargeException",
                f"Request must be smaller than {MAX_SYNC_PAYLOAD_BYTES} bytes for the InvokeFunction operation",
                status=413,
            )
        event = _event_payload(payload)
        context = _client_context(client_context)
        if invocation_type == "DryRun":
            return InvokeResult(204, b"", request_id)
        if invocation_type == "Event":
            self._events.submit(self._run_event, spec, request_id, event, invoked_arn, context, trace_id)
            return InvokeResult(202, b"", request_id)
        result, error_type, log_lines = self._run(spec, request_id, event, invoked_arn, context, trace_id)
        tail = None
        if log_type == "Tail":
            tail = base64.b64encode(("\n".join(log_lines) + "\n").encode()[-LOG_TAIL_BYTES:]).decode()
        return InvokeResult(
            200,
            result,
            request_id,
            function_error="Unhandled" if error_type else None,
            executed_version=spec.version,
            log_result=tail,
        )

    def live_workers(self) -> list[tuple[str, int]]:
        """(function name, process id) of every running execution environment, idle or busy."""
        with self._lock:
            environments = list(self._environments)
        return [(env.spec.name, env.pid) for env in environments if env.alive]

    def shutdown(self) -> None:
        """Stop every environment; invocations in flight end as crashed (Runtime.ExitError)."""
        self._stopped.set()
        with self._lock:
            self._closing = True
            idle = [env for pool in self._pools.values() for env, _ in pool.idle]
            busy = self._environments.difference(idle)
            self._pools.clear()
            self._environments.clear()
        for env in busy:
            env.kill()
        for env in idle:
            env.close()
        self._events.shutdown(wait=False, cancel_futures=True)

    # -- resolving a function -----------------------------------------------------------------------
    def _resolve(
        self, function_name: str, qualifier: str | None, region: str | None
    ) -> tuple[FunctionSpec, str]:
        parts = _FUNCTION_NAME.fullmatch(function_name)
        name, named_qualifier = parts["name"], parts["qualifier"]
        if qualifier and named_qualifier and qualifier != named_qualifier:
            raise AwsError(
                "InvalidParameterValueException",
                "The derived qualifier from the function name does not match the specified qualifier.",
            )
        qualifier = qualifier or named_qualifier
        region = parts["region"] or region or self.config.region
        try:
            function = self.moto.backend("lambda", region).get_function(name, qualifier)
        except UnknownFunctionException:
            arn = f"arn:{get_partition(region)}:lambda:{region}:{self.config.account_id}:function:{name}"
            raise AwsError(
                "ResourceNotFoundException", f"Function not found: {arn}:{qualifier or '$LATEST'}", status=404
            ) from None
        except LambdaClientError as error:
            raise AwsError(error.error_type, error.message, status=error.code) from None
        runtime = function.run_time or ""
        if function.package_type != "Zip" or not (
            runtime.startswith("python3.") or runtime in CUSTOM_RUNTIMES
        ):
            raise AwsError(
                "InvalidRuntimeException",
                f"The runtime parameter of {runtime or function.package_type} is not supported by sagelocal, "
                f"which runs python3.x and {' and '.join(CUSTOM_RUNTIMES)} functions from .zip packages.",
                status=502,
            )
        self._activate_due(region, name)
        if function.state != "Active":
            raise AwsError(
                "ResourceConflictException",
                "The operation cannot be performed at this time. "
                f"The function is currently in the following state: {function.state}",
                status=409,
            )
        spec = _spec(function, region)
        unqualified = (
            function.function_arn if spec.version == "$LATEST" else function.function_arn.rsplit(":", 1)[0]
        )
        return spec, f"{unqualified}:{qualifier}" if qualifier else unqualified

    def _current(self, spec: FunctionSpec) -> Any | None:
        """moto's function for ``spec`` while it is still what the spec was made from, else None."""
        try:
            function = self.moto.backend("lambda", spec.region).get_function(spec.name, spec.version)
        except LambdaClientError:
            return None
        return function if _spec(function, spec.region) == spec else None

    def _package(self, spec: FunctionSpec) -> bytes:
        """The deployment package of exactly this spec's code (the function may have changed since)."""
        function = self._current(spec)
        if function is None:
            raise AwsError(
                "ResourceConflictException",
                "The function was updated or deleted while it was being invoked.",
                409,
            )
        return function.code_bytes

    def _credentials(self, spec: FunctionSpec) -> RoleCredentials:
        """The execution role's temporary keys (an STS session named after the function), made once."""
        key = (spec.region, spec.name, spec.role)
        with self._lock:
            found = self._role_credentials.get(key)
        if found is not None:
            return found
        session = self.moto.backend("sts", get_partition(spec.region)).assume_role(
            region_name=spec.region,
            role_session_name=spec.name,
            role_arn=spec.role,
            policy=None,
            duration=_SESSION_SECONDS,
            external_id=None,
        )
        made = RoleCredentials(session.access_key_id, session.secret_access_key, session.session_token)
        with self._lock:
            return self._role_credentials.setdefault(key, made)

    # -- environments ---------------------------------------------------------------------------------
    def _acquire(self, spec: FunctionSpec) -> tuple[ExecutionEnvironment, bool]:
        """A warm environment for ``spec`` if one is idle, else a new one; (environment, cold)."""
        stale: list[ExecutionEnvironment] = []
        warm = None
        with self._lock:
            if self._closing:
                raise AwsError("ServiceException", "The emulator is shutting down.", status=500)
            pool = self._pools.get(spec.arn)
            if pool is None or pool.spec != spec:
                if pool is not None:
                    stale = self._forget(pool)
                pool = self._pools[spec.arn] = _Pool(spec)
            while pool.idle and warm is None:
                env, _ = pool.idle.pop()
                if env.alive:
                    warm = env
                else:
                    stale.append(env)
                    self._environments.discard(env)
        for env in stale:
            env.close()
        if warm is not None:
            return warm, False
        try:
            env = self._factory.make(spec, self._package(spec), self._credentials(spec), self.endpoint_url())
        except zipfile.BadZipFile:  # AWS refuses such a package at upload; moto keeps it
            raise AwsError(
                "InvalidZipFileException", "Lambda was unable to unzip the deployment package.", status=502
            ) from None
        with self._lock:
            self._environments.add(env)
        return env, True

    def _release(self, env: ExecutionEnvironment, reusable: bool) -> None:
        with self._lock:
            pool = self._pools.get(env.spec.arn)
            if reusable and env.alive and not self._closing and pool is not None and pool.spec == env.spec:
                pool.idle.append((env, time.monotonic()))
                return
            self._environments.discard(env)
        env.close()

    def _reclaim_periodically(self) -> None:
        interval = min(RECLAIM_INTERVAL_SECONDS, max(self.config.lambda_idle_seconds / 2, 0.05))
        while not self._stopped.wait(interval):
            try:
                self._reclaim()
            except Exception:  # never let the reclaimer die
                _logger.exception("reclaiming idle Lambda environments failed")

    def _reclaim(self) -> None:
        """Stop the environments AWS would have reclaimed: long idle, or of a function deleted or changed."""
        now = time.monotonic()
        limit = self.config.lambda_idle_seconds
        with self._lock:
            pools = list(self._pools.values())
        outdated = [pool for pool in pools if self._current(pool.spec) is None]
        stale: list[ExecutionEnvironment] = []
        with self._lock:
            for pool in outdated:
                if self._pools.get(pool.spec.arn) is pool:
                    del self._pools[pool.spec.arn]
                    stale += self._forget(pool)
            for pool in self._pools.values():
                expired = [env for env, since in pool.idle if now - since > limit]
                pool.idle = [(env, since) for env, since in pool.idle if now - since <= limit]
                self._environments.difference_update(expired)
                stale += expired
        for env in stale:
            env.close()

    def _forget(self, pool: _Pool) -> list[ExecutionEnvironment]:
        """Take a pool's idle environments out of the books (caller holds the lock and closes them)."""
        idle = [env for env, _ in pool.idle]
        pool.idle = []
        self._environments.difference_update(idle)
        return idle

    # -- running --------------------------------------------------------------------------------------
    def _run(
        self,
        spec: FunctionSpec,
        request_id: str,
        event: bytes,
        invoked_arn: str,
        client_context: dict | None,
        trace_id: str | None,
    ) -> tuple[bytes, str | None, list[str]]:
        """Run one invocation; (payload, error type or None, the invocation's log lines)."""
        env, cold = self._acquire(spec)
        init: Outcome | None = None
        outcome: Outcome | None = None
        try:
            if cold:
                init = env.initialize(request_id)
            if init is None or init.error_type is None:
                outcome = env.invoke(
                    Invocation(
                        request_id=request_id,
                        payload=event,
                        deadline_ms=int(time.time() * 1000) + spec.timeout * 1000,
                        invoked_function_arn=invoked_arn,
                        trace_id=trace_id or new_trace_id(),
                        client_context=client_context,
                    )
                )
        finally:
            self._release(env, reusable=outcome is not None and outcome.status is None)
        if outcome is None:  # init failed: the environment is gone, the next invocation starts afresh
            lines = [*init.output, *_invocation_lines(spec, request_id, init, [], None)]
            self._write_log(spec, env.log_stream, lines)
            return init.payload, init.error_type, lines
        before = init.output if init is not None else []
        lines = [*before, *_invocation_lines(spec, request_id, outcome, outcome.output, init)]
        self._write_log(spec, env.log_stream, lines)
        return outcome.payload, outcome.error_type, lines

    def _run_event(self, *args) -> None:
        """An Event invocation, in the background: its result goes nowhere but the logs."""
        try:
            self._run(*args)
        except Exception:
            _logger.exception("asynchronous invocation failed")

    def _write_log(self, spec: FunctionSpec, stream: str, lines: list[str]) -> None:
        # CloudWatch Logs keeps no empty events.
        events = [line for line in lines if line]
        with self._log_lock:
            self.moto.log_stream(spec.region, spec.log_group, stream).write(*events)


def _spec(function: Any, region: str) -> FunctionSpec:
    """What an environment for moto's ``function`` is made from."""
    return FunctionSpec(
        name=function.function_name,
        arn=function.function_arn,
        version=str(function.version),
        region=region,
        handler=function.handler or "",
        runtime=function.run_time or "",
        timeout=int(function.timeout),
        memory_size=int(function.memory_size),
        environment=tuple(sorted((k, str(v)) for k, v in (function.environment_vars or {}).items())),
        role=function.role,
        code_sha256=function.code_digest,
        revision=function.last_modified,
    )


def _invocation_lines(
    spec: FunctionSpec, request_id: str, outcome: Outcome, output: list[str], init: Outcome | None
) -> list[str]:
    """START, what the handler printed, END and REPORT, as the Lambda service logs an invocation."""
    report = [
        f"REPORT RequestId: {request_id}",
        f"Duration: {outcome.duration_ms:.2f} ms",
        f"Billed Duration: {math.ceil(outcome.duration_ms)} ms",
        f"Memory Size: {spec.memory_size} MB",
    ]
    if outcome.max_memory_mb is not None:
        report.append(f"Max Memory Used: {outcome.max_memory_mb} MB")
    if init is not None:
        report.append(f"Init Duration: {init.duration_ms:.2f} ms")
    if outcome.status == "timeout":
        report.append("Status: timeout")
    elif outcome.status == "error":
        report += ["Status: error", f"Error Type: {outcome.error_type}"]
    return [
        f"START RequestId: {request_id} Version: {spec.version}",
        *output,
        f"END RequestId: {request_id}",
        "\t".join(report) + "\t",
    ]


def _event_payload(payload: bytes) -> bytes:
    """The event as the runtime receives it: the request body, which must be JSON (empty means ``{}``)."""
    if not payload.strip():
        return b"{}"
    try:
        json.loads(payload)
    except ValueError as error:
        raise AwsError(
            "InvalidRequestContentException",
            f"Could not parse request body into json: Could not parse payload into json: {error}",
        ) from None
    return payload


def _client_context(value: str | None) -> dict | None:
    if not value:
        return None
    try:
        context = json.loads(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        context = None
    if not isinstance(context, dict):
        raise AwsError(
            "InvalidRequestContentException", "Client context must be a valid Base64-encoded JSON object."
        )
    return context


def new_trace_id() -> str:
    """An X-Ray trace header (``Root=1-<time>-<id>;Parent=<id>;Sampled=0``) for a request that brought none."""
    return f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0"


def payload_too_large() -> Response:
    """The 413 Invoke answers for a synchronous request over 6 MB (the edge reads at most that)."""
    return _error_response(
        AwsError(
            "RequestEntityTooLargeException",
            f"Request must be smaller than {MAX_SYNC_PAYLOAD_BYTES} bytes for the InvokeFunction operation",
            status=413,
        )
    )


def _error_response(error: AwsError) -> Response:
    """An Invoke API error the rest-json way Lambda words it: ``x-amzn-ErrorType`` and ``{"Type", "Message"}``."""
    return Response(
        json.dumps({"Type": "User" if error.status < 500 else "Service", "Message": error.message}),
        status=error.status,
        content_type="application/json",
        headers={"x-amzn-ErrorType": error.code},
    )


def _refused_runtime(environ, *, creating: bool) -> Response | None:
    """AWS's answer when the request names a runtime it no longer accepts, else None. The body is
    read here and put back for moto."""
    body = get_input_stream(environ).read()
    environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))
    try:
        runtime = json.loads(body or b"{}").get("Runtime")
    except (ValueError, AttributeError):
        return None  # moto answers a body it cannot read
    if not isinstance(runtime, str):
        return None
    try:
        runtime_support.check(runtime, creating=creating)
    except AwsError as error:
        return _error_response(error)
    return None
