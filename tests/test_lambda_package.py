"""The sentiment Lambda's package is built to run on Lambda, not just on this machine: entries
world-readable (Lambda runs the function as a user that does not own them) with normalised
attributes, and compiled dependencies built for Linux x86_64 or the build refused."""

from __future__ import annotations

import base64
import hashlib
import io
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from workflows import lambda_package

PY = f"cp{sys.version_info.major}{sys.version_info.minor}"


def test_every_entry_is_world_readable_with_normalised_attributes():
    package = zipfile.ZipFile(io.BytesIO(lambda_package.build({"good": 0, "bad": 1})))
    entries = package.infolist()
    names = {entry.filename for entry in entries}
    assert {"lambda_function.py", "review_text.py", "vocabulary.json", "nltk/__init__.py"} <= names
    assert any(name.startswith("regex/_regex") and name.endswith(".so") for name in names)  # compiled
    for entry in entries:
        assert entry.create_system == 3, entry.filename  # Unix attributes...
        assert (entry.external_attr >> 16) == 0o100644, entry.filename  # ...regular file, rw-r--r--
        assert entry.date_time == (1980, 1, 1, 0, 0, 0), entry.filename
    # The same input gives the same bytes (no timestamps or local modes leak in).
    assert lambda_package.build({"good": 0, "bad": 1}) == lambda_package.build({"good": 0, "bad": 1})


def _distribution(tmp_path: Path, name: str, wheel: str) -> metadata.Distribution:
    info = tmp_path / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "WHEEL").write_text(wheel)
    return metadata.PathDistribution(info)


@pytest.mark.parametrize(
    ("wheel", "loads_on_lambda"),
    [
        ("Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n", True),
        (f"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: {PY}-{PY}-manylinux2014_x86_64\n", True),
        (f"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: {PY}-{PY}-macosx_11_0_arm64\n", False),
        (f"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: {PY}-{PY}-manylinux2014_aarch64\n", False),
        ("Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: cp39-cp39-manylinux2014_x86_64\n", False),
    ],
)
def test_only_pure_or_linux_x86_64_builds_for_the_runtime_are_copied(tmp_path, wheel, loads_on_lambda):
    assert lambda_package.runs_on_lambda(_distribution(tmp_path, "native", wheel)) is loads_on_lambda


def _wheel(directory: Path, name: str, tag: str) -> None:
    """A minimal wheel of ``name`` 1.0 with one module, as pip installs it."""
    files = {
        f"{name}/__init__.py": b"VALUE = 42\n",
        f"{name}-1.0.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode(),
        f"{name}-1.0.dist-info/WHEEL": f"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: {tag}\n".encode(),
    }
    record = "".join(
        f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}\n"
        for path, data in files.items()
    )
    files[f"{name}-1.0.dist-info/RECORD"] = (record + f"{name}-1.0.dist-info/RECORD,,\n").encode()
    with zipfile.ZipFile(directory / f"{name}-1.0-{tag}.whl", "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)


def test_a_compiled_dependency_is_fetched_as_its_linux_x86_64_wheel(tmp_path, monkeypatch):
    index = tmp_path / "index"
    index.mkdir()
    _wheel(index, "nativedep", f"{PY}-{PY}-manylinux2014_x86_64")
    _wheel(index, "nativedep", f"{PY}-{PY}-macosx_11_0_arm64")  # what this machine would pick on a Mac
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    monkeypatch.setattr(lambda_package, "WHEEL_CACHE", tmp_path / "cache")
    files = dict(lambda_package.linux_wheel_files("nativedep", "1.0"))
    assert files["nativedep/__init__.py"].read_text() == "VALUE = 42\n"
    wheel = files["nativedep-1.0.dist-info/WHEEL"].read_text()
    assert f"Tag: {PY}-{PY}-manylinux2014_x86_64" in wheel


def test_without_a_linux_wheel_the_build_is_refused(tmp_path, monkeypatch):
    index = tmp_path / "index"
    index.mkdir()
    _wheel(index, "nativedep", f"{PY}-{PY}-macosx_11_0_arm64")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    monkeypatch.setattr(lambda_package, "WHEEL_CACHE", tmp_path / "cache")
    with pytest.raises(lambda_package.PackageError, match="compiled for this machine, not for Lambda"):
        dict(lambda_package.linux_wheel_files("nativedep", "1.0"))
    assert not any((tmp_path / "cache").glob("nativedep-*"))  # nothing half-made kept
