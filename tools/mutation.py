"""Mutation testing of the code where a silent bug hurts most; prints the score per module.

Each module is mutated by mutmut in a working copy of its own (``build/mutation/<module>``) with
only the tests that exercise it, so a mutant runs a few focused tests instead of the whole suite
(the machine this runs on has few cores). mutmut remembers results between runs: a rerun only tests
mutants of code that changed. Surviving mutants are listed under the table; each needs a test that
kills it, or a reason why it is equivalent (README, "Mutation testing").

    python tools/mutation.py                  # every module
    python tools/mutation.py sigv4 edge       # some of them
    python tools/mutation.py --list           # the modules, their files and tests
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "build" / "mutation"
GOAL = 0.80
#: What mutmut reports for a checked mutant (the rest of ``total`` was not checked).
OUTCOMES = ("killed", "timeout", "segfault", "survived", "suspicious", "no_tests", "skipped")
#: What a test run needs besides the mutated package: the other packages, the page, the Lambda source.
PROJECT_TREES = ("emulation", "workflows", "lambda", "web")


@dataclass(frozen=True)
class Module:
    name: str
    files: tuple[str, ...]  # mutated
    tests: tuple[str, ...]  # pytest arguments that select the tests which exercise them


#: Each module's tests are the fast ones that call its code directly (no emulator start where one
#: can be avoided): every mutant runs them, in a fork, on a machine with few cores.
MODULES = (
    Module("xgboost", ("emulation/containers/xgboost/*.py",), ("tests/test_xgboost_container.py",)),
    Module(
        "transform",
        ("emulation/sagemaker/transform.py",),
        ("tests/test_transform_batching.py", "tests/test_transform_jobs.py"),
    ),
    Module("sigv4", ("emulation/sigv4.py",), ("tests/test_sigv4.py",)),
    Module("edge", ("emulation/edge.py",), ("tests/test_edge_routing.py",)),
    Module(
        "apigateway-proxy",
        ("emulation/apigateway/proxy.py", "emulation/apigateway/routing.py"),
        ("tests/test_apigateway_mapping.py",),
    ),
)


def _toml_list(values) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def prepare(module: Module) -> Path:
    """A working copy with the module's mutmut settings; files keep their mtimes so mutmut can tell
    what changed since the last run."""
    work = WORK / module.name
    work.mkdir(parents=True, exist_ok=True)
    for tree in (*PROJECT_TREES, "tests"):
        target = work / tree
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(ROOT / tree, target, ignore=shutil.ignore_patterns("__pycache__", "build"))
    pytest_config = (ROOT / "pyproject.toml").read_text().split("[tool.pytest.ini_options]", 1)[1]
    (work / "pyproject.toml").write_text(
        f"""[tool.mutmut]
source_paths = ["emulation"]
only_mutate = {_toml_list(module.files)}
also_copy = {_toml_list(PROJECT_TREES[1:])}
pytest_add_cli_args_test_selection = {_toml_list(module.tests)}
pytest_add_cli_args = ["-p", "no:cacheprovider"]
process_isolation = "forkserver"
# A worker's own start (pytest, collection, an emulator) costs CPU seconds on a loaded machine: a
# mutant counts as hanging only well past that, not because a fast test ran next to a slow start.
timeout_constant = 60.0
timeout_multiplier = 10.0

[tool.pytest.ini_options]{pytest_config}"""
    )
    _retest_survivors(work)
    return work


def _retest_survivors(work: Path) -> None:
    """mutmut retests a mutant only when its function changed; a survivor (or a mutant no test
    reached) may be killed by a test added since, so those are tested again on every run."""
    for meta_file in (work / "mutants").rglob("*.meta"):
        meta = json.loads(meta_file.read_text())
        codes = meta.get("exit_code_by_key", {})
        for key, code in codes.items():
            if code in (0, 5, 33):  # survived, no tests
                codes[key] = None
        meta_file.write_text(json.dumps(meta))


def run(module: Module, children: int) -> dict:
    work = prepare(module)
    environment = {**os.environ, "PYTHONPATH": str(work / "mutants"), "PYTHONDONTWRITEBYTECODE": "1"}
    for _attempt in range(2):  # mutmut resumes; a second run retries a stats pass that went wrong
        subprocess.run(
            [sys.executable, "-m", "mutmut", "run", "--max-children", str(children)],
            cwd=work,
            env=environment,
            check=False,
        )
        subprocess.run(
            [sys.executable, "-m", "mutmut", "export-cicd-stats"], cwd=work, env=environment, check=True
        )
        stats = json.loads((work / "mutants" / "mutmut-cicd-stats.json").read_text())
        if any(stats[outcome] for outcome in OUTCOMES):
            break
    listed = subprocess.run(
        [sys.executable, "-m", "mutmut", "results"],
        cwd=work,
        env=environment,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    stats["surviving"] = [line.strip() for line in listed.splitlines() if line.strip()]
    return stats


def score(stats: dict) -> float:
    """Killed (a test failed, or the tests hung or crashed) out of all mutants: one that no test
    reaches counts as surviving."""
    killed = stats["killed"] + stats["timeout"] + stats["segfault"]
    return killed / stats["total"] if stats["total"] else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("modules", nargs="*", help="module names (default: all)")
    parser.add_argument("--list", action="store_true", help="list the modules and exit")
    parser.add_argument("--children", type=int, default=os.cpu_count() or 1, help="mutants tested at once")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    chosen = [m for m in MODULES if not args.modules or m.name in args.modules]
    if args.list:
        for module in chosen:
            print(f"{module.name}: mutates {' '.join(module.files)}; tests {' '.join(module.tests)}")
        return 0
    results = {module.name: run(module, args.children) for module in chosen}
    if args.json:
        print(json.dumps({name: {**stats, "score": score(stats)} for name, stats in results.items()}))
    else:
        print(
            f"\n{'module':<18}{'mutants':>8}{'killed':>8}{'timeout':>8}{'survived':>9}{'no tests':>9}{'score':>8}"
        )
        for name, stats in results.items():
            print(
                f"{name:<18}{stats['total']:>8}{stats['killed']:>8}{stats['timeout']:>8}{stats['survived']:>9}"
                f"{stats['no_tests']:>9}{score(stats):>8.0%}"
            )
        for name, stats in results.items():
            if stats["surviving"]:
                print(f"\n{name}: surviving mutants (mutmut show <name> in build/mutation/{name})")
                for line in stats["surviving"]:
                    print(f"  {line}")
    return 0 if all(score(stats) >= GOAL for stats in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
