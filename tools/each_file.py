"""Run every tests/test_*.py file alone, each in its own pytest process, and say which fail.

A file that passes only after another file ran leans on that file's resources or state; the suite
promises each file passes by itself (and in any order: pytest-randomly stays on).

    python tools/each_file.py                     # every file
    python tools/each_file.py -- -p no:randomly   # extra pytest arguments after --
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    failed = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        started = time.monotonic()
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                str(path.relative_to(ROOT)),
                *extra,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        summary = (result.stdout.strip().splitlines() or ["(no output)"])[-1]
        print(
            f"{path.name:<34} {'ok' if result.returncode == 0 else 'FAILED':<7} {time.monotonic() - started:6.1f} s  {summary}",
            flush=True,
        )
        if result.returncode != 0:
            failed.append(path.name)
            print(result.stdout[-3000:], result.stderr[-2000:], sep="\n", flush=True)
    print(
        f"\n{len(failed)} file(s) failed alone: {', '.join(failed)}"
        if failed
        else "\nevery file passed alone"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
