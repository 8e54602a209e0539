"""The Lambda proxy integration (REST v1, payload format 1.0): the event in, the response out.

Both directions follow shared/spec/lambda-apigateway-sigv4.md, sections 1 and 2, which record what
API Gateway really sends and accepts.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl

from emulation.apigateway.routing import Route

#: Request headers API Gateway does not pass on to the function.
_DROPPED_HEADERS = {"content-length", "connection"}
#: Response headers API Gateway owns; a function's values come out renamed.
_REMAPPED_HEADERS = {"connection", "content-length", "date", "server"}
_RESPONSE_KEYS = {"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"}
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class MalformedResponse(Exception):
    """The function's result is not a valid proxy response: API Gateway answers 502."""


@dataclass(frozen=True)
class IncomingRequest:
    """An execute-api request, as the client sent it: raw path (after the stage) and raw headers."""

    http_method: str
    path: str  # not URL-decoded, trailing slash kept
    query_string: str
    headers: list[tuple[str, str]]  # names in the client's casing, repeats kept
    body: bytes
    source_ip: str
    protocol: str
    request_id: str
    extended_request_id: str
    epoch_ms: int

    def header(self, name: str) -> str | None:
        return next((value for key, value in reversed(self.headers) if key.lower() == name.lower()), None)


@dataclass(frozen=True)
class ApiContext:
    """What the event says about the API: owner, ids, stage and its variables."""

    account_id: str
    api_id: str
    stage: str
    deployment_id: str
    stage_variables: dict[str, str]
    binary_media_types: tuple[str, ...]


def build_event(request: IncomingRequest, route: Route, api: ApiContext) -> dict:
    """The proxy event, keys in the order API Gateway sends them."""
    headers = [
        (name, value)
        for name, value in request.headers
        if name.lower() not in _DROPPED_HEADERS
        and not (name.lower() == "authorization" and value.startswith("AWS4-HMAC-SHA256"))
    ]
    query = parse_qsl(request.query_string, keep_blank_values=True)
    binary = is_binary(request.header("Content-Type"), api.binary_media_types)
    if not request.body:
        body = None
    elif binary:
        body = base64.b64encode(request.body).decode()
    else:
        body = request.body.decode("utf-8", "replace")
    host = request.header("Host") or ""
    return {
        "resource": route.resource.path,
        "path": request.path,
        "httpMethod": request.http_method,
        "headers": dict(headers) or None,
        "multiValueHeaders": _grouped(headers) or None,
        "queryStringParameters": dict(query) or None,
        "multiValueQueryStringParameters": _grouped(query) or None,
        "pathParameters": route.path_parameters,
        "stageVariables": api.stage_variables or None,
        "requestContext": {
            "resourceId": route.resource.id,
            "resourcePath": route.resource.path,
            "httpMethod": request.http_method,
            "extendedRequestId": request.extended_request_id,
            "requestTime": _request_time(request.epoch_ms),
            "path": f"/{api.stage}{request.path}",
            "accountId": api.account_id,
            "protocol": request.protocol,
            "stage": api.stage,
            "domainPrefix": host.split(".", 1)[0],
            "requestTimeEpoch": request.epoch_ms,
            "requestId": request.request_id,
            "identity": {
                "accessKey": None,
                "accountId": None,
                "caller": None,
                "cognitoAuthenticationProvider": None,
                "cognitoAuthenticationType": None,
                "cognitoIdentityId": None,
                "cognitoIdentityPoolId": None,
                "principalOrgId": None,
                "sourceIp": request.source_ip,
                "user": None,
                "userAgent": request.header("User-Agent"),
                "userArn": None,
            },
            "domainName": host,
            "deploymentId": api.deployment_id,
            "apiId": api.api_id,
        },
        "body": body,
        "isBase64Encoded": binary,
    }


def map_response(payload: bytes, *, binary_accepted: bool) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, body) from the function's result; raises MalformedResponse as AWS would answer 502.

    ``binary_accepted``: the request's Accept matches the API's binaryMediaTypes, the only case in
    which a body marked ``isBase64Encoded`` is decoded.
    """
    try:
        result = json.loads(payload)
    except ValueError:
        raise MalformedResponse("not JSON") from None
    if not isinstance(result, dict) or not set(result) <= _RESPONSE_KEYS:
        raise MalformedResponse(
            "not an object of statusCode, headers, multiValueHeaders, body, isBase64Encoded"
        )
    status = _status(result.get("statusCode"))
    single = result.get("headers") or {}
    multi = result.get("multiValueHeaders") or {}
    if not isinstance(single, dict) or not isinstance(multi, dict):
        raise MalformedResponse("headers must be objects")
    body = result.get("body")
    if body is None:
        body = ""
    if not isinstance(body, str):
        raise MalformedResponse("body must be a string")
    if result.get("isBase64Encoded") is True and binary_accepted:
        try:
            content = base64.b64decode(body, validate=True)
        except binascii.Error:
            raise MalformedResponse("body is not base64") from None
    else:
        content = body.encode()
    headers = _merged_headers(single, multi)
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", "application/json"))
    return status, headers, content


def is_binary(media_type: str | None, binary_media_types: tuple[str, ...]) -> bool:
    """Whether a Content-Type (or one entry of an Accept list) matches the API's binaryMediaTypes."""
    if not media_type or not binary_media_types:
        return False
    for entry in media_type.split(","):
        kind = entry.split(";", 1)[0].strip().lower()
        for pattern in binary_media_types:
            pattern = pattern.lower()
            if pattern in ("*/*", kind) or (pattern.endswith("/*") and kind.startswith(pattern[:-1])):
                return True
    return False


def _status(value) -> int:
    if value is None:
        return 200
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise MalformedResponse("statusCode must be a number")
    try:
        status = int(value)
    except ValueError:
        raise MalformedResponse("statusCode must be a number") from None
    if not 100 <= status <= 599:
        raise MalformedResponse("statusCode out of range")
    return status


def _header_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise MalformedResponse("header values must be strings")


def _merged_headers(single: dict, multi: dict) -> list[tuple[str, str]]:
    """Headers from both maps; a name in both becomes one header ``"multi, single"``, named as in multi."""
    singles = {name.lower(): (name, value) for name, value in single.items() if value is not None}
    merged: list[tuple[str, str]] = []
    for name, values in multi.items():
        if not isinstance(values, list):
            raise MalformedResponse("multiValueHeaders values must be lists")
        texts = [_header_value(value) for value in values]
        paired = singles.pop(name.lower(), None)
        if paired is not None:
            merged.append((name, ", ".join([*texts, _header_value(paired[1])])))
        else:
            merged += [(name, text) for text in texts]
    merged += [(name, _header_value(value)) for name, value in singles.values()]
    return [
        (f"x-amzn-Remapped-{name}" if name.lower() in _REMAPPED_HEADERS else name, value)
        for name, value in merged
    ]


def _grouped(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    return grouped


def _request_time(epoch_ms: int) -> str:
    """``04/Mar/2020:19:15:17 +0000``, independent of the host's locale."""
    t = time.gmtime(epoch_ms / 1000)
    return f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"
