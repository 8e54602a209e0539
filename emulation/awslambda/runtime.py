"""Execution environments: one worker process per environment, running :mod:`bootstrap`.

An environment is made from a :class:`FunctionSpec`; it lives across invocations (warm starts) until
the function's code or configuration changes, it times out or it crashes. The emulator talks to it
over two pipes carrying length-prefixed frames (a warm invocation costs about a millisecond), and
reads everything it prints from a third pipe, which becomes the invocation's log lines.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import importlib.util
import io
import json
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

from emulation.awslambda import bootstrap

#: The SDK that AWS's Python runtime bundles; nothing else from the host reaches a function.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")
#: AWS's init phase limit; an init that takes longer eats into the invocation's own timeout.
INIT_LIMIT_SECONDS = 10.0
_BOOTSTRAP = Path(bootstrap.__file__).resolve()


@dataclass(frozen=True)
class FunctionSpec:
    """What an environment is made from: a change in any field means a fresh environment."""

    name: str
    arn: str  # qualified for a published version, unqualified for $LATEST
    version: str
    region: str
    handler: str
    runtime: str
    timeout: int
    memory_size: int
    environment: tuple[tuple[str, str], ...]
    role: str
    code_sha256: str
    revision: str  # the function's LastModified: a deleted and re-created function starts afresh

    @property
    def log_group(self) -> str:
        return f"/aws/lambda/{self.name}"


@dataclass(frozen=True)
class RoleCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str


@dataclass
class Outcome:
    """How one phase (init or an invocation) ended."""

    payload: bytes
    error_type: str | None  # None when the handler returned normally
    output: list[str]  # what the environment printed, one entry per log line
    duration_ms: float
    max_memory_mb: int | None = None
    status: str | None = None  # the REPORT line's ``Status``: "timeout", or "error" when the runtime ended


# -- the file system of an environment ------------------------------------------------------------
@functools.cache
def runtime_directory(data_dir: Path) -> Path:
    """A directory holding only the runtime's bundled SDK (links into this interpreter's site-packages).

    Made once per interpreter and reused: its name carries a digest of where the packages live.
    """
    sources = []
    for name in RUNTIME_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise RuntimeError(f"the Lambda runtime needs {name}, which is not installed")
        origin = Path(spec.origin)
        sources.append(origin.parent if origin.name == "__init__.py" else origin)
    digest = hashlib.sha256("\n".join(map(str, sources)).encode()).hexdigest()[:12]
    target = data_dir / "lambda" / f"runtime-{digest}"
    if not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".runtime-"))
        for source in sources:
            (staging / source.name).symlink_to(source)
        try:
            staging.rename(target)
        except OSError:  # another emulator on the same data directory made it first
            for link in staging.iterdir():
                link.unlink()
            staging.rmdir()
    return target


def task_root(data_dir: Path, spec: FunctionSpec, code: bytes) -> Path:
    """The deployment package unpacked (once per code version): the function's ``/var/task``."""
    target = data_dir / "lambda" / "tasks" / f"{spec.name}-{spec.code_sha256[:16]}"
    if not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".task-"))
        with zipfile.ZipFile(io.BytesIO(code)) as package:
            for member in package.infolist():
                path = package.extract(member, staging)
                mode = member.external_attr >> 16
                if mode and not member.is_dir():
                    os.chmod(path, mode & 0o777)
        try:
            staging.rename(target)
        except OSError:  # unpacked meanwhile by another thread or emulator
            shutil.rmtree(staging, ignore_errors=True)
    return target


def runtime_environment(
    spec: FunctionSpec, task: Path, runtime_dir: Path, credentials: RoleCredentials, endpoint_url: str
) -> dict[str, str]:
    """The variables a function sees (shared/spec section 5), in three layers.

    Defaults the function may override (AWS lets users set LANG, PATH, TZ, LD_LIBRARY_PATH), then the
    function's own variables, then the reserved ones, which AWS never lets a function set. The
    SDK inside the function reaches the emulator through the standard ``AWS_ENDPOINT_URL``, and the
    host's ``~/.aws`` stays out, as the sandbox has none.
    """
    host_libraries = os.environ.get("LD_LIBRARY_PATH")
    libraries = [host_libraries] if host_libraries else []
    defaults = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "LD_LIBRARY_PATH": ":".join([*libraries, str(task), str(task / "lib")]),
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
    }
    reserved = {
        "_HANDLER": spec.handler,
        "AWS_REGION": spec.region,
        "AWS_DEFAULT_REGION": spec.region,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
        "AWS_LAMBDA_FUNCTION_NAME": spec.name,
        "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
        "AWS_LAMBDA_LOG_GROUP_NAME": spec.log_group,
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_ACCESS_KEY_ID": credentials.access_key_id,
        "AWS_SECRET_ACCESS_KEY": credentials.secret_access_key,
        "AWS_SESSION_TOKEN": credentials.session_token,
        "LAMBDA_TASK_ROOT": str(task),
        "LAMBDA_RUNTIME_DIR": str(runtime_dir),
        "PWD": str(task),
    }
    return {**defaults, **dict(spec.environment), **reserved}


# -- the worker process -----------------------------------------------------------------------------
class _Exited(Exception):
    """The worker process ended (or closed its pipe) before answering."""


class ExecutionEnvironment:
    """One worker process, used by one invocation at a time (the service's pool guarantees that)."""

    def __init__(self, spec: FunctionSpec, task: Path, environment: dict[str, str]):
        self.spec = spec
        self.log_stream = f"{dt.datetime.now(dt.timezone.utc):%Y/%m/%d}/[{spec.version}]{uuid.uuid4().hex}"
        request_r, self._request_w = os.pipe()
        self._response_r, response_w = os.pipe()
        self._log_r, log_w = os.pipe()
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-I", "-S", str(_BOOTSTRAP), str(request_r), str(response_w)],
                env={**environment, "AWS_LAMBDA_LOG_STREAM_NAME": self.log_stream},
                cwd=task,
                stdin=subprocess.DEVNULL,
                stdout=log_w,
                stderr=subprocess.STDOUT,
                pass_fds=(request_r, response_w),
                start_new_session=True,  # its own process group: a timeout kills what the handler started too
            )
        except BaseException:
            for fd in (self._request_w, self._response_r, self._log_r):
                os.close(fd)
            raise
        finally:
            for fd in (request_r, response_w, log_w):
                os.close(fd)
        for fd in (self._response_r, self._log_r):
            os.set_blocking(fd, False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._response_r, selectors.EVENT_READ)
        self._selector.register(self._log_r, selectors.EVENT_READ)
        self._frames = bootstrap.FrameReader()
        self._log = bytearray()
        self._log_open = True  # until the worker closes its stdout and stderr
        self._started = time.monotonic()
        self._closed = False

    @property
    def alive(self) -> bool:
        return not self._closed and self._process.poll() is None

    def initialize(self, request_id: str) -> Outcome:
        """Import the handler (the init phase, on behalf of ``request_id``); its duration is the Init Duration."""
        limit = max(INIT_LIMIT_SECONDS, float(self.spec.timeout))
        outcome = self._exchange({}, b"", request_id, self._started, self._started + limit)
        if outcome.error_type is not None and outcome.status is None:
            outcome.status = "error"  # an init fault ends the runtime process
        return outcome

    def invoke(
        self,
        request_id: str,
        payload: bytes,
        *,
        invoked_arn: str,
        client_context: dict | None = None,
        trace_id: str | None = None,
    ) -> Outcome:
        start = time.monotonic()
        meta = {
            "requestId": request_id,
            "deadlineMs": int(time.time() * 1000) + self.spec.timeout * 1000,
            "invokedFunctionArn": invoked_arn,
            "clientContext": client_context,
            "traceId": trace_id,
        }
        return self._exchange(meta, payload, request_id, start, start + self.spec.timeout)

    def _exchange(self, meta: dict, body: bytes, request_id: str, start: float, deadline: float) -> Outcome:
        marker = f"\x1e{secrets.token_hex(8)}\x1e".encode()
        try:
            bootstrap.write_frame(self._request_w, {**meta, "marker": marker.decode()}, body)
            answer, output = self._await(marker, deadline)
        except (_Exited, BrokenPipeError):
            try:
                code = self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:  # it closed its pipe but lingers
                self.kill()
                code = self._process.wait()
            return Outcome(
                _platform_error("Runtime.ExitError", f"RequestId: {request_id} Error: {_exit_reason(code)}"),
                "Runtime.ExitError",
                self._drain_log(),
                _ms_since(start),
                status="error",
            )
        if answer is None:
            self.kill()
            return Outcome(
                _platform_error(
                    "Sandbox.Timedout",
                    f"RequestId: {request_id} Error: Task timed out after {self.spec.timeout:.2f} seconds",
                ),
                "Sandbox.Timedout",
                self._drain_log(),
                _ms_since(start),
                status="timeout",
            )
        (result_meta, result) = answer
        error_type = _error_type(result) if result_meta["error"] else None
        return Outcome(result, error_type, output, _ms_since(start), result_meta.get("maxMemoryUsedMb"))

    def _await(self, marker: bytes, deadline: float) -> tuple[tuple[dict, bytes] | None, list[str]]:
        """Wait for the answer frame and the log marker before it; (None, []) past the deadline."""
        answer = self._frames.next_frame()
        output: list[str] | None = None if self._log_open else []
        while answer is None or output is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None, []
            for key, _ in self._selector.select(remaining):
                try:
                    chunk = os.read(key.fd, 1 << 20)
                except BlockingIOError:
                    continue
                if key.fd == self._response_r:
                    if not chunk:
                        raise _Exited
                    self._frames.feed(chunk)
                    answer = answer or self._frames.next_frame()
                elif not chunk:  # stdout closed: whatever was printed is all there will be
                    self._selector.unregister(self._log_r)
                    self._log_open = False
                    output = _lines(bytes(self._log))
                    self._log.clear()
                else:
                    self._log += chunk
                    end = self._log.find(marker)
                    if end >= 0:
                        output = _lines(bytes(self._log[:end]))
                        del self._log[: end + len(marker)]
        return answer, output

    def _drain_log(self) -> list[str]:
        """What a dead or killed worker printed before it stopped (already in the pipe)."""
        while True:
            try:
                chunk = os.read(self._log_r, 1 << 20)
            except (BlockingIOError, OSError):
                break
            if not chunk:
                break
            self._log += chunk
        lines = _lines(bytes(self._log))
        self._log.clear()
        return lines

    def kill(self) -> None:
        """Stop the worker and everything it started; safe from any thread, at any time."""
        try:
            os.killpg(self._process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def close(self) -> None:
        """Kill the worker and release its pipes; only the thread that owns the environment calls this."""
        if self._closed:
            return
        self._closed = True
        self.kill()
        self._process.wait()
        self._selector.close()
        for fd in (self._request_w, self._response_r, self._log_r):
            os.close(fd)


def _lines(output: bytes) -> list[str]:
    text = output.decode("utf-8", "replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _ms_since(start: float) -> float:
    return (time.monotonic() - start) * 1000


def _platform_error(error_type: str, message: str) -> bytes:
    """An error the platform reports itself (not the runtime), keys in AWS's order."""
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


def _error_type(payload: bytes) -> str:
    try:
        return json.loads(payload).get("errorType") or "Unhandled"
    except ValueError:
        return "Unhandled"


def _exit_reason(code: int) -> str:
    """Worded as AWS words it (its supervisor is written in Go)."""
    if code == 0:
        return "Runtime exited without providing a reason"
    if code < 0:
        name = signal.strsignal(-code) or f"signal {-code}"
        return f"Runtime exited with error: signal: {name.lower()}"
    return f"Runtime exited with error: exit status {code}"
