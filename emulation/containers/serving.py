"""The serving side of the container contract: GET /ping, POST /invocations, GET /execution-parameters.

One small HTTP/1.1 server per endpoint instance or transform job, in the container's own process,
for the built-in algorithm and for script mode alike. Each response goes out in a single write
(and with TCP_NODELAY) because InvokeEndpoint latency is the number users watch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

from emulation.nodelay import disable_nagle

DEFAULT_MAX_PAYLOAD_BYTES = 6 * 1024 * 1024


class Reply(Protocol):
    status: int
    body: bytes
    content_type: str


def serve(model_dir: Path, version: str, on_listening: Callable[[int], None]) -> None:
    """The built-in XGBoost algorithm's server."""
    from emulation.containers.xgboost import inference  # not for script mode: xgboost is slow to import

    try:
        model = inference.load_model(model_dir)
        load_error = None
    except inference.ModelLoadError as error:
        model, load_error = None, str(error)

    def invoke(body: bytes, content_type: str | None, accept: str | None) -> Reply:
        if load_error is not None:
            return inference.InvocationResult(
                500, f"Unable to load model: {load_error}".encode(), "text/plain"
            )
        return inference.invoke(model, body, content_type, accept, version)

    serve_http(invoke, inference.execution_parameters(), on_listening)


def serve_http(
    invoke: Callable[[bytes, str | None, str | None], Reply],
    execution_parameters: dict[str, Any] | None,
    on_listening: Callable[[int], None],
) -> None:
    """Answer the contract's routes on a free port of 127.0.0.1 until the process ends;
    ``execution_parameters`` None means the container does not offer that route (404)."""
    max_payload = int(float(os.environ.get("SAGEMAKER_MAX_PAYLOAD_IN_MB", "6")) * 1024 * 1024)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            super().setup()
            disable_nagle(self.connection)

        def log_message(self, format, *args):  # access logs would drown the model's own log lines
            pass

        def _send(self, status: int, body: bytes = b"", content_type: str = "text/plain") -> None:
            head = (
                f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode("latin-1")
            self.wfile.write(head + body)

        def do_GET(self):
            if self.path == "/ping":
                self._send(200, b"")
            elif self.path == "/execution-parameters" and execution_parameters is not None:
                self._send(200, json.dumps(execution_parameters).encode(), "application/json")
            else:
                self._send(404, b"Not Found")

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length > max(max_payload, DEFAULT_MAX_PAYLOAD_BYTES):
                self.rfile.read(length)
                self._send(413, b"Request Entity Too Large")
                return
            body = self.rfile.read(length)
            if self.path != "/invocations":
                self._send(404, b"Not Found")
                return
            result = invoke(body, self.headers.get("Content-Type"), self.headers.get("Accept"))
            self._send(result.status, result.body, result.content_type)

    # A child process listens on a free loopback port; a Docker image (sagelocal build-image) sets
    # SAGELOCAL_SERVE_ADDRESS to the contract's 0.0.0.0:8080.
    host, _, port = os.environ.get("SAGELOCAL_SERVE_ADDRESS", "127.0.0.1:0").rpartition(":")
    server = ThreadingHTTPServer((host, int(port)), Handler)
    server.daemon_threads = True
    on_listening(server.server_address[1])
    server.serve_forever()
