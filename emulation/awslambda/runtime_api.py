"""The Lambda Runtime API (2018-06-01) of one execution environment, as AWS documents and serves it.

The runtime inside the environment (AWS's ``awslambdaric`` for Python, a custom runtime's
``bootstrap`` otherwise) asks ``GET /2018-06-01/runtime/invocation/next`` for work, and answers with
``POST .../invocation/<request id>/response`` or ``.../error``; a failed initialisation is reported
with ``POST .../runtime/init/error``. The emulator serves this on listening sockets that the worker
made inside the sandbox and handed over, so nothing outside the sandbox can reach it.

The state machine, status codes and error bodies follow AWS's Runtime API (and its runtime
interface emulator): a request id that is not the current invocation's is 400 ``InvalidRequestID``;
a call out of turn (a second answer, ``/next`` while an invocation is unanswered, an init error
after init) is 403 ``InvalidStateTransition``; a response over the payload limit is 413 to the
runtime and ``Function.ResponseSizeTooLarge`` to the caller.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

from emulation.nodelay import disable_nagle

PREFIX = "/2018-06-01/runtime"
#: What AWS's error message quotes: 6 MiB and 100 bytes.
MAX_RESPONSE_PAYLOAD_BYTES = 6291556
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"


@dataclass(frozen=True)
class Invocation:
    """One event for the runtime, and what the ``/next`` answer's headers carry about it."""

    request_id: str
    payload: bytes
    deadline_ms: int  # epoch milliseconds
    invoked_function_arn: str
    trace_id: str
    client_context: dict | None = None

    def headers(self) -> list[tuple[str, str]]:
        headers = [
            ("Lambda-Runtime-Aws-Request-Id", self.request_id),
            ("Lambda-Runtime-Deadline-Ms", str(self.deadline_ms)),
            ("Lambda-Runtime-Invoked-Function-Arn", self.invoked_function_arn),
            ("Lambda-Runtime-Trace-Id", self.trace_id),
        ]
        if self.client_context is not None:
            headers.append(("Lambda-Runtime-Client-Context", json.dumps(self.client_context)))
        return [*headers, ("Content-Type", "application/json")]


@dataclass(frozen=True)
class Answer:
    """What the runtime reported: a result, an invocation error or an init error."""

    payload: bytes
    error_type: str | None = None  # None for a result


def platform_error(error_type: str, message: str) -> bytes:
    """An error the platform reports itself (not the runtime), keys in AWS's order."""
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


class RuntimeApi:
    """The Runtime API for one environment; ``on_change`` is called (from a server thread) on each event.

    States, as AWS names them: Started (initialising) -> Ready (waiting in ``/next``) -> Running (an
    invocation handed out) -> ResponseSent -> Ready ...; or Started -> InitError.
    """

    def __init__(self, on_change: Callable[[], None]):
        self._on_change = on_change
        self._changed = threading.Condition()
        self.state = "Started"
        self._offered: Invocation | None = None
        self._current: Invocation | None = None
        self.answer: Answer | None = None
        self._closed = False
        self._servers: list[ConnectionServer] = []

    def serve(self, listener: socket.socket) -> None:
        self._servers.append(ConnectionServer(listener, self._handle_connection, "lambda-runtime-api"))

    @property
    def ready(self) -> bool:
        """The runtime is waiting for an invocation (it finished its init or its last invocation)."""
        with self._changed:
            return self.state == "Ready"

    def offer(self, invocation: Invocation) -> None:
        """Hand ``invocation`` to the runtime's pending (or next) ``/next``."""
        with self._changed:
            self.answer = None
            self._offered = invocation
            self._changed.notify_all()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        for server in self._servers:
            server.close()

    # -- the endpoints ------------------------------------------------------------------------------
    def _handle_connection(self, connection: socket.socket) -> None:
        _Handler(connection, ("127.0.0.1", 0), self)  # serves the connection's requests until it closes

    def route(self, request: _Handler) -> None:
        path = request.path
        if not path.startswith(PREFIX + "/"):
            return request.reply(404, {"errorMessage": "Not Found", "errorType": "NotFound"})
        path = path[len(PREFIX) :]
        if request.command == "GET" and path == "/invocation/next":
            return self._next(request)
        if request.command == "POST" and path == "/init/error":
            return self._report(request, None, init_error=True)
        parts = path.split("/")
        if (
            request.command == "POST"
            and len(parts) == 4
            and parts[1] == "invocation"
            and parts[3] in ("response", "error")
        ):
            return self._report(request, parts[2], init_error=False, error=parts[3] == "error")
        return request.reply(404, {"errorMessage": "Not Found", "errorType": "NotFound"})

    def _next(self, request: _Handler) -> None:
        with self._changed:
            if self.state not in ("Started", "ResponseSent"):
                return request.reply(*_transition_refused(self.state, "Ready"))
            self.state = "Ready"
            self._on_change()
            while self._offered is None and not self._closed:
                self._changed.wait()
            if self._closed:
                return request.reply(
                    500, {"errorMessage": "Internal Server Error", "errorType": "InternalServerError"}
                )
            invocation, self._offered = self._offered, None
            self._current = invocation
            self.state = "Running"
        request.reply_raw(200, invocation.headers(), invocation.payload)

    def _report(
        self, request: _Handler, request_id: str | None, *, init_error: bool, error: bool = True
    ) -> None:
        body, size = request.read_body(MAX_RESPONSE_PAYLOAD_BYTES)
        with self._changed:
            if not init_error and (self._current is None or request_id != self._current.request_id):
                return request.reply(
                    400, {"errorMessage": "Invalid request ID", "errorType": "InvalidRequestID"}
                )
            expected = "Started" if init_error else "Running"
            if self.state != expected:
                target = (
                    "InitError"
                    if init_error
                    else ("InvocationErrorResponse" if error else "InvocationResponse")
                )
                return request.reply(*_transition_refused(self.state, target))
            too_large = size > MAX_RESPONSE_PAYLOAD_BYTES
            if too_large:
                answer = Answer(
                    platform_error(
                        "Function.ResponseSizeTooLarge",
                        "Response payload size exceeded maximum allowed payload size "
                        f"({MAX_RESPONSE_PAYLOAD_BYTES} bytes).",
                    ),
                    "Function.ResponseSizeTooLarge",
                )
            elif error:
                answer = Answer(body, _error_type(request.headers.get(ERROR_TYPE_HEADER), body))
            else:
                answer = Answer(body)
            self.answer = answer
            self.state = "InitError" if init_error else "ResponseSent"
            self._current = None
            self._on_change()
        if too_large:
            return request.reply(
                413,
                {
                    "errorMessage": f"Exceeded maximum allowed payload size ({MAX_RESPONSE_PAYLOAD_BYTES} bytes).",
                    "errorType": "RequestEntityTooLarge",
                },
            )
        request.reply(202, {"status": "OK"})


def _transition_refused(state: str, target: str) -> tuple[int, dict]:
    return 403, {
        "errorMessage": f"State transition from {state} to {target} failed for runtime. "
        "Error: State transition is not allowed",
        "errorType": "InvalidStateTransition",
    }


def _error_type(header: str | None, body: bytes) -> str:
    """The error's type: the runtime's ``errorType`` in the body, else its header, else Unhandled."""
    try:
        reported = json.loads(body).get("errorType")
    except (ValueError, AttributeError):
        reported = None
    return reported or header or "Unhandled"


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive over one accepted connection; the RuntimeApi (its "server") answers each request."""

    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        disable_nagle(self.connection)

    def _route(self) -> None:
        self.server.route(self)

    do_GET = do_POST = do_PUT = do_DELETE = _route

    def read_body(self, limit: int) -> tuple[bytes, int]:
        """(up to ``limit`` + 1 bytes of the body, its full size); the rest is read and dropped."""
        kept, size = bytearray(), 0
        for chunk in self._body_chunks():
            size += len(chunk)
            if len(kept) <= limit:
                kept += chunk[: limit + 1 - len(kept)]
        return bytes(kept), size

    def _body_chunks(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return
                yield self.rfile.read(size)
                self.rfile.readline()
        remaining = int(self.headers.get("Content-Length") or 0)
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk

    def reply(self, status: int, document: dict) -> None:
        self.reply_raw(status, [("Content-Type", "application/json")], json.dumps(document).encode())

    def reply_raw(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        lines = [f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}"]
        lines += [f"{name}: {value}" for name, value in headers]
        lines += [f"Content-Length: {len(body)}", "", ""]
        self.wfile.write("\r\n".join(lines).encode("latin-1") + body)  # one write: no delayed-ACK wait

    def log_message(self, format, *args):  # the runtime's requests are not the emulator's log
        pass


class ConnectionServer:
    """Accepts connections on a listening socket and hands each to ``handle`` on its own thread."""

    def __init__(self, listener: socket.socket, handle: Callable[[socket.socket], None], name: str):
        self._listener = listener
        self._handle = handle
        self._name = name
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._closed = False
        threading.Thread(target=self._accept, name=name, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:  # closed
                return
            with self._lock:
                if self._closed:
                    connection.close()
                    return
                self._connections.add(connection)
            threading.Thread(target=self._serve, args=(connection,), name=self._name, daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        try:
            self._handle(connection)
        except OSError:
            pass
        finally:
            with self._lock:
                self._connections.discard(connection)
            connection.close()

    def close(self) -> None:
        """Stop accepting and end every open connection (their threads then finish)."""
        with self._lock:
            self._closed = True
            connections = list(self._connections)
        for sock in [self._listener, *connections]:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._listener.close()


def relay(upstream_address: tuple[str, int]) -> Callable[[socket.socket], None]:
    """A connection handler that joins each connection to a new one to ``upstream_address``."""

    def handle(connection: socket.socket) -> None:
        with socket.create_connection(upstream_address) as upstream:
            disable_nagle(upstream)
            disable_nagle(connection)
            other = threading.Thread(target=_pump, args=(upstream, connection), daemon=True)
            other.start()
            _pump(connection, upstream)
            other.join()

    return handle


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy until ``source`` ends, then end ``sink``'s sending side (half-close, as TCP allows)."""
    try:
        while chunk := source.recv(1 << 16):
            sink.sendall(chunk)
    except OSError:
        pass
    try:
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass
