"""The one port: route each request to a service the way AWS's front door does.

Order matters: the public execute-api paths first (no signature needed, API Gateway is the public
door), then our own services identified by ``X-Amz-Target`` or by the SigV4 credential scope plus
path, then everything else to moto. Services that AWS keeps closed to unsigned callers (SageMaker,
SageMaker Runtime, Lambda) are verified here, in one place.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from werkzeug.wrappers import Request, Response

from emulation import sigv4
from emulation.apigateway import is_execute_api_request
from emulation.config import EmulatorConfig
from emulation.protocol import AwsError, error_response

Handler = Callable[[Request], Response]

_RUNTIME_PATH = re.compile(r"^/endpoints/[^/]+/invocations$")
_LAMBDA_INVOKE_PATH = re.compile(r"^/2015-03-31/functions/[^/]+/invocations$")
_logger = logging.getLogger("sagelocal.edge")


@dataclass(frozen=True)
class SignedService:
    """A service that only answers signed requests, and how it words a refusal."""

    name: str  # the SigV4 signing name
    handler: Handler
    json_1_1: bool  # awsJson1_1 services answer 400 with __type; rest-json ones 403 + x-amzn-ErrorType
    skew_minutes: int


class Edge:
    def __init__(
        self,
        config: EmulatorConfig,
        credentials: dict[str, str],
        *,
        moto_app,
        sagemaker: Handler,
        sagemaker_runtime: Handler,
        lambda_invoke: Handler | None = None,
        execute_api: Handler | None = None,
    ):
        self.config = config
        self.credentials = credentials  # access key id -> secret; shared with whoever issues keys
        self.moto_app = moto_app
        self.execute_api = execute_api
        self.sagemaker = SignedService("sagemaker", sagemaker, json_1_1=True, skew_minutes=15)
        self.runtime = SignedService("sagemaker", sagemaker_runtime, json_1_1=False, skew_minutes=5)
        self.lambda_invoke = (
            SignedService("lambda", lambda_invoke, json_1_1=False, skew_minutes=5) if lambda_invoke else None
        )

    def __call__(self, environ, start_response):
        request = Request(environ)
        try:
            response = self.route(request)
        except Exception as error:  # a bug of ours is this request's 500, never a dead emulator
            _logger.exception(
                "%s %s %s failed", request.method, request.path, request.headers.get("X-Amz-Target", "")
            )
            response = error_response(
                AwsError("InternalFailure", f"{type(error).__name__}: {error}", status=500)
            )
        if response is None:
            return self.moto_app(environ, start_response)
        return response(environ, start_response)

    def route(self, request: Request) -> Response | None:
        path = request.path
        if path == "/_sagelocal/health":
            return Response(
                json.dumps(
                    {"status": "running", "account": self.config.account_id, "region": self.config.region}
                ),
                content_type="application/json",
            )
        if self.execute_api and is_execute_api_request(path, request.host):
            return self.execute_api(request)
        if request.headers.get("X-Amz-Target", "").startswith("SageMaker."):
            return self._signed(self.sagemaker, request)
        scope = sigv4.credential_scope(request.headers.get("Authorization"))
        signing_name = scope[0] if scope else None
        if _RUNTIME_PATH.match(path) and request.method == "POST" and signing_name in (None, "sagemaker"):
            return self._signed(self.runtime, request)
        if self.lambda_invoke and _LAMBDA_INVOKE_PATH.match(path) and signing_name in (None, "lambda"):
            return self._signed(self.lambda_invoke, request)
        return None

    def _signed(self, service: SignedService, request: Request) -> Response:
        raw_uri = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.full_path
        try:
            sigv4.verify(
                method=request.method,
                url=f"http://{request.host}{raw_uri}",
                headers=list(request.headers.items()),
                body=request.get_data(cache=True),
                secrets=self.credentials,
                expected_service=service.name,
                skew_minutes=service.skew_minutes,
            )
        except sigv4.SignatureError as refusal:
            return refuse(service, refusal)
        return service.handler(request)


def refuse(service: SignedService, refusal: sigv4.SignatureError) -> Response:
    error = AwsError(refusal.code, refusal.message)
    if service.json_1_1:
        return error_response(error, status=400, content_type="application/x-amz-json-1.1")
    return error_response(error, status=403, content_type="application/json")
