"""The emulator's HTTP/1.1 connection handling: werkzeug's request parsing, with keep-alive.

werkzeug's development server answers every request with ``Connection: close`` and then drains
the socket for 10 ms, because ``http.server`` cannot tell where an unread request body ends. So
every boto3 call paid a new TCP connection, a new server thread and urllib3's reconnect. Here a
connection stays open when it safely can: the request came with a Content-Length (or no body)
and its body had been read to the end by the time the answer starts, and the answer's own length
is known (Content-Length, or chunked encoding). At the edge that is every admitted request: the
gate reads each body in full before any service sees it. Anything else (a refused request whose
body was left unread, a chunked upload, a client asking to close) closes the connection after the
answer, as before, without the drain: a refusal stops reading the connection itself
(``gate.stop_reading``).
"""

from __future__ import annotations

import logging
import socket
import threading

from werkzeug.exceptions import InternalServerError
from werkzeug.serving import WSGIRequestHandler

from emulation.apigateway import RAW_HEADERS_ENVIRON_KEY
from emulation.nodelay import disable_nagle

_logger = logging.getLogger("sagelocal.emulator")
_open_lock = threading.Lock()


def close_open_connections(server) -> None:
    """A stopped server's kept-alive connections would still be served by their threads."""
    with _open_lock:
        connections = list(getattr(server, "open_connections", ()))
    for connection in connections:
        try:
            connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _CountingInput:
    """The request body stream, counting what the application has read of it."""

    def __init__(self, stream):
        self._stream = stream
        self.consumed = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.consumed += len(data)
        return data

    def readline(self, size: int = -1) -> bytes:
        data = self._stream.readline(size)
        self.consumed += len(data)
        return data

    def readinto(self, buffer) -> int:
        count = self._stream.readinto(buffer)
        self.consumed += count or 0
        return count

    def readable(self) -> bool:
        return True


class RequestHandler(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        disable_nagle(self.connection)
        with _open_lock:
            self.server.__dict__.setdefault("open_connections", set()).add(self.connection)

    def finish(self):
        with _open_lock:
            self.server.open_connections.discard(self.connection)
        super().finish()

    def make_environ(self):
        environ = super().make_environ()
        environ[RAW_HEADERS_ENVIRON_KEY] = self.headers.items()  # as the client wrote them
        return environ

    def log_request(self, code="-", size="-"):
        _logger.debug('"%s" %s %s', self.requestline, code, size)

    def run_wsgi(self) -> None:
        if self.headers.get("Expect", "").lower().strip() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        environ = self.make_environ()
        body = None
        if not environ.get("wsgi.input_terminated"):  # chunked uploads always close
            body = environ["wsgi.input"] = _CountingInput(environ["wsgi.input"])
        declared = int(environ.get("CONTENT_LENGTH") or 0)
        state: dict = {"sent": False, "chunked": False}

        def start_response(status, headers, exc_info=None):
            if exc_info is not None and state["sent"]:
                raise exc_info[1].with_traceback(exc_info[2])
            state["status"], state["headers"] = status, headers
            return write

        def send_head() -> None:
            code_text, _, reason = state["status"].partition(" ")
            code = int(code_text)
            names = {name.lower() for name, _ in state["headers"]}
            bodiless = environ["REQUEST_METHOD"] == "HEAD" or code < 200 or code in (204, 304)
            state["chunked"] = "content-length" not in names and not bodiless
            keep_alive = (
                not self.close_connection
                and body is not None
                and body.consumed >= declared
                and "connection" not in names  # the answer asks to close (a refusal)
            )
            self.send_response(code, reason)
            for name, value in state["headers"]:
                self.send_header(name, value)
            if state["chunked"]:
                self.send_header("Transfer-Encoding", "chunked")
            if not keep_alive and "connection" not in names:
                self.send_header("Connection", "close")  # also sets close_connection
            self.close_connection = self.close_connection or not keep_alive
            self.end_headers()
            state["sent"] = True

        def write(data: bytes) -> None:
            if not state["sent"]:
                send_head()
            if data:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if state["chunked"] else data)

        def execute(app) -> None:
            iterable = app(environ, start_response)
            try:
                for data in iterable:
                    write(data)
                if not state["sent"]:
                    write(b"")
                if state["chunked"]:
                    self.wfile.write(b"0\r\n\r\n")
            finally:
                if hasattr(iterable, "close"):
                    iterable.close()

        try:
            execute(self.server.app)
        except (ConnectionError, TimeoutError) as error:
            self.connection_dropped(error, environ)
            self.close_connection = True
        except Exception:
            _logger.exception(
                "%s %s failed in the server", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO")
            )
            self.close_connection = True
            if not state["sent"]:
                state["status"] = state["headers"] = None
                try:
                    execute(InternalServerError())
                except Exception:
                    pass
