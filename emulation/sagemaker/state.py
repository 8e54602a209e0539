"""Small pieces every SageMaker resource uses: the clock and safe copies of descriptions."""

from __future__ import annotations

import datetime as dt
from typing import Any


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def snapshot(value: Any) -> Any:
    """A deep copy cheap enough for every Describe call (dicts, lists and immutable leaves only)."""
    if isinstance(value, dict):
        return {k: snapshot(v) for k, v in value.items()}
    if isinstance(value, list):
        return [snapshot(v) for v in value]
    return value
