"""Execution environments: a sandboxed worker per environment, running AWS's runtime against our Runtime API.

An environment is made from a :class:`FunctionSpec`; it lives across invocations (warm starts) until
the function's code or configuration changes, it times out, it crashes or it idles too long. Its
worker (:mod:`emulation.awslambda.worker`) runs in a bubblewrap sandbox (:mod:`emulation.sandbox`)
that shows it what Lambda shows a function: the package read-only at /var/task, the runtime at
/var/runtime (AWS's ``awslambdaric`` and the SDK the runtime bundles), a private writable /tmp, its
own environment variables, its own process and network namespaces, user id 993 as on AWS, and
nothing of the host's files. The worker hands the emulator the listening sockets it opened inside
the sandbox; the emulator serves this environment's Runtime API (:mod:`runtime_api`) on one and
relays the other to its own port, which is how the function's SDK reaches the emulator.

Where bubblewrap cannot run, the worker runs directly, with the same environment variables and no
capabilities, but sees the host's files; the README says so.

Everything the worker prints is read from a pipe and becomes the invocation's log lines.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import importlib.util
import io
import os
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from emulation import sandbox
from emulation.awslambda.runtime_api import (
    Answer,
    ConnectionServer,
    Invocation,
    RuntimeApi,
    platform_error,
    relay,
)

#: What AWS's Python runtime brings besides the standard library: its runtime interface client and
#: the SDK it bundles. Nothing else from the host reaches a function.
RUNTIME_MODULES = (
    "awslambdaric",
    "runtime_client",
    "simplejson",
    "snapshot_restore_py",
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "dateutil",
    "urllib3",
    "six",
)
#: AWS's init phase limit; an init that takes longer eats into the invocation's own timeout.
INIT_LIMIT_SECONDS = 10.0
#: Where things are inside the sandbox, as on AWS (the worker plays the part of AWS's /var/rapid).
TASK_ROOT, RUNTIME_ROOT, WORKER_INSIDE = "/var/task", "/var/runtime", "/var/rapid/init.py"
#: The user AWS runs functions as, and the account files that name it (libraries that look up the
#: home directory, such as ``os.path.expanduser``, need an entry for the user).
FUNCTION_UID, FUNCTION_GID = 993, 990
ACCOUNT_FILES = {
    "passwd": f"root:x:0:0:root:/root:/bin/bash\nsbx_user1051:x:{FUNCTION_UID}:{FUNCTION_GID}::/home/sbx_user1051:/sbin/nologin\n",
    "group": f"root:x:0:\nsbx_user1051:x:{FUNCTION_GID}:\n",
}
_WORKER = Path(__file__).with_name("worker.py").resolve()


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

    @property
    def custom_runtime(self) -> bool:
        """An OS-only runtime (provided.al2023, provided.al2): the package's ``bootstrap`` is the runtime."""
        return self.runtime.startswith("provided")


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
def _runtime_sources() -> tuple[Path, ...]:
    sources = []
    for name in RUNTIME_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise RuntimeError(f"the Lambda runtime needs {name}, which is not installed")
        origin = Path(spec.origin).resolve()
        sources.append(origin.parent if origin.name == "__init__.py" else origin)
    return tuple(sources)


def runtime_directory(private_dir: Path) -> Path:
    """A directory holding only the runtime's modules (links into this interpreter's site-packages).

    Made once and reused: its name carries a digest of where the modules live.
    """
    sources = _runtime_sources()
    digest = hashlib.sha256("\n".join(map(str, sources)).encode()).hexdigest()[:12]
    target = private_dir / f"runtime-{digest}"
    if not target.is_dir():
        staging = Path(tempfile.mkdtemp(dir=private_dir, prefix=".runtime-"))
        for source in sources:
            (staging / source.name).symlink_to(source)
        try:
            staging.rename(target)
        except OSError:  # another emulator on the same directory made it first
            shutil.rmtree(staging)
    return target


def unpack(code: bytes, target: Path, *, strict_permissions: bool) -> None:
    """Unpack a deployment package into ``target`` (made here), with the file modes a function gets.

    On Lambda the package's files belong to root and the function runs as another user, so only a
    file's permissions for others count: a 0600 file is unreadable, a 0644 one read-only. With
    ``strict_permissions`` each mode is reduced to its "others" bits for everyone (0644 -> 0444,
    0600 -> 0000), which gives the function, running as the files' owner, exactly that access.
    Entries without Unix permissions (zips made on Windows) get 0644, directories 0755.
    """
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".unpacking-"))
    try:
        with zipfile.ZipFile(io.BytesIO(code)) as package:
            modes = {}
            for member in package.infolist():
                path = Path(package.extract(member, staging))
                mode = (member.external_attr >> 16) & 0o777
                modes[path] = mode or (0o755 if member.is_dir() else 0o644)
        if strict_permissions:
            directories = [p for p in staging.rglob("*") if p.is_dir() and not p.is_symlink()]
            for path in staging.rglob("*"):
                if not path.is_symlink() and not path.is_dir():
                    os.chmod(path, _others_only(modes.get(path, 0o644)))
            for path in sorted(directories, key=lambda p: len(p.parts), reverse=True):
                os.chmod(path, _others_only(modes.get(path, 0o755)))
        else:
            for path, mode in modes.items():
                if not path.is_dir():
                    os.chmod(path, mode | 0o400)
        os.chmod(staging, 0o555 if strict_permissions else 0o755)
        staging.rename(target)
    except BaseException:
        sandbox.remove_tree(staging)
        raise


def _others_only(mode: int) -> int:
    return (mode & 0o7) * 0o111


def cached_task_root(private_dir: Path, code: bytes, *, strict_permissions: bool) -> Path:
    """The package unpacked once per content: ``tasks/<sha256 of the bytes>``, shared by environments.

    Safe to share only where functions see it read-only (in the sandbox); the key is computed here
    from the very bytes that will run, never taken from a name or a client.
    """
    key = hashlib.sha256(code).hexdigest() + ("" if strict_permissions else "-relaxed")
    target = private_dir / "tasks" / key
    if not target.is_dir():
        target.parent.mkdir(mode=0o700, exist_ok=True)
        try:
            unpack(code, target, strict_permissions=strict_permissions)
        except OSError:
            if not target.is_dir():  # not simply unpacked meanwhile by another thread
                raise
    return target


def runtime_environment(
    spec: FunctionSpec,
    *,
    task: str,
    runtime_dir: str,
    credentials: RoleCredentials,
    endpoint_url: str,
    log_stream: str,
) -> dict[str, str]:
    """The variables a function sees (shared/spec section 5), in three layers.

    Defaults the function may override (AWS lets users set LANG, PATH, TZ, LD_LIBRARY_PATH), then the
    function's own variables, then the reserved ones, which AWS never lets a function set. Nothing
    comes from the emulator's own environment. The SDK inside the function reaches the emulator
    through the standard ``AWS_ENDPOINT_URL``, and no ``~/.aws`` is read.
    """
    defaults = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "LD_LIBRARY_PATH": f"/lib64:/usr/lib64:{runtime_dir}:{runtime_dir}/lib:{task}:{task}/lib",
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
        "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_ACCESS_KEY_ID": credentials.access_key_id,
        "AWS_SECRET_ACCESS_KEY": credentials.secret_access_key,
        "AWS_SESSION_TOKEN": credentials.session_token,
        "LAMBDA_TASK_ROOT": task,
        "LAMBDA_RUNTIME_DIR": runtime_dir,
        "PWD": task,
    }
    return {**defaults, **dict(spec.environment), **reserved}


# -- making environments ----------------------------------------------------------------------------
class EnvironmentFactory:
    """Makes execution environments; owns the emulator's private Lambda directory (mode 0700).

    ``strict_permissions``: package files keep only their permissions for others, as on Lambda.
    """

    def __init__(self, private_dir: Path, *, strict_permissions: bool):
        self.private_dir = sandbox.private_directory(private_dir)
        self.strict_permissions = strict_permissions
        self.sandboxed = sandbox.available()
        if not self.sandboxed:
            sandbox.warn_unavailable("Lambda functions")
        (self.private_dir / "environments").mkdir(mode=0o700, exist_ok=True)
        for name, text in ACCOUNT_FILES.items():
            (self.private_dir / name).write_text(text)

    def make(
        self, spec: FunctionSpec, code: bytes, credentials: RoleCredentials, endpoint_url: str
    ) -> ExecutionEnvironment:
        """A new environment for ``spec`` running ``code``; its worker starts now (the init phase)."""
        home = Path(tempfile.mkdtemp(dir=self.private_dir / "environments", prefix=f"{spec.name}-"))
        try:
            (home / "tmp").mkdir()
            log_stream = f"{dt.datetime.now(dt.timezone.utc):%Y/%m/%d}/[{spec.version}]{uuid.uuid4().hex}"
            if self.sandboxed:
                task = cached_task_root(self.private_dir, code, strict_permissions=self.strict_permissions)
                edge = urlsplit(endpoint_url)
                inside_url = f"http://127.0.0.1:{edge.port}"
                environment = runtime_environment(
                    spec,
                    task=TASK_ROOT,
                    runtime_dir=RUNTIME_ROOT,
                    credentials=credentials,
                    endpoint_url=inside_url,
                    log_stream=log_stream,
                )
                view = self._view(task, home / "tmp")
                return ExecutionEnvironment(
                    spec, environment, home, log_stream, view=view, edge=(edge.hostname, edge.port)
                )
            # Without a sandbox a function could change a shared unpacked package: each gets its own.
            task = home / "task"
            unpack(code, task, strict_permissions=self.strict_permissions)
            environment = runtime_environment(
                spec,
                task=str(task),
                runtime_dir=str(runtime_directory(self.private_dir)),
                credentials=credentials,
                endpoint_url=endpoint_url,
                log_stream=log_stream,
            )
            environment["TMPDIR"] = str(home / "tmp")
            return ExecutionEnvironment(spec, environment, home, log_stream, view=None, edge=None)
        except BaseException:
            sandbox.remove_tree(home)
            raise

    def _view(self, task: Path, tmp: Path) -> sandbox.Sandbox:
        """The interpreter without its site-packages; the runtime's modules, each bound into /var/runtime."""
        interpreter, hidden = sandbox.python_binds()
        runtime = [sandbox.Bind(source, f"{RUNTIME_ROOT}/{source.name}") for source in _runtime_sources()]
        return sandbox.Sandbox(
            binds=[
                *sandbox.system_binds(),
                *interpreter,
                sandbox.Bind(task, TASK_ROOT),
                *runtime,
                sandbox.Bind(_WORKER, WORKER_INSIDE),
                sandbox.Bind(tmp, "/tmp", writable=True),
                *(sandbox.Bind(self.private_dir / name, f"/etc/{name}") for name in ACCOUNT_FILES),
            ],
            empty=hidden,
            workdir=TASK_ROOT,
            uid=FUNCTION_UID,
            gid=FUNCTION_GID,
            die_with_parent=True,
        )


# -- the worker process -----------------------------------------------------------------------------
class ExecutionEnvironment:
    """One worker, used by one invocation at a time (the service's pool guarantees that)."""

    def __init__(
        self,
        spec: FunctionSpec,
        environment: dict[str, str],
        home: Path,
        log_stream: str,
        *,
        view: sandbox.Sandbox | None,
        edge: tuple[str, int] | None,
    ):
        self.spec = spec
        self.log_stream = log_stream
        self._home = home
        self._edge = edge
        self._control, worker_end = socket.socketpair()
        self._control.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self._wake_r, self._wake_w = os.pipe()
        self._log_r, log_w = os.pipe()
        worker = WORKER_INSIDE if view else str(_WORKER)
        argv = [
            sys.executable,
            "-I",
            "-S",
            worker,
            str(worker_end.fileno()),
            "custom" if spec.custom_runtime else "python",
        ]
        if view is not None:
            argv.append(str(edge[1]))
        try:
            # killed by the kernel when the emulator ends, however it ends (the sandbox's whole PID
            # namespace with it); launched from the thread that lives as long as the emulator
            self._process = sandbox.launch(
                view.command(argv) if view else sandbox.without_capabilities(argv, die_with_parent=True),
                env=environment,
                cwd=None if view else environment["LAMBDA_TASK_ROOT"],
                stdin=subprocess.DEVNULL,
                stdout=log_w,
                stderr=subprocess.STDOUT,
                pass_fds=(worker_end.fileno(),),
                start_new_session=True,  # its own process group: a timeout kills what the handler started too
            )
        except BaseException:
            for fd in (self._wake_r, self._wake_w, self._log_r):
                os.close(fd)
            self._control.close()
            raise
        finally:
            os.close(log_w)
            worker_end.close()
        os.set_blocking(self._log_r, False)
        os.set_blocking(self._wake_r, False)
        self._exited_fd = os.pidfd_open(self._process.pid)
        self._selector = selectors.DefaultSelector()
        for fd in (self._log_r, self._wake_r, self._exited_fd):
            self._selector.register(fd, selectors.EVENT_READ)
        self._api = RuntimeApi(on_change=self._wake)
        self._servers: list[ConnectionServer] = []
        self._runtime_pid: int | None = None
        self._log = bytearray()
        self._log_open = True  # until the worker and its children close stdout and stderr
        self._started = time.monotonic()
        self._closed = False

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"!")
        except OSError:  # closed, or full of unread wake-ups: either way the waiter will look
            pass

    @property
    def pid(self) -> int:
        """The worker's process (bwrap's, in a sandbox): killing its group ends the environment."""
        return self._process.pid

    @property
    def alive(self) -> bool:
        return not self._closed and self._process.poll() is None

    def initialize(self, request_id: str) -> Outcome:
        """The init phase, on behalf of ``request_id``: until the runtime first asks for an invocation.

        Its duration is the REPORT line's Init Duration. A runtime that reports an init error, exits
        or overruns the init limit leaves an Outcome with an error, and the environment is gone.
        """
        deadline = self._started + max(INIT_LIMIT_SECONDS, float(self.spec.timeout))
        self._receive_listeners(deadline)
        outcome = self._await(
            lambda: self._api.ready or self._api.answer is not None, request_id, self._started, deadline
        )
        if outcome.error_type is not None:
            outcome.status = "error"  # a failed init ends the runtime process
        return outcome

    def _receive_listeners(self, deadline: float) -> None:
        """Serve the listening sockets the worker made: the Runtime API's, and in a sandbox the edge's."""
        self._control.settimeout(max(deadline - time.monotonic(), 0.001))
        try:
            _, ancillary, _, _ = self._control.recvmsg(1, socket.CMSG_SPACE(8) + socket.CMSG_SPACE(12))
        except OSError:
            return  # nothing came: the worker died or hangs, which _await reports
        fds: list[int] = []
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds += struct.unpack(f"{len(data) // 4}i", data[: len(data) - len(data) % 4])
            elif level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                self._runtime_pid = struct.unpack("3i", data)[0]  # translated into our PID namespace
        listeners = [socket.socket(fileno=fd) for fd in fds]
        if listeners:
            self._api.serve(listeners[0])
        for listener in listeners[1:]:
            self._servers.append(ConnectionServer(listener, relay(self._edge), "lambda-edge-relay"))

    def _entrypoint_failure(self) -> str | None:
        """Why the worker could not start a custom runtime's bootstrap, if that is why it ended."""
        self._control.setblocking(False)
        try:
            return self._control.recv(4096).decode("utf-8", "replace") or None
        except OSError:
            return None

    def invoke(self, invocation: Invocation) -> Outcome:
        start = time.monotonic()
        self._api.offer(invocation)
        return self._await(
            lambda: self._api.answer is not None, invocation.request_id, start, start + self.spec.timeout
        )

    def _await(self, done, request_id: str, start: float, deadline: float) -> Outcome:
        """Read the log until ``done()``, the worker's exit or the deadline, and say how the phase ended."""
        exited = False
        while not done() and not exited:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                return Outcome(
                    platform_error(
                        "Sandbox.Timedout",
                        f"RequestId: {request_id} Error: Task timed out after {self.spec.timeout:.2f} seconds",
                    ),
                    "Sandbox.Timedout",
                    self._lines(),
                    _ms_since(start),
                    status="timeout",
                )
            for key, _ in self._selector.select(remaining):
                if key.fd == self._exited_fd:
                    exited = True
                elif key.fd == self._wake_r:
                    _drain(self._wake_r)
                else:
                    self._read_log()
        if not done():  # the worker exited without answering
            code = self._process.wait()
            reason = self._entrypoint_failure()
            if reason is not None:
                return Outcome(
                    platform_error("Runtime.InvalidEntrypoint", f"RequestId: {request_id} Error: {reason}"),
                    "Runtime.InvalidEntrypoint",
                    self._lines(),
                    _ms_since(start),
                    status="error",
                )
            return Outcome(
                platform_error("Runtime.ExitError", f"RequestId: {request_id} Error: {_exit_reason(code)}"),
                "Runtime.ExitError",
                self._lines(),
                _ms_since(start),
                status="error",
            )
        answer: Answer | None = self._api.answer
        if answer is None:  # init done: the runtime waits for its first invocation
            return Outcome(b"", None, self._lines(), _ms_since(start))
        return Outcome(
            answer.payload, answer.error_type, self._lines(), _ms_since(start), self._max_memory_mb()
        )

    def _read_log(self) -> None:
        while True:
            try:
                chunk = os.read(self._log_r, 1 << 20)
            except BlockingIOError:
                return
            except OSError:
                return
            if not chunk:
                self._selector.unregister(self._log_r)
                self._log_open = False
                return
            self._log += chunk

    def _lines(self) -> list[str]:
        """Everything printed so far (what the runtime printed before it answered is in the pipe)."""
        if self._log_open:
            self._read_log()
        text = self._log.decode("utf-8", "replace")
        self._log.clear()
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return lines

    def _max_memory_mb(self) -> int | None:
        """Peak resident memory of the runtime process (VmHWM), as the REPORT line shows it."""
        pid = self._runtime_pid or self._process.pid
        try:
            with open(f"/proc/{pid}/status", "rb") as status:
                for line in status:
                    if line.startswith(b"VmHWM:"):
                        return -(-int(line.split()[1]) // 1024)
        except OSError:
            pass
        return None

    def kill(self) -> None:
        """Stop the worker and everything it started; safe from any thread, at any time."""
        try:
            os.killpg(self._process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def close(self) -> None:
        """Kill the worker and release everything it held; only the thread that owns the environment calls this."""
        if self._closed:
            return
        self._closed = True
        self.kill()
        self._process.wait()
        self._api.close()
        for server in self._servers:
            server.close()
        self._selector.close()
        for fd in (self._wake_r, self._wake_w, self._log_r, self._exited_fd):
            os.close(fd)
        self._control.close()
        sandbox.remove_tree(self._home)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _ms_since(start: float) -> float:
    return (time.monotonic() - start) * 1000


def _exit_reason(code: int) -> str:
    """Worded as AWS words it (its supervisor is written in Go)."""
    if code == 0:
        return "Runtime exited without providing a reason"
    if code < 0:
        name = signal.strsignal(-code) or f"signal {-code}"
        return f"Runtime exited with error: signal: {name.lower()}"
    return f"Runtime exited with error: exit status {code}"
