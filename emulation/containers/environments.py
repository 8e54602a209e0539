"""Isolated Python environments for users' code, built on first use and cached by content hash.

A framework container on AWS runs ``python -m pip install -r requirements.txt`` on top of the
packages its image ships, on every job. Here the image's packages are this interpreter's, and the
extra ones go into a virtual environment layered over them (``--system-site-packages``), so a
job's requirements never touch the emulator's own Python and a package the base already has is
"already satisfied", as in the container. pip, not a faster installer, does the install: it is
the tool the containers use, it honours the machine's pip configuration, and it sees the base
packages (another installer would fetch a second copy of, say, torch).

An environment is keyed by the base interpreter and the package set, so the second job with the
same ``requirements.txt`` pays nothing. It is built in a private temporary directory and renamed
into place atomically, so concurrent jobs (a tuning run) never see half an environment; the
loser of a race discards its copy. Later per-image runtimes reuse the same cache with the pinned
package set of an image version.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

#: Lines of a requirements file that point at files of the source directory rather than naming
#: packages; such a set is keyed by the whole directory's content, not just its text.
_LOCAL_REFERENCE_PREFIXES = (
    "-r",
    "-c",
    "-e",
    "--requirement",
    "--constraint",
    "--editable",
    ".",
    "/",
    "file:",
)


class RequirementsError(Exception):
    """pip could not install the requirements; ``output`` is what it printed, ``command`` what ran."""

    def __init__(self, command: str, exit_code: int, output: list[str]):
        super().__init__(f"{command} exited with {exit_code}")
        self.command = command
        self.exit_code = exit_code
        self.output = output


def requirement_lines(text: str) -> list[str]:
    """The meaningful lines of a requirements file: comments and blank lines dropped."""
    lines = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def _directory_digest(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(directory)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


class EnvironmentCache:
    """Virtual environments under ``root``, one per (base interpreter, package set)."""

    def __init__(self, root: Path, base_interpreter: str = sys.executable):
        self.root = Path(root)
        self.base_interpreter = base_interpreter
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def key(self, requirements: Sequence[str], source_dir: Path | None = None) -> str:
        digest = hashlib.sha256()
        digest.update(f"{os.path.realpath(self.base_interpreter)}\0{sys.version}\0".encode())
        for line in sorted(requirements):
            digest.update(line.encode() + b"\n")
        if source_dir is not None and any(
            line.startswith(_LOCAL_REFERENCE_PREFIXES) for line in requirements
        ):
            digest.update(_directory_digest(source_dir).encode())
        return digest.hexdigest()[:24]

    def interpreter(
        self,
        requirements: Sequence[str],
        source_dir: Path | None = None,
        log: Callable[[str], None] = lambda line: None,
    ) -> Path:
        """The Python of an environment with ``requirements`` installed over the base packages.

        Built on first use (pip's output goes to ``log`` line by line); raises RequirementsError
        when pip fails, and caches nothing then. ``source_dir`` is where relative references in
        the requirements resolve, as in the container's code directory.
        """
        key = self.key(requirements, source_dir)
        final = self.root / key
        python = final / "bin" / "python"
        if python.exists():
            return python
        with self._lock(key):
            if not python.exists():
                self._build(final, requirements, source_dir, log)
        return python

    def _lock(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def _build(
        self, final: Path, requirements: Sequence[str], source_dir: Path | None, log: Callable[[str], None]
    ) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        building = self.root / f".building-{final.name}-{uuid.uuid4().hex[:8]}"
        try:
            subprocess.run(
                [
                    self.base_interpreter,
                    "-m",
                    "venv",
                    "--system-site-packages",
                    "--without-pip",
                    str(building),
                ],
                check=True,
                capture_output=True,
            )
            (building / "requirements.txt").write_text("\n".join(requirements) + "\n")
            command = [str(building / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
                       "-r", str(building / "requirements.txt")]  # fmt: skip
            output = []
            with subprocess.Popen(
                command,
                cwd=source_dir,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PIP_NO_INPUT": "1", "PYTHONNOUSERSITE": "1"},
            ) as pip:
                for raw in pip.stdout:
                    line = raw.decode("utf-8", "replace").rstrip("\n")
                    output.append(line)
                    log(line)
            if pip.returncode != 0:
                raise RequirementsError(
                    f"{sys.executable} -m pip install -r requirements.txt", pip.returncode, output
                )
            _retarget_scripts(building, final)
            try:
                building.rename(final)
            except OSError:
                if not (final / "bin" / "python").exists():
                    raise
                # another emulator sharing this cache finished the same environment first
        finally:
            shutil.rmtree(building, ignore_errors=True)


def _retarget_scripts(building: Path, final: Path) -> None:
    """Console scripts pip wrote name the temporary directory in their ``#!`` line; point them at
    the directory the environment is renamed to."""
    old, new = str(building).encode(), str(final).encode()
    for script in (building / "bin").iterdir():
        if script.is_file() and not script.is_symlink():
            content = script.read_bytes()
            if content.startswith(b"#!") and old in content:
                script.write_bytes(content.replace(old, new))
