"""S3 object bodies as files under the data directory, not in memory.

moto keeps each object's body in a ``SpooledTemporaryFile`` (memory up to ~5 MB, then an anonymous
temporary file), gone with the process. ``DiskKey`` is moto's ``FakeKey`` with its body in a file
of its own, written once (a new body is a new file), opened only while read or written, so a
snapshot of the S3 backend holds a file name, not the bytes. A file is removed only after a snapshot
that no longer names it is on disk (``ObjectFiles.take_discarded``), so a crash between the two
never leaves a snapshot pointing at a missing body; files no snapshot names (a body written just
before a crash) are swept on start.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import moto.s3.models
from moto.s3.models import FakeKey

from emulation.state.store import sync_directory


class ObjectFiles:
    """The directory of object bodies, and the bodies waiting to be removed."""

    def __init__(self, directory: Path):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._discarded: list[str] = []
        self._lock = threading.Lock()

    def write(self, data: bytes) -> str:
        """A new body file; durable once ``sync`` has run (before a snapshot names it)."""
        name = uuid.uuid4().hex
        with open(self.directory / name, "xb") as file:  # a fresh name: a crash mid-write leaves
            file.write(data)  # a file no snapshot names, swept on start
            file.flush()
            os.fsync(file.fileno())
        return name

    def sync(self) -> None:
        """Make the names of the bodies written so far durable (one directory fsync for them all)."""
        sync_directory(self.directory)

    def discard(self, name: str) -> None:
        with self._lock:
            self._discarded.append(name)

    def take_discarded(self) -> list[str]:
        with self._lock:
            taken, self._discarded = self._discarded, []
        return taken

    def remove(self, names: list[str]) -> None:
        for name in names:
            (self.directory / name).unlink(missing_ok=True)

    def sweep(self, keep: set[str]) -> int:
        """Remove every body not in ``keep`` (and half-written ones); how many were removed."""
        removed = 0
        for path in self.directory.iterdir():
            if path.name not in keep:
                path.unlink(missing_ok=True)
                removed += 1
        return removed


#: Set by ``install``; DiskKeys are created by moto, which cannot pass it to them.
_files: ObjectFiles | None = None


class ObjectBody:
    """The file-like object moto's FakeKey reads its body through (seek / read / close)."""

    def __init__(self, name: str | None):
        self.name = name  # None: the empty body, no file
        self._position = 0

    def _path(self) -> Path:
        return _files.directory / self.name

    def contents(self) -> bytes:
        if self.name is None:
            return b""
        return self._path().read_bytes()

    def seek(self, position: int) -> None:
        self._position = position

    def read(self, size: int = -1) -> bytes:
        if self.name is None:
            return b""
        with open(self._path(), "rb") as file:
            file.seek(self._position)
            data = file.read(size)
        self._position += len(data)
        return data

    def close(self) -> None:
        """Nothing to release: the file is opened per read, and removed only by ``discard``."""

    def __getstate__(self) -> dict[str, Any]:
        _named(self.name)
        return {"name": self.name}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.name = state["name"]
        self._position = 0
        _named(self.name)


class DiskKey(FakeKey):
    @property
    def value(self) -> bytes:
        return self._value_buffer.contents()

    @value.setter
    def value(self, new_value: bytes | str) -> None:
        if isinstance(new_value, str):
            new_value = new_value.encode("utf-8")
        old = getattr(self, "_value_buffer", None)
        self._value_buffer = ObjectBody(_files.write(new_value) if new_value else None)
        self.contentsize = len(new_value)
        if getattr(self, "_etag", None) is None:  # now, rather than by reading the file back later
            self._etag = hashlib.md5(new_value, usedforsecurity=False).hexdigest()
        if isinstance(old, ObjectBody) and old.name is not None:
            _files.discard(old.name)

    def dispose(self, garbage: bool = False) -> None:
        # moto disposes a key it deletes or replaces; the garbage collector (and interpreter exit)
        # disposes keys too, and those bodies are still wanted.
        body = getattr(self, "_value_buffer", None)
        if not garbage and not self.disposed and isinstance(body, ObjectBody) and body.name:
            _files.discard(body.name)
        super().dispose(garbage)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.lock = threading.Lock()


def install(files: ObjectFiles) -> None:
    """From now on moto keeps new S3 object bodies in ``files``."""
    global _files
    _files = files
    moto.s3.models.FakeKey = DiskKey


@contextlib.contextmanager
def naming() -> Iterator[set[str]]:
    """The body files named by what this thread pickles or unpickles inside the block."""
    names: set[str] = set()
    _naming.names = names
    try:
        yield names
    finally:
        _naming.names = None


_naming = threading.local()


def _named(name: str | None) -> None:
    names = getattr(_naming, "names", None)
    if names is not None and name is not None:
        names.add(name)
