"""The one port: route each request to a service the way AWS's front door does, through the gate.

:meth:`Edge.destination` decides from the request alone which service serves it (the public
execute-api paths and health route; our SageMaker, SageMaker Runtime and Lambda Invoke; everything
else to moto) and what that service demands; :class:`~emulation.gate.Gate` then admits or refuses
it. Every SageMaker request (any X-Amz-Target casing, any runtime path, any ``sagemaker``-scoped
request) reaches our own service; nothing reaches moto's SageMaker or its canned runtime.
"""

from __future__ import annotations

import functools
import json
import logging
import platform
import re
from importlib import metadata

from werkzeug.wrappers import Request, Response

from emulation import sandbox, sigv4
from emulation.apigateway import is_execute_api_request
from emulation.apigateway.execute_api import MAX_REQUEST_BYTES as EXECUTE_API_MAX_BYTES
from emulation.apigateway.execute_api import payload_too_large as execute_api_too_large
from emulation.awslambda.invoke import MAX_SYNC_PAYLOAD_BYTES
from emulation.awslambda.invoke import payload_too_large as lambda_invoke_too_large
from emulation.config import EmulatorConfig
from emulation.containers.images import FRAMEWORK_PACKAGES
from emulation.credentials import CredentialRegistry
from emulation.gate import Destination, Gate, Handler, Headers, query_args, stop_reading
from emulation.protocol import AwsError, error_response, service_model
from emulation.refusals import JSON_RPC, QUERY, REST_JSON, S3
from emulation.sagemaker.runtime import MAX_PAYLOAD_BYTES as RUNTIME_MAX_BYTES
from emulation.sagemaker.runtime import payload_too_large as runtime_too_large

_RUNTIME_PATH = re.compile(r"^/endpoints/[^/]+/invocations$")
_LAMBDA_INVOKE_PATH = re.compile(r"^/2015-03-31/functions/[^/]+/invocations$")
_LAMBDA_CODE_PATH = re.compile(r"^/2015-03-31/functions(/[^/]+/code)?/?$")

#: Request size limits AWS documents, in bytes.
S3_MAX_PUT_BYTES = 5 * 1024**3  # a single PUT (object or part)
LAMBDA_MAX_CODE_REQUEST_BYTES = 70167211  # CreateFunction / UpdateFunctionCode with a zip inline
#: For the other APIs (IAM, STS, Logs, SageMaker's control plane...) AWS documents no figure; their
#: requests are small, so the emulator caps them at this.
DEFAULT_MAX_BYTES = 10 * 1024 * 1024

_logger = logging.getLogger("sagelocal.edge")


def _rest_json_path_prefixes() -> frozenset[str]:
    """First path segments of the REST-JSON control planes moto serves (Lambda, API Gateway): an
    unsigned request names no service, yet its refusal must be worded as the service it was for."""
    return frozenset(
        model.operation_model(name).http["requestUri"].split("/")[1].split("?")[0]
        for model in (service_model("lambda"), service_model("apigateway"))
        for name in model.operation_names
    )


_REST_JSON_PREFIXES = _rest_json_path_prefixes()


class Edge:
    def __init__(
        self,
        config: EmulatorConfig,
        credentials: CredentialRegistry,
        *,
        moto_app,
        sagemaker: Handler,
        sagemaker_runtime: Handler,
        lambda_invoke: Handler,
        execute_api: Handler,
    ):
        self.config = config
        self.moto_app = moto_app
        self.gate = Gate(config, credentials)
        #: Off, requests are served unauthenticated; only bench/gate.py turns it off, to measure the gate.
        self.gate_enabled = True
        self._health = Destination(self._health_check, REST_JSON, 0, public=True)
        self._execute_api = Destination(
            execute_api, REST_JSON, EXECUTE_API_MAX_BYTES, public=True, too_large=execute_api_too_large
        )
        self._sagemaker = Destination(sagemaker, JSON_RPC, DEFAULT_MAX_BYTES, "sagemaker", pinned_region=True)
        self._runtime = Destination(
            sagemaker_runtime,
            REST_JSON,
            RUNTIME_MAX_BYTES,
            "sagemaker",
            skew_minutes=5,
            pinned_region=True,
            too_large=runtime_too_large,
        )
        self._lambda_invoke = Destination(
            lambda_invoke,
            REST_JSON,
            MAX_SYNC_PAYLOAD_BYTES,
            "lambda",
            skew_minutes=5,
            too_large=lambda_invoke_too_large,
        )
        self._unknown_sagemaker = Destination(
            self._unknown_operation, JSON_RPC, 0, "sagemaker", pinned_region=True
        )

    # -- WSGI ---------------------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        try:
            destination = self.destination(environ)
            refusal = self.gate.admit(environ, destination) if self.gate_enabled else None
            if refusal is not None:
                stop_reading(environ)
                response = refusal
            elif destination.handler is None:
                return self.moto_app(environ, start_response)
            else:
                response = destination.handler(Request(environ))
        except Exception:  # a bug of ours is this request's 500, never a dead emulator
            _logger.exception(
                "%s %s %s failed",
                environ.get("REQUEST_METHOD"),
                environ.get("PATH_INFO"),
                environ.get("HTTP_X_AMZ_TARGET", ""),
            )
            response = error_response(
                AwsError(
                    "InternalFailure",
                    "The request processing has failed because of an unknown error, exception or failure.",
                    status=500,
                )
            )
        return response(environ, start_response)

    # -- routing ------------------------------------------------------------------------------------
    def destination(self, environ) -> Destination:
        """Which service serves this request, decided from the request alone (before any check)."""
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/_sagelocal/health":
            return self._health
        if is_execute_api_request(path, environ.get("HTTP_HOST")):
            return self._execute_api
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.lower().startswith("sagemaker."):
            return self._sagemaker
        if _RUNTIME_PATH.match(path) and method == "POST":
            return self._runtime
        if _LAMBDA_INVOKE_PATH.match(path) and method == "POST":
            return self._lambda_invoke
        scope = sigv4.scope_of(Headers(environ), query_args(environ))
        service = scope[0] if scope else None
        host = (environ.get("HTTP_HOST") or "").lower()
        if service == "sagemaker" or host.startswith(("api.sagemaker.", "runtime.sagemaker.")):
            return self._unknown_sagemaker  # moto's SageMaker and its canned runtime are never reached
        if target:
            return Destination(None, JSON_RPC, DEFAULT_MAX_BYTES)
        content_type = environ.get("CONTENT_TYPE", "")
        if service in ("lambda", "apigateway") or (
            service is None and path.split("/")[1] in _REST_JSON_PREFIXES
        ):
            limit = LAMBDA_MAX_CODE_REQUEST_BYTES if _LAMBDA_CODE_PATH.match(path) else DEFAULT_MAX_BYTES
            return Destination(None, REST_JSON, limit)
        if service in (None, "s3") and not content_type.startswith("application/x-www-form-urlencoded"):
            return Destination(None, S3, S3_MAX_PUT_BYTES)
        if content_type.startswith("application/x-www-form-urlencoded") or "Action=" in environ.get(
            "QUERY_STRING", ""
        ):
            return Destination(None, QUERY, DEFAULT_MAX_BYTES)
        return Destination(None, REST_JSON, DEFAULT_MAX_BYTES)

    def _health_check(self, request: Request) -> Response:
        return Response(
            json.dumps(
                {
                    "status": "running",
                    "account": self.config.account_id,
                    "region": self.config.region,
                    **_capabilities(),
                }
            ),
            content_type="application/json",
        )

    @staticmethod
    def _unknown_operation(request: Request) -> Response:
        target = request.headers.get("X-Amz-Target") or f"{request.method} {request.path}"
        return error_response(
            AwsError("UnknownOperationException", f"Unknown operation {target}"),
            content_type="application/x-amz-json-1.1",
        )


@functools.cache
def _capabilities() -> dict:
    """What users' code gets here, which depends on this machine rather than on the request: script
    mode runs a framework's code on this Python's own packages, and only bubblewrap gives a job its
    /opt/ml. Health reports it so that a client (the tests against a running stack) can tell a
    missing capability from a broken one."""

    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    return {
        "python": platform.python_version(),
        "sandbox": sandbox.available(),
        "frameworks": {name: version(package) for name, package in FRAMEWORK_PACKAGES.items()},
    }
