"""Build the sentiment Lambda's deployment package: the one zip both targets deploy.

The package holds the function (``lambda/sentiment``), the text module shared with training
(``workflows/review_text.py``, so serving tokenizes exactly as training did), the vocabulary, and
the distributions the text module needs (nltk and its requirements). The Lambda runtime provides
only boto3 and botocore, locally as on AWS, so anything missing here fails in both places.

Two things Lambda is strict about that a developer's machine is not:
- Lambda runs the function as a user who does not own its files, so every entry must be
  world-readable. Entries are written 0644 with fixed timestamps, whatever the files here are
  (``ZipFile.writestr`` alone would make 0600, and an editor's umask may do the same).
- The runtime is Linux x86_64 (``ARCHITECTURE``) with CPython ``RUNTIME``. Pure-Python
  distributions are copied from this interpreter; a compiled one (nltk needs ``regex``'s
  extension) is copied only if it was installed from a wheel built for that platform, else its
  manylinux x86_64 wheel is fetched with ``pip install --platform ... --only-binary=:all:``, and
  the build is refused when there is none (a macOS or ARM build would fail only on AWS).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

from workflows import review_text

FUNCTION_SOURCE = Path(__file__).resolve().parents[1] / "lambda" / "sentiment"
HANDLER = "lambda_function.lambda_handler"
RUNTIME = f"python{sys.version_info.major}.{sys.version_info.minor}"
ARCHITECTURE = "x86_64"
#: What the text module imports beyond the standard library.
VENDORED_DISTRIBUTIONS = ("nltk",)
#: Wheel platform tags Lambda's x86_64 runtimes load (glibc 2.17+ covers Amazon Linux 2 and 2023).
LAMBDA_PLATFORM = "manylinux2014_x86_64"
ENTRY_MODE = 0o644
ENTRY_TIME = (1980, 1, 1, 0, 0, 0)
WHEEL_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sagelocal" / "lambda-wheels"


class PackageError(RuntimeError):
    """The package cannot be built so that it runs on Lambda."""


def _requirements(distribution: str, seen: set[str]) -> None:
    """The distribution and, recursively, what it requires (extras left out)."""
    key = distribution.lower().replace("_", "-")
    if key in seen:
        return
    seen.add(key)
    for text in metadata.requires(distribution) or []:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            _requirements(requirement.name, seen)


def _python_tag() -> str:
    return f"cp{sys.version_info.major}{sys.version_info.minor}"


def runs_on_lambda(distribution: metadata.Distribution) -> bool:
    """Whether the installed files of this distribution load on Lambda's Linux x86_64 runtime:
    pure Python, or installed from a wheel tagged manylinux/x86_64 for this CPython."""
    wheel = distribution.read_text("WHEEL") or ""
    if "Root-Is-Purelib: true" in wheel:
        return True
    tags = [line.split(":", 1)[1].strip() for line in wheel.splitlines() if line.startswith("Tag:")]
    return any(
        tag.startswith(_python_tag() + "-") and "manylinux" in tag and tag.endswith("_x86_64") for tag in tags
    )


def _installed_files(distribution: metadata.Distribution):
    for file in distribution.files or []:
        if "__pycache__" in file.parts or file.suffix == ".pyc" or str(file).startswith(".."):
            continue
        located = Path(file.locate())
        if located.is_file():
            yield str(file), located


def linux_wheel_files(name: str, version: str):
    """The files of ``name==version``'s Linux x86_64 wheel for the runtime, fetched once by pip."""
    target = WHEEL_CACHE / f"{name}-{version}-{_python_tag()}-{LAMBDA_PLATFORM}"
    if not target.exists():
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        command = [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--only-binary=:all:",
            "--platform", LAMBDA_PLATFORM, "--implementation", "cp",
            "--python-version", f"{sys.version_info.major}.{sys.version_info.minor}",
            "--target", str(partial), f"{name}=={version}",
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            shutil.rmtree(partial, ignore_errors=True)
            raise PackageError(
                f"{name} {version} is compiled for this machine, not for Lambda ({LAMBDA_PLATFORM}, {RUNTIME}), "
                f"and pip found no wheel for Lambda's platform: {result.stderr.strip()[-500:]}. "
                f"Build the package on Linux x86_64 with {RUNTIME}, or where PyPI can be reached."
            )
        partial.rename(target)
    for path in sorted(target.rglob("*")):
        relative = path.relative_to(target)
        if path.is_file() and "__pycache__" not in relative.parts and relative.parts[0] != "bin":
            yield str(relative), path


def _entry(package: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=ENTRY_TIME)
    info.create_system = 3  # Unix, so that external_attr holds the mode
    info.external_attr = (0o100000 | ENTRY_MODE) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    package.writestr(info, data, compresslevel=1)


def build(vocabulary: dict[str, int]) -> bytes:
    """The zip, in memory: function + text module + vocabulary.json + vendored distributions."""
    names: set[str] = set()
    for name in VENDORED_DISTRIBUTIONS:
        _requirements(name, names)
    files: dict[str, Path] = {path.name: path for path in sorted(FUNCTION_SOURCE.glob("*.py"))}
    files["review_text.py"] = Path(review_text.__file__)
    for name in sorted(names):
        distribution = metadata.distribution(name)
        found = (
            _installed_files(distribution)
            if runs_on_lambda(distribution)
            else linux_wheel_files(distribution.metadata["Name"], distribution.version)
        )
        files.update(found)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as package:
        _entry(package, "vocabulary.json", json.dumps(vocabulary, sort_keys=True).encode())
        for name in sorted(files):
            _entry(package, name, files[name].read_bytes())
    return buffer.getvalue()
