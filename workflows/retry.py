"""Retry with exponential backoff, for what AWS makes consistent only after a while.

A new IAM role is not assumable for seconds after CreateRole (Lambda answers "The role defined
for the function cannot be assumed by Lambda"), and a new Lambda permission or API deployment may
answer 5xx to the first public requests. Retrying those, and only those, for a bounded time is
what AWS recommends; anything else fails at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def with_backoff(
    call: Callable[[], T],
    *,
    retry_if: Callable[[T | Exception], bool],
    first_delay: float,
    give_up_after: float,
    max_delay: float = 16.0,
    log: Callable[[str], None] | None = None,
    what: str = "",
) -> T:
    """``call()`` until ``retry_if`` rejects its outcome (a result or an exception) or time is up;
    then the last result is returned or the last exception raised."""
    deadline = time.monotonic() + give_up_after
    delay = first_delay
    while True:
        try:
            outcome: T | Exception = call()
        except Exception as error:
            outcome = error
        if not retry_if(outcome) or time.monotonic() + delay > deadline:
            if isinstance(outcome, Exception):
                raise outcome
            return outcome
        if log:
            log(f"{what}: not ready yet ({_short(outcome)}); retrying in {delay:.2g} s")
        time.sleep(delay)
        delay = min(delay * 2, max_delay)


def _short(outcome) -> str:
    text = f"{type(outcome).__name__}: {outcome}" if isinstance(outcome, Exception) else str(outcome)
    return text if len(text) <= 120 else text[:117] + "..."
