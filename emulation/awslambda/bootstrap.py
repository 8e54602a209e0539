"""The worker side of a Lambda execution environment: AWS's Python runtime loop, spoken over pipes.

The emulator starts ``python -I -S bootstrap.py <request fd> <response fd>`` with the function's
environment. ``-I -S`` keep the host out: no site-packages, no ``PYTHON*`` variables, no user site.
``sys.path`` becomes the task root, then the runtime directory (the SDK that AWS's runtime bundles:
boto3, botocore and their dependencies), then the standard library, so a dependency missing from the
deployment package fails here exactly as it fails on AWS.

Everything else follows AWS's runtime interface client (awslambdaric ``bootstrap.py``): the handler
is imported once per environment (init), init faults are reported with ``"requestId": ""`` and end
the process, handler exceptions become ``{"errorMessage", "errorType", "requestId", "stackTrace"}``,
``logging`` uses the ``[LEVEL]\\t<time>\\t<request id>\\t<message>`` format, and errors are logged as
``[ERROR] <Type>: <message>`` lines joined with ``\\r``.

This file imports only the standard library: the emulator imports it too, for the frame format
(:func:`write_frame` / :class:`FrameReader`), which is the one definition both sides use.
"""

from __future__ import annotations

import decimal
import importlib
import json
import logging
import os
import resource
import struct
import sys
import time
import traceback

#: A frame: lengths of the JSON metadata and of the raw body, then both.
FRAME_HEADER = struct.Struct(">II")

ERROR_LOG_LINE_TERMINATE = "\r"
ERROR_LOG_IDENT = "\u00a0"  # NO-BREAK SPACE, as the runtime indents logged stack traces


def write_frame(fd: int, meta: dict, body: bytes = b"") -> None:
    """Write one frame with as few system calls as its size allows."""
    encoded = json.dumps(meta, separators=(",", ":")).encode()
    data = memoryview(FRAME_HEADER.pack(len(encoded), len(body)) + encoded + body)
    while data:
        data = data[os.write(fd, data) :]


class FrameReader:
    """Reassembles frames from whatever chunks a pipe delivers."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk

    def next_frame(self) -> tuple[dict, bytes] | None:
        if len(self._buffer) < FRAME_HEADER.size:
            return None
        meta_size, body_size = FRAME_HEADER.unpack_from(self._buffer)
        end = FRAME_HEADER.size + meta_size + body_size
        if len(self._buffer) < end:
            return None
        meta = json.loads(self._buffer[FRAME_HEADER.size : FRAME_HEADER.size + meta_size])
        body = bytes(self._buffer[FRAME_HEADER.size + meta_size : end])
        del self._buffer[:end]
        return meta, body


class FaultException(Exception):
    """A runtime fault with AWS's error type (awslambdaric ``lambda_runtime_exception.py``)."""

    MARSHAL_ERROR = "Runtime.MarshalError"
    USER_CODE_SYNTAX_ERROR = "Runtime.UserCodeSyntaxError"
    HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"
    IMPORT_MODULE_ERROR = "Runtime.ImportModuleError"
    BUILT_IN_MODULE_CONFLICT = "Runtime.BuiltInModuleConflict"
    MALFORMED_HANDLER_NAME = "Runtime.MalformedHandlerName"
    LAMBDA_CONTEXT_UNMARSHAL_ERROR = "Runtime.LambdaContextUnmarshalError"

    def __init__(self, exception_type: str, msg: str, trace: list[str] | None = None):
        super().__init__(msg)
        self.exception_type = exception_type
        self.msg = msg
        self.trace = trace


# -- the context object ---------------------------------------------------------------------------
class CognitoIdentity:
    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")


class Client:
    __slots__ = ("installation_id", "app_title", "app_version_name", "app_version_code", "app_package_name")


class ClientContext:
    __slots__ = ("custom", "env", "client")


def _object_from_dict(cls, values: dict | None):
    if values is None:
        return None
    obj = cls()
    for name in cls.__slots__:
        setattr(obj, name, values.get(name))
    return obj


class LambdaContext:
    """The handler's ``context``, with the attributes and methods of AWS's Python runtime."""

    def __init__(self, invoke_id, client_context, cognito_identity, deadline_ms, invoked_function_arn):
        self.aws_request_id = invoke_id
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.invoked_function_arn = invoked_function_arn
        self.tenant_id = None
        self.client_context = _object_from_dict(ClientContext, client_context)
        if self.client_context is not None:
            self.client_context.client = _object_from_dict(Client, self.client_context.client)
        self.identity = _object_from_dict(CognitoIdentity, {})
        if cognito_identity is not None:
            self.identity.cognito_identity_id = cognito_identity.get("cognitoIdentityId")
            self.identity.cognito_identity_pool_id = cognito_identity.get("cognitoIdentityPoolId")
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(self._deadline_ms - int(time.time() * 1000), 0)

    def log(self, msg) -> None:
        sys.stdout.write(str(msg))

    def __repr__(self) -> str:
        return (
            f"LambdaContext([aws_request_id={self.aws_request_id},log_group_name={self.log_group_name},"
            f"log_stream_name={self.log_stream_name},function_name={self.function_name},"
            f"memory_limit_in_mb={self.memory_limit_in_mb},function_version={self.function_version},"
            f"invoked_function_arn={self.invoked_function_arn},client_context={self.client_context},"
            f"identity={self.identity},tenant_id={self.tenant_id}])"
        )


# -- errors, as the runtime reports and logs them --------------------------------------------------
def make_error(
    message: str, error_type: str, stack_trace: list[str] | None, invoke_id: str | None = None
) -> dict:
    return {
        "errorMessage": message or "",
        "errorType": error_type or "",
        "requestId": invoke_id if invoke_id is not None else "",
        "stackTrace": stack_trace or [],
    }


def _user_frames(tb) -> list:
    """The traceback without the runtime's own frames, as the runtime trims it."""
    frames = traceback.extract_tb(tb)
    for index, frame in enumerate(frames):
        if "/bootstrap.py" not in frame.filename:
            return frames[index:]
    return frames


def _replace_indentation(line: str) -> str:
    stripped = line.lstrip(" ")
    return ERROR_LOG_IDENT * (len(line) - len(stripped)) + stripped


def log_error(error: dict) -> None:
    description = "[ERROR]"
    if error.get("errorType"):
        description += " " + error["errorType"]
    if error.get("errorMessage"):
        if error.get("errorType"):
            description += ":"
        description += " " + error["errorMessage"]
    lines = [description, "Traceback (most recent call last):"]
    for element in error.get("stackTrace") or []:
        lines += [_replace_indentation(line) for line in element.splitlines()] if element else [""]
    sys.stdout.write(ERROR_LOG_LINE_TERMINATE.join(lines) + "\n")


# -- init: importing the handler ------------------------------------------------------------------
def get_handler(handler: str):
    try:
        modname, fname = handler.rsplit(".", 1)
    except ValueError as error:
        raise FaultException(
            FaultException.MALFORMED_HANDLER_NAME, f"Bad handler '{handler}': {error}"
        ) from None
    try:
        if modname.split(".")[0] in sys.builtin_module_names:
            raise FaultException(
                FaultException.BUILT_IN_MODULE_CONFLICT,
                f"Cannot use built-in module {modname} as a handler module",
            )
        module = importlib.import_module(modname.replace("/", "."))
    except ImportError as error:
        raise FaultException(
            FaultException.IMPORT_MODULE_ERROR, f"Unable to import module '{modname}': {error}"
        ) from None
    except SyntaxError as error:
        trace = [f'  File "{error.filename}" Line {error.lineno}\n    {error.text}']
        raise FaultException(
            FaultException.USER_CODE_SYNTAX_ERROR, f"Syntax error in module '{modname}': {error}", trace
        ) from None
    try:
        return getattr(module, fname)
    except AttributeError:
        raise FaultException(
            FaultException.HANDLER_NOT_FOUND, f"Handler '{fname}' missing on module '{modname}'"
        ) from None


# -- logging ----------------------------------------------------------------------------------------
_request_id = ""


class _RequestIdFilter(logging.Filter):
    def filter(self, record):
        record.aws_request_id = _request_id
        return True


class _StdoutHandler(logging.Handler):
    """Writes to whatever ``sys.stdout`` is now, as the runtime's log sink does."""

    def emit(self, record):
        sys.stdout.write(self.format(record))


def _setup_logging() -> None:
    logging.Formatter.converter = time.gmtime
    handler = _StdoutHandler()
    handler.setFormatter(
        logging.Formatter(
            "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n",
            "%Y-%m-%dT%H:%M:%S",
        )
    )
    handler.addFilter(_RequestIdFilter())
    logging.getLogger().addHandler(handler)


# -- marshalling ------------------------------------------------------------------------------------
def _encode_decimal(value):
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def marshal_response(response) -> bytes:
    if isinstance(response, bytes):
        return response
    # Python 3.12+ runtimes send non-ASCII characters as they are; older ones escape them.
    ensure_ascii = os.environ.get("AWS_EXECUTION_ENV") in {
        f"AWS_Lambda_python3.{minor}" for minor in range(12)
    }
    try:
        return json.dumps(response, default=_encode_decimal, ensure_ascii=ensure_ascii).encode()
    except Exception as error:
        raise FaultException(FaultException.MARSHAL_ERROR, f"Unable to marshal response: {error}") from None


# -- the loop ---------------------------------------------------------------------------------------
class Unbuffered:
    """Every write reaches the pipe at once, as in AWS's runtime: nothing is lost when a timeout kills us."""

    def __init__(self, stream):
        self.stream = stream

    def __getattr__(self, name):
        return getattr(self.stream, name)

    def write(self, text):
        written = self.stream.write(text)
        self.stream.flush()
        return written

    def writelines(self, lines):
        self.stream.writelines(lines)
        self.stream.flush()


class Channel:
    """The worker's ends of the two pipes to the emulator."""

    def __init__(self, request_fd: int, response_fd: int):
        self.request_fd, self.response_fd = request_fd, response_fd
        self._reader = FrameReader()

    def receive(self) -> tuple[dict, bytes]:
        while True:
            frame = self._reader.next_frame()
            if frame is not None:
                return frame
            chunk = os.read(self.request_fd, 1 << 20)
            if not chunk:  # the emulator closed its end: this environment is being shut down
                os._exit(0)
            self._reader.feed(chunk)

    def send(self, meta: dict, body: bytes, marker: str) -> None:
        """Send a result after the log marker, so the emulator knows every log line before it is in."""
        sys.stdout.flush()
        sys.stderr.flush()
        data = marker.encode()
        while data:
            data = data[os.write(1, data) :]
        meta["maxMemoryUsedMb"] = _max_memory_used_mb()
        write_frame(self.response_fd, meta, body)


def _max_memory_used_mb() -> int:
    """Peak resident memory of this process; VmHWM, since ru_maxrss can carry the parent's peak over exec."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return -(-int(line.split()[1]) // 1024)
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return -(-peak // (1024 * 1024 if sys.platform == "darwin" else 1024))


def handle_event(request_handler, meta: dict, body: bytes) -> tuple[dict, bytes]:
    invoke_id = meta["requestId"]
    try:
        context = LambdaContext(
            invoke_id,
            meta.get("clientContext"),
            meta.get("cognitoIdentity"),
            meta["deadlineMs"],
            meta["invokedFunctionArn"],
        )
        response = request_handler(json.loads(body), context)
        return {"error": False}, marshal_response(response)
    except FaultException as fault:
        error = make_error(fault.msg, fault.exception_type, fault.trace, invoke_id)
    except Exception:
        kind, value, tb = sys.exc_info()
        error = make_error(str(value), kind.__name__, traceback.format_list(_user_frames(tb)), invoke_id)
    log_error(error)
    return {"error": True}, json.dumps(error).encode()


def _isolate_imports() -> None:
    """sys.path as in the runtime: the task, the runtime's bundled SDK, then the standard library."""
    import _sitebuiltins
    import builtins

    sys.path[:0] = [os.environ["LAMBDA_TASK_ROOT"], os.environ["LAMBDA_RUNTIME_DIR"]]
    # -S skips ``site``, which is also where ``exit`` and ``quit`` come from; the runtime has them.
    builtins.exit = _sitebuiltins.Quitter("exit", "Ctrl-D (i.e. EOF)")
    builtins.quit = _sitebuiltins.Quitter("quit", "Ctrl-D (i.e. EOF)")


def main(argv: list[str]) -> None:
    global _request_id
    channel = Channel(int(argv[1]), int(argv[2]))
    sys.argv = argv[:1]
    sys.stdout = Unbuffered(sys.stdout)
    sys.stderr = Unbuffered(sys.stderr)
    _isolate_imports()
    _setup_logging()

    init_meta, _ = channel.receive()
    try:
        request_handler = get_handler(os.environ["_HANDLER"])
    except FaultException as fault:
        error = make_error(fault.msg, fault.exception_type, fault.trace)
    except Exception:
        kind, value, tb = sys.exc_info()
        error = make_error(str(value), kind.__name__, traceback.format_list(_user_frames(tb)))
    else:
        error = None
    if error is not None:
        log_error(error)
        channel.send({"error": True}, json.dumps(error).encode(), init_meta["marker"])
        os._exit(1)
    channel.send({"error": False}, b"", init_meta["marker"])

    while True:
        meta, body = channel.receive()
        _request_id = meta["requestId"]
        if meta.get("traceId"):
            os.environ["_X_AMZN_TRACE_ID"] = meta["traceId"]
        else:
            os.environ.pop("_X_AMZN_TRACE_ID", None)
        result_meta, result = handle_event(request_handler, meta, body)
        channel.send(result_meta, result, meta["marker"])


if __name__ == "__main__":
    main(sys.argv)
