"""Named snapshots in one directory, each replaced atomically, and how state becomes bytes.

A save writes a temporary file, fsyncs it, renames it over the old one and fsyncs the directory:
whatever moment the process dies (SIGKILL, power cut after the fsync), the name holds either the
previous snapshot or the new one, never a torn mix. Each file carries a CRC of its payload so that
a file damaged behind our back is reported, not half-loaded.
"""

from __future__ import annotations

import collections
import copyreg
import io
import os
import pickle
import struct
import threading
import weakref
import zlib
from pathlib import Path
from typing import Any

from moto.iam.models import AWSManagedPolicy, IAMBackend

_MAGIC = b"SLSTATE1"
_HEADER = struct.Struct(">8sIQ")  # magic, crc32 of the payload, payload length
_SUFFIX = ".state"


class StateError(Exception):
    """A snapshot that exists but cannot be read back."""


class StateStore:
    def __init__(self, directory: Path):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        return self.directory / f"{name}{_SUFFIX}"

    def names(self) -> list[str]:
        return sorted(p.name[: -len(_SUFFIX)] for p in self.directory.glob(f"*{_SUFFIX}"))

    def save(self, name: str, payload: bytes) -> None:
        target = self.path(name)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        with open(temporary, "wb") as file:
            file.write(_HEADER.pack(_MAGIC, zlib.crc32(payload), len(payload)))
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
        sync_directory(self.directory)

    def load(self, name: str) -> bytes | None:
        try:
            data = self.path(name).read_bytes()
        except FileNotFoundError:
            return None
        if len(data) < _HEADER.size:
            raise StateError(f"{self.path(name)} is truncated")
        magic, crc, length = _HEADER.unpack_from(data)
        payload = data[_HEADER.size :]
        if magic != _MAGIC or length != len(payload) or zlib.crc32(payload) != crc:
            raise StateError(f"{self.path(name)} is damaged (bad header or checksum)")
        return payload

    def remove_temporaries(self) -> None:
        """Half-written files of a process that died mid-save."""
        for leftover in self.directory.glob(".*.tmp"):
            leftover.unlink(missing_ok=True)


def sync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# -- pickling moto's backends ----------------------------------------------------------------
# moto's models are plain objects, with a few members pickle refuses: locks, weak dictionaries and
# defaultdicts whose factory is a lambda. These reducers stand in for them by type (a lookup the
# C pickler does itself, so the common objects cost nothing extra); one more keeps IAM small.
_LOCK_TYPES = {type(threading.Lock()): threading.Lock, type(threading.RLock()): threading.RLock}
_EMPTY_CONTAINERS = (dict, list, set)


def _reduce_lock(lock) -> tuple:
    return _LOCK_TYPES[type(lock)], ()


def _reduce_weak_values(mapping: weakref.WeakValueDictionary) -> tuple:
    return weakref.WeakValueDictionary, (dict(mapping.items()),)


def _reduce_defaultdict(mapping: collections.defaultdict) -> tuple:
    factory = mapping.default_factory
    if getattr(factory, "__name__", "") == "<lambda>":
        # ``defaultdict(lambda: {})`` and friends: the lambda builds an empty container, so the
        # container's type is the same factory, and one pickle can name it.
        made = factory()
        if type(made) in _EMPTY_CONTAINERS and not made:
            factory = type(made)
    return collections.defaultdict, (factory,), None, None, iter(mapping.items())


def _reduce_iam_backend(backend: IAMBackend) -> tuple:
    """IAM without the ~1,300 AWS-managed policies moto builds in every account (3.4 MB, a third of
    a second to pickle on each CreateRole): those no one attached are built again on load."""
    state = backend.__dict__.copy()
    state["aws_managed_policies"] = [p for p in backend.aws_managed_policies if p.attachment_count]
    state["managed_policies"] = {
        arn: policy
        for arn, policy in backend.managed_policies.items()
        if not isinstance(policy, AWSManagedPolicy) or policy.attachment_count
    }
    return object.__new__, (type(backend),), state, None, None, _restore_iam_backend


def _restore_iam_backend(backend: IAMBackend, state: dict[str, Any]) -> None:
    backend.__dict__.update(state)
    kept = {policy.arn: policy for policy in state["aws_managed_policies"]}
    built = {policy.arn: policy for policy in backend._init_aws_policies()}
    backend.aws_managed_policies = list({**built, **kept}.values())
    backend.managed_policies = {**built, **state["managed_policies"]}


_DISPATCH = {
    **copyreg.dispatch_table,
    **dict.fromkeys(_LOCK_TYPES, _reduce_lock),
    weakref.WeakValueDictionary: _reduce_weak_values,
    collections.defaultdict: _reduce_defaultdict,
    IAMBackend: _reduce_iam_backend,
}


def dumps(value: Any) -> bytes:
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = _DISPATCH
    pickler.dump(value)
    return buffer.getvalue()


def loads(payload: bytes) -> Any:
    return pickle.loads(payload)
