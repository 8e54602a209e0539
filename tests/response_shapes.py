"""Check what our services answer against botocore's output shapes, on every call the tests make.

botocore's parser is lenient: it drops members it does not know and never checks required ones,
so a response can parse and still differ from what AWS sends. ``check_responses`` hooks a boto3
session so that each JSON response of the listed services is checked for types, required members,
enum values and members the shape does not have; a mismatch fails the call that received it.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.model import ListShape, MapShape, Shape, StructureShape

_NUMBER = {"integer": (int,), "long": (int,), "float": (int, float), "double": (int, float)}


def problems(shape: Shape, value: Any, path: str = "") -> list[str]:
    """Every way ``value`` (decoded JSON) differs from ``shape``."""
    found: list[str] = []
    _check(shape, value, path or shape.name, found)
    return found


def _check(shape: Shape, value: Any, path: str, found: list[str]) -> None:
    kind = shape.type_name
    if isinstance(shape, StructureShape):
        if not isinstance(value, dict):
            found.append(f"{path}: expected a structure, got {type(value).__name__}")
            return
        for required in shape.required_members:
            if value.get(required) is None:
                found.append(f"{path}.{required}: required member missing")
        for name, item in value.items():
            if name not in shape.members:
                found.append(f"{path}.{name}: not a member of {shape.name}")
            elif item is not None:
                _check(shape.members[name], item, f"{path}.{name}", found)
    elif isinstance(shape, ListShape):
        if not isinstance(value, list):
            found.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        for index, item in enumerate(value):
            _check(shape.member, item, f"{path}[{index}]", found)
    elif isinstance(shape, MapShape):
        if not isinstance(value, dict):
            found.append(f"{path}: expected a map, got {type(value).__name__}")
            return
        for key, item in value.items():
            _check(shape.value, item, f"{path}[{key}]", found)
    elif kind == "string":
        if not isinstance(value, str):
            found.append(f"{path}: expected a string, got {value!r}")
        elif shape.enum and value not in shape.enum:
            found.append(f"{path}: {value!r} is not one of {shape.name}'s values")
    elif kind in _NUMBER:
        if isinstance(value, bool) or not isinstance(value, _NUMBER[kind]):
            found.append(f"{path}: expected {kind}, got {value!r}")
    elif kind == "boolean":
        if not isinstance(value, bool):
            found.append(f"{path}: expected a boolean, got {value!r}")
    elif kind == "timestamp":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            found.append(f"{path}: expected epoch seconds, got {value!r}")
    elif kind == "blob" and not isinstance(value, str):
        found.append(f"{path}: expected base64 text, got {value!r}")


class ResponseShapeError(AssertionError):
    pass


def check_responses(session, services: tuple[str, ...] = ("sagemaker",)) -> None:
    """Make every client later created from ``session`` verify its successful JSON responses."""

    def verify(http_response, parsed, model, **_):
        if http_response.status_code >= 300 or model.output_shape is None:
            return
        body = http_response.content or b"{}"
        found = problems(model.output_shape, json.loads(body), model.name)
        if found:
            raise ResponseShapeError(f"{model.name} answered outside its output shape: " + "; ".join(found))

    for service in services:
        session.events.register(f"after-call.{service}", verify)
