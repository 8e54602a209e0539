"""API Gateway's execute-api data plane for REST (v1) APIs: the public door to a stage.

moto keeps the control plane (CreateRestApi, PutMethod, PutIntegration, CreateDeployment...); this
service reads the APIs and stages from moto's backend in-process and serves
``/_aws/execute-api/<api-id>/<stage>/<path>`` and ``/restapis/<api-id>/<stage>/_user_request_/<path>``.
It runs Lambda proxy integrations (AWS_PROXY) through the in-process Lambda service and MOCK
integrations (the CORS preflight) for real; answers and errors follow
shared/spec/lambda-apigateway-sigv4.md, sections 1 to 3.

What it leaves out: VTL mapping templates beyond static ones, non-proxy AWS and HTTP integrations
(answered as a configuration error, 500), authorizers, IAM authorization and API keys (methods are
served as if their authorization were NONE).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import threading
import time
import uuid
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from moto.backends import get_backend
from werkzeug.wrappers import Request, Response

from emulation import authorization
from emulation.apigateway import proxy
from emulation.apigateway.routing import Deployment, Integration, Route
from emulation.awslambda import LambdaService
from emulation.awslambda.invoke import new_trace_id
from emulation.config import EmulatorConfig
from emulation.protocol import AwsError

#: The WSGI environ key under which the server hands over the request headers as the client wrote
#: them (WSGI itself keeps neither their casing nor their order); the proxy event passes them on.
RAW_HEADERS_ENVIRON_KEY = "sagelocal.raw_headers"
MAX_REQUEST_BYTES = 10 * 1024 * 1024


def execute_api_url(emulator_url: str, api_id: str, stage: str) -> str:
    """Where a stage answers on the emulator: path style (``*.localhost`` names do not resolve everywhere)."""
    return f"{emulator_url}/_aws/execute-api/{api_id}/{stage}"


#: LocalStack's host style, ``<api-id>.execute-api.localhost.localstack.cloud:4566/<stage>/<path>``,
#: for clients that already use it (these names resolve only where DNS or /etc/hosts says so).
_HOST_STYLE = re.compile(r"^(?P<api>[a-z0-9]+)\.execute-api\.localhost(?:\.localstack\.cloud)?(?::\d+)?$")


def is_execute_api_request(path: str, host: str | None) -> bool:
    """Whether a request is for a stage (any of the three URL forms) rather than for the control plane."""
    return (
        path.startswith("/_aws/execute-api/")
        or (path.startswith("/restapis/") and "/_user_request_" in path)
        or bool(host and _HOST_STYLE.match(host.lower()))
    )


_PATH_STYLE = re.compile(r"^/_aws/execute-api/(?P<api>[^/]+)/(?P<stage>[^/]+)(?P<path>/.*)?$")
_USER_REQUEST = re.compile(r"^/restapis/(?P<api>[^/]+)/(?P<stage>[^/]+)/_user_request_(?P<path>/.*)?$")
# arn:aws:apigateway:<region>:lambda:path/2015-03-31/functions/<function arn>/invocations
_LAMBDA_URI = re.compile(
    r"^arn:[^:]+:apigateway:[^:]+:lambda:path/[^/]+/functions/(?P<function>.+)/invocations$"
)
_logger = logging.getLogger("sagelocal.apigateway")


@dataclass(frozen=True)
class GatewayError:
    """A response API Gateway makes itself; ``response_type`` names it for PutGatewayResponse."""

    response_type: str
    status: int
    error_type: str
    message: str
    body: str  # the default body, byte for byte

    @property
    def default_type(self) -> str:
        return "DEFAULT_4XX" if self.status < 500 else "DEFAULT_5XX"


MISSING_AUTHENTICATION_TOKEN = GatewayError(
    "MISSING_AUTHENTICATION_TOKEN",
    403,
    "MissingAuthenticationTokenException",
    "Missing Authentication Token",
    '{"message":"Missing Authentication Token"}',
)
REQUEST_TOO_LARGE = GatewayError(
    "REQUEST_TOO_LARGE", 413, "BadRequestException", "Request Too Long", '{"message": "Request Too Long"}'
)
INTEGRATION_FAILURE = GatewayError(
    "INTEGRATION_FAILURE",
    502,
    "InternalServerErrorException",
    "Internal server error",
    '{"message": "Internal server error"}',
)
INTEGRATION_TIMEOUT = GatewayError(
    "INTEGRATION_TIMEOUT",
    504,
    "InternalServerErrorException",
    "Endpoint request timed out",
    '{"message": "Endpoint request timed out"}',
)
API_CONFIGURATION_ERROR = GatewayError(
    "API_CONFIGURATION_ERROR",
    500,
    "InternalServerErrorException",
    "Internal server error",
    '{"message": "Internal server error"}',
)


def payload_too_large() -> Response:
    """API Gateway's 413 for a request over 10 MB (the edge reads at most that, chunked or not)."""
    return Response(
        f"HTTP content length exceeded {MAX_REQUEST_BYTES} bytes.",
        status=413,
        content_type="text; charset=utf-8",
    )


class ExecuteApi:
    """Serves the stages of the REST APIs in moto's apigateway backend."""

    def __init__(self, config: EmulatorConfig, awslambda: LambdaService):
        self.config = config
        self.awslambda = awslambda
        self._deployments: dict[tuple[str, str], Deployment] = {}
        self._lock = threading.Lock()

    def handle(self, request: Request) -> Response:
        raw_path, _, query = _raw_uri(request).partition("?")
        host_style = _HOST_STYLE.match((request.host or "").lower())
        if host_style:
            raw_path = f"/_aws/execute-api/{host_style['api']}{raw_path}"
        target = _PATH_STYLE.match(raw_path) or _USER_REQUEST.match(raw_path)
        incoming = self._incoming(request, (target["path"] or "/") if target else "/", query)
        rest_api = self._rest_api(target["api"]) if target else None
        stage = rest_api.stages.get(target["stage"]) if rest_api is not None else None
        if stage is None:
            return self._error(MISSING_AUTHENTICATION_TOKEN, None, incoming)
        deployment = self._deployment(rest_api, stage.deployment_id)
        route = deployment.route(incoming.http_method, incoming.path)
        integration = route.method.integration if route is not None else None
        if integration is None:
            return self._error(MISSING_AUTHENTICATION_TOKEN, rest_api, incoming)
        if integration.type == "AWS_PROXY" and _LAMBDA_URI.match(integration.uri or ""):
            api = proxy.ApiContext(
                account_id=self.config.account_id,
                api_id=rest_api.id,
                stage=stage.name,
                deployment_id=deployment.id,
                stage_variables=dict(stage.variables or {}),
                binary_media_types=tuple(rest_api.binaryMediaTypes or ()),
            )
            return self._lambda_proxy(incoming, route, integration, api, rest_api)
        if integration.type == "MOCK":
            return self._mock(incoming, integration, rest_api)
        _logger.warning(
            "%s %s: %s integrations (%s) are not run by sagelocal; answering 500",
            incoming.http_method,
            incoming.path,
            integration.type,
            integration.uri,
        )
        return self._error(API_CONFIGURATION_ERROR, rest_api, incoming)

    # -- state ------------------------------------------------------------------------------------
    def _rest_api(self, api_id: str) -> Any | None:
        """The API in the emulator's region, else in any region that has APIs (the URL names none)."""
        backends = get_backend("apigateway")[self.config.account_id]
        regions = [
            self.config.region,
            *(region for region in list(backends.keys()) if region != self.config.region),
        ]
        for region in regions:
            rest_api = backends[region].apis.get(api_id)
            if rest_api is not None:
                return rest_api
        return None

    def _deployment(self, rest_api: Any, deployment_id: str) -> Deployment:
        """The deployment's snapshot, taken the first time it serves a request (moto keeps none)."""
        key = (rest_api.id, deployment_id)
        with self._lock:
            deployment = self._deployments.get(key)
            if deployment is None:
                deployment = self._deployments[key] = Deployment.snapshot(rest_api, deployment_id)
        return deployment

    def _incoming(self, request: Request, path: str, query: str) -> proxy.IncomingRequest:
        headers = request.environ.get(RAW_HEADERS_ENVIRON_KEY) or list(request.headers.items())
        headers = _with_forwarding_headers(list(headers), request)
        return proxy.IncomingRequest(
            http_method=request.method,
            path=path,
            query_string=query,
            headers=headers,
            body=request.get_data(),
            source_ip=request.remote_addr or "",
            protocol=request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
            request_id=str(uuid.uuid4()),
            extended_request_id=base64.b64encode(os.urandom(11)).decode(),
            epoch_ms=int(time.time() * 1000),
        )

    # -- integrations ----------------------------------------------------------------------------
    def _lambda_proxy(
        self,
        incoming: proxy.IncomingRequest,
        route: Route,
        integration: Integration,
        api: proxy.ApiContext,
        rest_api,
    ) -> Response:
        """Invoke the function with the proxy event; give up after the integration timeout, as AWS does.

        The invocation runs on its own thread so that the gateway can answer 504 while the function
        goes on until its own timeout, as it does on AWS.
        """
        function_arn = _LAMBDA_URI.match(integration.uri)["function"]
        if authorization.enforcing() and not self._may_invoke(function_arn, route, api, incoming.http_method):
            _logger.warning(
                "Execution failed due to configuration error: Invalid permissions on Lambda function %s "
                "(its resource policy does not let apigateway.amazonaws.com invoke it from this API; see "
                "lambda add-permission)",
                function_arn,
            )
            return self._error(API_CONFIGURATION_ERROR, rest_api, incoming)
        event = json.dumps(proxy.build_event(incoming, route, api)).encode()
        trace_id = incoming.header("X-Amzn-Trace-Id")
        answer: Future = Future()

        def invoke() -> None:
            try:
                answer.set_result(self.awslambda.invoke(function_arn, event, trace_id=trace_id))
            except BaseException as error:  # handed to the waiting request thread
                answer.set_exception(error)

        threading.Thread(target=invoke, name="apigateway-integration", daemon=True).start()
        try:
            result = answer.result(timeout=integration.timeout_ms / 1000)
        except FutureTimeout:
            return self._error(INTEGRATION_TIMEOUT, rest_api, incoming)
        except AwsError as error:
            _logger.warning("Lambda invoke of %s failed: %s %s", function_arn, error.code, error.message)
            too_large = error.code == "RequestEntityTooLargeException"
            return self._error(REQUEST_TOO_LARGE if too_large else INTEGRATION_FAILURE, rest_api, incoming)
        if result.function_error:
            return self._error(INTEGRATION_FAILURE, rest_api, incoming)
        try:
            status, headers, body = proxy.map_response(
                result.payload,
                binary_accepted=proxy.is_binary(incoming.header("Accept"), api.binary_media_types),
            )
        except proxy.MalformedResponse as problem:
            _logger.warning("Malformed Lambda proxy response from %s: %s", function_arn, problem)
            return self._error(INTEGRATION_FAILURE, rest_api, incoming)
        headers += [*_ids(incoming), ("X-Amzn-Trace-Id", trace_id)]
        return Response(body, status=status, headers=headers)

    def _may_invoke(self, function_arn: str, route: Route, api: proxy.ApiContext, method: str) -> bool:
        """Whether the function's resource policy lets this API's method invoke it, as AWS checks."""
        region = function_arn.split(":")[3] if function_arn.startswith("arn:") else self.config.region
        try:
            policy = json.loads(self.awslambda.moto.backend("lambda", region).get_policy(function_arn))[
                "Policy"
            ]
        except Exception:  # no such function, or no policy at all: nothing allows the gateway
            return False
        source = f"arn:aws:execute-api:{self.config.region}:{api.account_id}:{api.api_id}/{api.stage}/{method}{route.resource.path}"
        action = authorization.Action("lambda:InvokeFunction", function_arn)
        return authorization.resource_policy_allows(policy, "apigateway.amazonaws.com", action, source)

    def _mock(self, incoming: proxy.IncomingRequest, integration: Integration, rest_api) -> Response:
        """A MOCK integration: the request template's statusCode picks the integration response.

        Templates are used as static text (VTL is not evaluated), which covers the console's CORS
        preflight: request template ``{"statusCode": 200}``, static ``'...'`` header values.
        """
        template = _template(integration.request_templates, incoming.header("Content-Type"))
        try:
            status_code = 200 if template is None else int(json.loads(template)["statusCode"])
        except (ValueError, KeyError, TypeError):
            _logger.warning("MOCK request template is not static JSON with a statusCode: %r", template)
            return self._error(API_CONFIGURATION_ERROR, rest_api, incoming)
        selected = next(
            (
                r
                for r in integration.responses
                if r.selection_pattern and _selects(r.selection_pattern, status_code)
            ),
            next((r for r in integration.responses if not r.selection_pattern), None),
        )
        if selected is None:
            _logger.warning("MOCK integration has no integration response for status %s", status_code)
            return self._error(API_CONFIGURATION_ERROR, rest_api, incoming)
        headers = _static_headers(selected.response_parameters, "method.response.header.")
        headers += [("Content-Type", "application/json"), *_ids(incoming)]
        body = _template(selected.response_templates, incoming.header("Accept")) or ""
        return Response(body, status=int(selected.status_code), headers=headers)

    # -- gateway responses -------------------------------------------------------------------------
    def _error(self, error: GatewayError, rest_api, incoming: proxy.IncomingRequest) -> Response:
        """A gateway response, with what the API configured for it (PutGatewayResponse) applied.

        As on AWS, these carry no CORS headers unless the API's gateway responses add them.
        """
        configured = None
        if rest_api is not None:
            responses = rest_api.gateway_responses
            configured = responses.get(error.response_type) or responses.get(error.default_type)
        status, body = error.status, error.body
        headers = [
            ("Content-Type", "application/json"),
            ("x-amzn-ErrorType", error.error_type),
            *_ids(incoming),
        ]
        if configured is not None:
            status = int(configured.status_code or status)
            headers += _static_headers(configured.response_parameters or {}, "gatewayresponse.header.")
            template = _template(configured.response_templates or {}, "application/json")
            if template is not None:
                body = template.replace("$context.error.messageString", json.dumps(error.message)).replace(
                    "$context.error.message", error.message
                )
        return Response(body, status=status, headers=headers)


def _raw_uri(request: Request) -> str:
    """The request target as sent (paths in events are not URL-decoded)."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if raw:
        return raw
    query = request.query_string.decode()
    return quote(request.path) + (f"?{query}" if query else "")


def _with_forwarding_headers(headers: list[tuple[str, str]], request: Request) -> list[tuple[str, str]]:
    """Add what API Gateway's front door adds: the trace id and the X-Forwarded-* headers."""
    names = {name.lower() for name, _ in headers}
    added = []
    if "x-amzn-trace-id" not in names:
        added.append(("X-Amzn-Trace-Id", new_trace_id()))
    forwarded_for = next((value for name, value in headers if name.lower() == "x-forwarded-for"), None)
    client = request.remote_addr or ""
    kept = [
        (name, value)
        for name, value in headers
        if name.lower() not in ("x-forwarded-for", "x-forwarded-port", "x-forwarded-proto")
    ]
    added += [
        ("X-Forwarded-For", f"{forwarded_for}, {client}" if forwarded_for else client),
        ("X-Forwarded-Port", str(request.environ.get("SERVER_PORT", ""))),
        ("X-Forwarded-Proto", request.scheme),
    ]
    return kept + added


def _selects(selection_pattern: str, status_code: int) -> bool:
    """Whether an integration response's selectionPattern (a regex) matches the whole status code."""
    try:
        return re.fullmatch(selection_pattern, str(status_code)) is not None
    except re.error:
        return False


def _ids(incoming: proxy.IncomingRequest) -> list[tuple[str, str]]:
    return [("x-amzn-RequestId", incoming.request_id), ("x-amz-apigw-id", incoming.extended_request_id)]


def _template(templates: dict[str, str], content_type: str | None) -> str | None:
    """The template for the request's content type, else the application/json one, else the only one."""
    if not templates:
        return None
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind in templates:
        return templates[kind]
    if "application/json" in templates:
        return templates["application/json"]
    return next(iter(templates.values())) if len(templates) == 1 else None


def _static_headers(parameters: dict[str, str], prefix: str) -> list[tuple[str, str]]:
    """Headers mapped to static values (``'value'``); mappings from the request or context are not evaluated."""
    return [
        (key[len(prefix) :], value[1:-1])
        for key, value in parameters.items()
        if key.startswith(prefix) and len(value) >= 2 and value[0] == value[-1] == "'"
    ]
