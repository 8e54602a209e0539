"""Run every benchmark: `python -m bench` prints the tables; `--json` prints one JSON object."""

from __future__ import annotations

import json
import sys

from bench import (
    gate,
    imdb_full_scale,
    invoke_latency,
    lambda_latency,
    persistence,
    script_mode,
    soak,
    tuning,
    workflow_times,
)

BENCHMARKS = {
    "workflow_times": workflow_times,
    "invoke_latency": invoke_latency,
    "gate": gate,
    "lambda_latency": lambda_latency,
    "tuning": tuning,
    "persistence": persistence,
    "script_mode": script_mode,
    "imdb_full_scale": imdb_full_scale,
    "soak": soak,
}


def main() -> None:
    as_json = "--json" in sys.argv[1:]
    results = {name: module.main(["--quiet"] if as_json else []) for name, module in BENCHMARKS.items()}
    if as_json:
        print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
