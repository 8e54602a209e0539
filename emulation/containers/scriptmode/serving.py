"""The serving container of a framework model: ``python -m emulation.containers.scriptmode.serving``.

Runs in the model's environment (its ``code/requirements.txt`` installed). The inference toolkit's
``Transformer`` loads the model with the user's ``model_fn`` (or the framework's default) and
answers each request through input_fn / predict_fn / output_fn; the toolkit's model server (MMS,
a Java program) is replaced by the emulator's small HTTP server. A failing handler answers as the
toolkit makes it answer: its status (500 for an ordinary exception) and the error with its
traceback, which InvokeEndpoint turns into a 424 ModelError.

Settings come from the environment: SAGELOCAL_FRAMEWORK, SAGELOCAL_MODEL_DIR, SAGELOCAL_CODE_DIR
(the user's module, from SAGEMAKER_PROGRAM) and SAGELOCAL_PORT_FD (where the listening port is
written once the model is loaded).
"""

from __future__ import annotations

import os
import sys
import traceback
from dataclasses import dataclass

PORT_FD_ENV = "SAGELOCAL_PORT_FD"


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str


class _RequestProcessor:
    def __init__(self, headers: dict[str, str]):
        self._headers = headers

    def get_request_properties(self) -> dict[str, str]:
        return self._headers


class Context:
    """The parts of the model server's request context the toolkit's Transformer uses."""

    def __init__(self, model_dir: str, headers: dict[str, str] | None = None):
        self.system_properties = {"model_dir": model_dir, "gpu_id": None}
        self.request_processor = [_RequestProcessor(headers or {})]
        self.status = 200
        self.content_type: str | None = None

    def set_response_status(self, code: int, phrase: str = "") -> None:
        self.status = code

    def set_response_content_type(self, index: int, content_type: str) -> None:
        self.content_type = content_type


def _as_bytes(value) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    return str(value).encode("utf-8")


def main() -> None:
    from sagemaker_inference.transformer import Transformer

    from emulation.containers.scriptmode.handlers import HANDLERS
    from emulation.containers.serving import serve_http

    model_dir = os.environ["SAGELOCAL_MODEL_DIR"]
    code_dir = os.environ.get("SAGELOCAL_CODE_DIR")
    if code_dir:
        sys.path.insert(0, code_dir)
    port_fd = int(os.environ[PORT_FD_ENV])
    transformer = Transformer(default_inference_handler=HANDLERS[os.environ["SAGELOCAL_FRAMEWORK"]]())
    try:
        transformer.validate_and_initialize(model_dir=model_dir, context=Context(model_dir))
    except Exception:  # the model server's worker dies, /ping never answers, the endpoint fails
        traceback.print_exc()
        sys.exit(1)

    def invoke(body: bytes, content_type: str | None, accept: str | None) -> Reply:
        headers = {k: v for k, v in (("Content-Type", content_type), ("Accept", accept)) if v}
        context = Context(model_dir, headers)
        result = transformer.transform([{"body": body}], context)
        if context.status >= 400:
            print(result[0], file=sys.stderr, flush=True)
        return Reply(context.status, _as_bytes(result[0]), context.content_type or "text/plain")

    def on_listening(port: int) -> None:
        os.write(port_fd, f"{port}\n".encode())
        os.close(port_fd)

    serve_http(invoke, None, on_listening)


if __name__ == "__main__":
    main()
