"""SageMaker's Search API over the resources sagelocal keeps.

The SDK calls it behind users' backs: ``Estimator.register`` looks up the training job that made
an artifact (``ModelArtifacts.S3ModelArtifacts Equals <url>``) for the model card. Filters name a
dotted path into the resource's record; values compare as numbers when both sides are numbers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

from emulation.protocol import ValidationError


def _lookup(record: dict[str, Any], path: str) -> Any:
    """A dotted path's value; ``Tags.<key>`` reads the record's tag list as Search does."""
    if path.startswith("Tags."):
        wanted = path[len("Tags.") :]
        return next((t["Value"] for t in record.get("Tags", []) if t["Key"] == wanted), None)
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _comparable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


_OPERATORS: dict[str, Callable[[Any, str], bool]] = {
    "Equals": lambda actual, wanted: actual is not None and _comparable(actual) == _comparable(wanted),
    "NotEquals": lambda actual, wanted: actual is None or _comparable(actual) != _comparable(wanted),
    "GreaterThan": lambda actual, wanted: actual is not None and _comparable(actual) > _comparable(wanted),
    "GreaterThanOrEqualTo": lambda a, w: a is not None and _comparable(a) >= _comparable(w),
    "LessThan": lambda actual, wanted: actual is not None and _comparable(actual) < _comparable(wanted),
    "LessThanOrEqualTo": lambda a, w: a is not None and _comparable(a) <= _comparable(w),
    "Contains": lambda actual, wanted: actual is not None and str(wanted) in str(actual),
    "Exists": lambda actual, _: actual is not None,
    "NotExists": lambda actual, _: actual is None,
    "In": lambda actual, wanted: actual is not None and str(actual) in wanted.split(","),
}


def _matches_filter(record: dict[str, Any], search_filter: dict[str, Any]) -> bool:
    operator = search_filter.get("Operator", "Equals")
    return _OPERATORS[operator](_lookup(record, search_filter["Name"]), search_filter.get("Value", ""))


def matches(record: dict[str, Any], expression: dict[str, Any] | None) -> bool:
    """A SearchExpression: Filters and SubExpressions joined by its Operator (And by default)."""
    if not expression:
        return True
    results = [_matches_filter(record, f) for f in expression.get("Filters", [])]
    results += [matches(record, sub) for sub in expression.get("SubExpressions", [])]
    if expression.get("Operator", "And") == "Or":
        return any(results) if results else True
    return all(results)


def search(records: Iterable[dict[str, Any]], resource: str, params: dict[str, Any]) -> dict[str, Any]:
    """Records of one resource type, each as SearchRecord's member for that type."""
    found = [r for r in records if matches(r, params.get("SearchExpression"))]
    sort_by = params.get("SortBy")
    if sort_by:
        descending = params.get("SortOrder", "Descending") == "Descending"
        found.sort(key=lambda r: _comparable(_lookup(r, sort_by)) or "", reverse=descending)
    start = int(params.get("NextToken") or 0)
    size = int(params.get("MaxResults") or 10)
    page = found[start : start + size]
    result: dict[str, Any] = {"Results": [{resource: record} for record in page]}
    if start + size < len(found):
        result["NextToken"] = str(start + size)
    return result


def unsupported(resource: str) -> ValidationError:
    return ValidationError(
        f"Search over {resource} is not supported by sagelocal; it searches TrainingJob, Endpoint, "
        "ModelPackage and ModelPackageGroup."
    )
