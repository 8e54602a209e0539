"""The list of workflows (one source of truth for the CLI, the demo, tests and benchmarks)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

#: name on the command line -> module; the order is the demo's order.
WORKFLOWS: dict[str, str] = {
    "boston-high-level": "workflows.boston_high_level",
    "boston-low-level": "workflows.boston_low_level",
    "boston-tuning-high-level": "workflows.boston_tuning_high_level",
    "boston-tuning-low-level": "workflows.boston_tuning_low_level",
    "boston-script-mode": "workflows.boston_script_mode",
    "imdb-web-app": "workflows.imdb_web_app",
}


@dataclass
class WorkflowResult:
    workflow: str
    metrics: dict[str, float]
    plots: list[Path] = field(default_factory=list)
    details: dict[str, object] = field(default_factory=dict)


def load(name: str) -> ModuleType:
    if name not in WORKFLOWS:
        raise KeyError(f"unknown workflow {name!r}; choose one of: {', '.join(WORKFLOWS)}")
    return importlib.import_module(WORKFLOWS[name])
