"""How every benchmark reports: a readable table, or one JSON object with --json."""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Sequence


def parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object of figures instead of a table"
    )
    parser.add_argument(
        "--quiet", action="store_true", help=argparse.SUPPRESS
    )  # figures only (python -m bench --json)
    return parser


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]

    return {"p50": at(0.50), "p99": at(0.99), "mean": statistics.fmean(ordered)}


def emit(title: str, rows: list[tuple[str, object, str]], args: argparse.Namespace, figures: dict) -> None:
    """rows: (what, value, note); figures: the same numbers for --json."""
    if args.quiet:
        return
    if args.json:
        print(json.dumps(figures, indent=2, default=str))
        return
    print(f"\n{title}")
    width = max(len(r[0]) for r in rows)
    value_width = max(len(_show(r[1])) for r in rows)
    for what, value, note in rows:
        print(f"  {what.ljust(width)}  {_show(value).rjust(value_width)}  {note}")


def _show(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if value < 100 else f"{value:,.1f}"
    return str(value)
