"""Run every benchmark: `python -m bench` prints the tables; `--json` prints one JSON object."""

from __future__ import annotations

import json
import sys

from bench import (
    exec_notebook,
    gate,
    imdb_full_scale,
    invoke_latency,
    lambda_latency,
    multi_instance,
    persistence,
    request_path,
    runners,
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
    "request_path": request_path,
    "exec_notebook": exec_notebook,
    "tuning": tuning,
    "persistence": persistence,
    "script_mode": script_mode,
    "runners": runners,
    "multi_instance": multi_instance,
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
