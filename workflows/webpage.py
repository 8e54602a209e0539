"""Serve the browser page (``web/``) on its own port, with the public API URL in ``config.json``.

Its own port (another origin than the API) means the browser really makes a cross-origin call,
as it does when the page is hosted anywhere else; ``config.json`` means nobody edits the page
to point it at an API.
"""

from __future__ import annotations

import json
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

WEB_ROOT = Path(__file__).resolve().parents[1] / "web"


class _PageHandler(SimpleHTTPRequestHandler):
    def __init__(self, *args, api_url: str, **kwargs):
        self.api_url = api_url
        super().__init__(*args, directory=str(WEB_ROOT), **kwargs)

    def do_GET(self):
        if self.path.split("?", 1)[0] == "/config.json":
            body = json.dumps({"apiUrl": self.api_url}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, format, *args):
        pass


class PageServer:
    """``with PageServer(api_url, port=0) as page: page.url``; or ``serve_forever()``."""

    def __init__(self, api_url: str, host: str = "127.0.0.1", port: int = 8080):
        self._server = ThreadingHTTPServer((host, port), partial(_PageHandler, api_url=api_url))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        self.url = f"http://{shown}:{self._server.server_port}/"

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def __enter__(self) -> PageServer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="web-page", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
