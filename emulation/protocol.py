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


def validate_input(operation: OperationModel, params: dict[str, Any]) -> None:
    """Raise ValidationError listing every constraint the request breaks, as AWS words it."""
    problems: list[str] = []
    if operation.input_shape is not None:
        _check_structure(operation.input_shape, params, "", problems)
    if problems:
        count = len(problems)
        noun = "error" if count == 1 else "errors"
        raise ValidationError(f"{count} validation {noun} detected: " + "; ".join(problems))


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
