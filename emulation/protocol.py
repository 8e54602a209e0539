"""AWS wire-protocol plumbing shared by our own services: botocore's service models as the spec.

Requests are validated against the operation's input shape the way the service does it (not the
way botocore's client-side validator does): every violation of required / length / range /
pattern / enum is collected and reported as one ``ValidationException`` in AWS's wording.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from typing import Any

import botocore.session
from botocore.model import ListShape, MapShape, OperationModel, ServiceModel, Shape, StructureShape
from werkzeug.wrappers import Response


class AwsError(Exception):
    """An error answered the AWS way; ``code`` becomes ``__type`` / ``x-amzn-ErrorType``."""

    status = 400

    def __init__(self, code: str, message: str, status: int | None = None, **extra: Any):
        super().__init__(message)
        self.code = code
        self.message = message
        if status is not None:
            self.status = status
        self.extra = extra


class ValidationError(AwsError):
    def __init__(self, message: str):
        super().__init__("ValidationException", message)


@functools.cache
def service_model(name: str) -> ServiceModel:
    return botocore.session.get_session().get_service_model(name)


def operation_model(service: str, operation: str) -> OperationModel:
    return service_model(service).operation_model(operation)


def validate_input(operation: OperationModel, params: Any) -> None:
    """Raise SerializationException for a value of the wrong JSON type (the service cannot even read
    the request), else ValidationError listing every constraint the request breaks, as AWS words it."""
    problems: list[str] = []
    if operation.input_shape is not None:
        _check_type(operation.input_shape, params)
        _check_structure(operation.input_shape, params, "", problems)
    if problems:
        count = len(problems)
        noun = "error" if count == 1 else "errors"
        raise ValidationError(f"{count} validation {noun} detected: " + "; ".join(problems))


#: JSON integers the services read into Java's int and long.
_INTEGER_RANGES = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}


def _json_kind(value: Any) -> str:
    """How AWS's JSON reader names what it found."""
    if isinstance(value, dict):
        return "Start of structure or map"
    if isinstance(value, list):
        return "Start of list"
    if isinstance(value, bool):
        return "BOOLEAN_VALUE"
    if isinstance(value, (int, float)):
        return "NUMBER_VALUE"
    return "STRING_VALUE"


def _check_type(shape: Shape, value: Any) -> None:
    """Refuse, as AWS's JSON services do, a value whose JSON type cannot be read as the shape's."""
    if value is None:
        return
    kind = shape.type_name

    def refuse(target: str) -> None:
        found = _json_kind(value)
        if found.startswith("Start of"):
            raise AwsError("SerializationException", f"{found} found where not expected")
        raise AwsError("SerializationException", f"{found} cannot be converted to {target}")

    if isinstance(shape, StructureShape):
        if not isinstance(value, dict):
            refuse("Structure")
        for name, member in shape.members.items():
            _check_type(member, value.get(name))
    elif isinstance(shape, ListShape):
        if not isinstance(value, list):
            refuse("List")
        for item in value:
            _check_type(shape.member, item)
    elif isinstance(shape, MapShape):
        if not isinstance(value, dict):
            refuse("Map")
        for item in value.values():
            _check_type(shape.value, item)
    elif kind == "string" or kind == "blob":
        if not isinstance(value, str):
            refuse("String")
    elif kind == "boolean":
        if not isinstance(value, bool):
            refuse("Boolean")
    elif kind in _INTEGER_RANGES:
        low, high = _INTEGER_RANGES[kind]
        if isinstance(value, bool) or not isinstance(value, int):
            if not (isinstance(value, float) and value.is_integer() and low <= value <= high):
                refuse(kind.capitalize())
        elif not low <= value <= high:
            raise AwsError(
                "SerializationException", f"NUMBER_VALUE {value} is out of range for {kind.capitalize()}"
            )
    elif kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            refuse(kind.capitalize())
    elif kind == "timestamp":
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            refuse("Date")


def check_body(operation: OperationModel, body: Any) -> None:
    """Type-check the JSON body of a request served by moto, and require its required body members.

    Members that travel in the URI, headers or query string are the router's business, not the body's.
    """
    shape = operation.input_shape
    if shape is None:
        return
    in_body = {
        name: member for name, member in shape.members.items() if "location" not in member.serialization
    }
    payload = shape.serialization.get("payload")
    if payload:  # the body is that one member (a blob, or a structure of its own)
        member = shape.members[payload]
        if member.type_name == "structure":
            _check_type(member, body)
        return
    if not isinstance(body, dict):
        raise AwsError("SerializationException", f"{_json_kind(body)} found where not expected")
    for name, member in in_body.items():
        _check_type(member, body.get(name))
    missing = [name for name in shape.required_members if name in in_body and body.get(name) is None]
    if missing:
        raise ValidationError(
            f"{len(missing)} validation error{'s' if len(missing) > 1 else ''} detected: "
            + "; ".join(
                f"Value null at '{_member_path('', name)}' failed to satisfy constraint: Member must not be null"
                for name in missing
            )
        )


@functools.cache
def _json_targets() -> dict[str, str]:
    """X-Amz-Target prefix -> service, for the JSON-RPC services moto serves behind the edge."""
    return {service_model(name).metadata["targetPrefix"]: name for name in ("logs", "events")}


def json_rpc_operation(target: str) -> OperationModel | None:
    prefix, _, name = target.partition(".")
    service = _json_targets().get(prefix)
    if service is None:
        return None
    try:
        return operation_model(service, name)
    except Exception:  # an unknown operation is moto's to answer
        return None


@functools.cache
def _rest_routes(service: str) -> list[tuple[str, re.Pattern, str]]:
    model = service_model(service)
    routes = []
    for name in model.operation_names:
        http = model.operation_model(name).http
        path = http["requestUri"].split("?")[0]
        pattern = re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(path).replace("\\+", "+"))
        routes.append((http["method"], re.compile(f"^{pattern}/?$"), name))
    # literal segments before parameters, so /functions/{Name}/code beats /functions/{Name}
    routes.sort(key=lambda route: -len(route[1].pattern))
    return routes


def rest_json_operation(service: str, method: str, path: str) -> OperationModel | None:
    """The operation of a REST-JSON service (Lambda, API Gateway) a request is for, from its route."""
    for route_method, pattern, name in _rest_routes(service):
        if route_method == method and pattern.match(path):
            return operation_model(service, name)
    return None


def _member_path(prefix: str, name: str) -> str:
    camel = name[:1].lower() + name[1:]
    return f"{prefix}.{camel}" if prefix else camel


def _check_structure(shape: StructureShape, value: Any, path: str, problems: list[str]) -> None:
    if not isinstance(value, dict):
        return
    for required in shape.required_members:
        if value.get(required) is None:
            problems.append(
                f"Value null at '{_member_path(path, required)}' failed to satisfy constraint: Member must not be null"
            )
    for name, member in shape.members.items():
        if name in value and value[name] is not None:
            _check(member, value[name], _member_path(path, name), problems)


def _check(shape: Shape, value: Any, path: str, problems: list[str]) -> None:
    meta = shape.metadata

    def fail(constraint: str) -> None:
        shown = "null" if value is None else f"'{value}'" if isinstance(value, str) else str(value)
        problems.append(f"Value {shown} at '{path}' failed to satisfy constraint: {constraint}")

    if isinstance(shape, StructureShape):
        _check_structure(shape, value, path, problems)
    elif isinstance(shape, ListShape):
        if isinstance(value, list):
            _check_size(meta, len(value), fail)
            for index, item in enumerate(value, start=1):
                _check(shape.member, item, f"{path}.{index}.member", problems)
    elif isinstance(shape, MapShape):
        if isinstance(value, dict):
            _check_size(meta, len(value), fail)
            for key, item in value.items():
                _check(shape.key, key, f"{path}.{key}.key", problems)
                _check(shape.value, item, f"{path}.{key}.value", problems)
    elif shape.type_name == "string" and isinstance(value, str):
        if shape.enum and value not in shape.enum:
            fail(f"Member must satisfy enum value set: [{', '.join(shape.enum)}]")
        _check_size(meta, len(value), fail)
        pattern = meta.get("pattern")
        if pattern and not _compiled(pattern).search(value):
            fail(f"Member must satisfy regular expression pattern: {pattern}")
    elif shape.type_name in ("integer", "long", "float", "double") and isinstance(value, (int, float)):
        if "min" in meta and value < meta["min"]:
            fail(f"Member must have value greater than or equal to {meta['min']}")
        if "max" in meta and value > meta["max"]:
            fail(f"Member must have value less than or equal to {meta['max']}")


def _check_size(meta: dict, size: int, fail) -> None:
    if "min" in meta and size < meta["min"]:
        fail(f"Member must have length greater than or equal to {meta['min']}")
    if "max" in meta and size > meta["max"]:
        fail(f"Member must have length less than or equal to {meta['max']}")


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern:
    # The models use Java regex syntax; the patterns SageMaker uses are valid Python regex too.
    # AWS matches the whole value, so anchor patterns that are not anchored already.
    anchored = pattern if pattern.startswith("^") else f"^(?:{pattern})$"
    try:
        return re.compile(anchored, re.DOTALL)
    except re.error:
        return re.compile(".*", re.DOTALL)


def to_json(data: Any) -> bytes:
    """JSON as AWS's JSON protocols send it: timestamps as epoch seconds."""
    return json.dumps(data, default=_encode_default, separators=(",", ":")).encode()


def _encode_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return round(value.timestamp(), 3)
    raise TypeError(f"cannot encode {type(value).__name__}")


def error_body(error: AwsError) -> bytes:
    return to_json({"__type": error.code, "message": error.message, **error.extra})


def snake_case(operation_name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation_name).lower()


def error_response(
    error: AwsError, status: int | None = None, content_type: str = "application/json"
) -> Response:
    """An error as both JSON protocols read it: ``__type`` in the body and ``x-amzn-ErrorType`` header."""
    return Response(
        error_body(error),
        status=status or error.status,
        content_type=content_type,
        headers={"x-amzn-ErrorType": error.code},
    )
