"""The one store for what survives a restart: moto's backends, S3 object bodies, SageMaker's records.

With a data directory (``EmulatorConfig.persist``) each source of state is one snapshot file under
``<data dir>/state`` (``store.StateStore``: atomic replace, checksummed), and S3 object bodies are
files under ``<data dir>/state/s3-objects`` (``s3_objects``). When a snapshot is written:

- a request that changed something (any moto call but a read, a SageMaker Create/Update/Delete/...)
  saves the source it changed before its response leaves: an acknowledged write is on disk, also if
  the process is SIGKILLed right after. Concurrent writers share one save (group commit).
- changes made in the background (a job's progress, its logs, the model it uploads) are saved by a
  flusher thread within ``FLUSH_INTERVAL`` seconds.

On start the snapshots are loaded, body files no snapshot names are removed, and the job, endpoint
and Lambda scratch directories of the previous process are removed (nothing runs across a restart).
Services never write their own files: they register a source (capture / restore) and say when it
changed.
"""

from __future__ import annotations

import fcntl
import functools
import io
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from moto.backends import get_backend
from moto.s3.models import s3_backends
from werkzeug.wrappers import Request, Response

from emulation import sandbox
from emulation.state import s3_objects
from emulation.state.store import StateError, StateStore, dumps, loads

__all__ = ["Persistence", "StateError", "changes_state"]

_logger = logging.getLogger("sagelocal.state")
_MOTO_PREFIX = "moto."
#: Directories under the data directory that hold only what runs (job directories, endpoint model
#: copies, unpacked Lambda packages); after a restart nothing runs, so they are leftovers.
SCRATCH_DIRECTORIES = (
    "training",
    "transform",
    "processing",
    "endpoints",
    "lambda/tasks",
    "lambda/environments",
)


_READ_ACTIONS = re.compile(r"(Get|List|Describe|Head|Filter|Lookup|Search|Query|Scan|BatchGet|Simulate)[A-Z]")


def changes_state(environ: dict[str, Any]) -> bool:
    """Whether a request may change state: all but reads (GET/HEAD, or an action that only reads,
    for the protocols that POST everything). Reads a form body once and puts it back."""
    if environ.get("REQUEST_METHOD") in ("GET", "HEAD", "OPTIONS"):
        return False
    target = environ.get("HTTP_X_AMZ_TARGET")
    action = target.rpartition(".")[2] if target else _query_action(environ)
    return not (action and _READ_ACTIONS.match(action))


def _query_action(environ: dict[str, Any]) -> str | None:
    """The Action of a query-protocol request (IAM, STS), from the query string or the form body."""
    action = parse_qs(environ.get("QUERY_STRING", "")).get("Action")
    if action:
        return action[0]
    if not environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        return None
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    action = parse_qs(body.decode("utf-8", "replace")).get("Action")
    return action[0] if action else None


@functools.cache
def _moto_backend_exists(service: str) -> bool:
    """moto's dispatcher also names apps without state (its dashboard, instance metadata)."""
    try:
        get_backend(service)
    except (KeyError, ModuleNotFoundError, AttributeError):
        return False
    return True


@dataclass
class _Source:
    capture: Callable[[], Any]
    restore: Callable[[Any], None]
    #: True for state that changes without telling (SageMaker descriptions updated by job threads):
    #: the flusher compares it with what it saved last.
    polled: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)  # held while saving
    changes: int = 0  # counts changes, bumped after each one is complete
    saved: int = 0  # the change count the last save covered
    last: Any = None  # the captured value last saved (polled sources)
    _counting: threading.Lock = field(default_factory=threading.Lock)

    def bump(self) -> int:
        with self._counting:
            self.changes += 1
            return self.changes


class Persistence:
    FLUSH_INTERVAL = 0.5
    _CAPTURE_ATTEMPTS = 5  # a capture races with writers in other threads; retry, then give up

    def __init__(self, data_dir: Path, account_id: str):
        self.data_dir = data_dir
        self.account_id = account_id
        self.store = StateStore(data_dir / "state")
        self._lock_file = self._lock_directory(self.store.directory / "lock")
        self.objects = s3_objects.ObjectFiles(self.store.directory / "s3-objects")
        s3_objects.install(self.objects)
        self._sources: dict[str, _Source] = {}
        self._sources_lock = threading.Lock()
        self._closed = threading.Event()
        self._flusher = threading.Thread(target=self._flush_periodically, name="sagelocal-state", daemon=True)

    @staticmethod
    def _lock_directory(path: Path):
        lock_file = open(path, "a+")  # noqa: SIM115 (held for the emulator's lifetime)
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.close()
            raise StateError(
                f"another sagelocal emulator is using the data directory {path.parent.parent}; "
                "stop it or give this one another --data-dir"
            ) from None
        return lock_file

    # -- sources ---------------------------------------------------------------------------------
    def register(
        self, name: str, capture: Callable[[], Any], restore: Callable[[Any], None], *, polled: bool = False
    ) -> None:
        with self._sources_lock:
            self._sources[name] = _Source(capture, restore, polled)

    def _source(self, name: str) -> _Source:
        with self._sources_lock:
            source = self._sources.get(name)
        if source is None and name.startswith(_MOTO_PREFIX):
            return self._register_moto(name[len(_MOTO_PREFIX) :])
        return source

    def _register_moto(self, service: str) -> _Source:
        def capture() -> dict[str, Any]:
            return dict(dict.items(get_backend(service)[self.account_id]))  # region -> backend

        def restore(backends: dict[str, Any]) -> None:
            account = get_backend(service)[self.account_id]
            for region, backend in backends.items():
                dict.__setitem__(account, region, backend)
                if service == "s3":  # moto's one cross-account index: bucket name -> owner
                    for bucket in backend.buckets:
                        s3_backends.bucket_accounts[bucket] = (region, self.account_id)

        with self._sources_lock:
            return self._sources.setdefault(_MOTO_PREFIX + service, _Source(capture, restore))

    # -- changes ---------------------------------------------------------------------------------
    def changed(self, name: str) -> None:
        """``name`` changed in the background: saved by the flusher soon."""
        source = self._source(name)
        if source is not None:
            source.bump()

    def save(self, name: str) -> None:
        """``name`` changed (the change is complete): return once a snapshot covering it is on disk."""
        source = self._source(name)
        if source is None or self._closed.is_set():
            return
        wanted = source.bump()
        with source.lock:
            if source.saved >= wanted:
                return  # a save that started after our change covered it
            self._write(name, source)

    def moto_wrote(self, service: str) -> None:
        """A request to moto's ``service`` changed it (it just returned)."""
        if _moto_backend_exists(service):
            self.save(_MOTO_PREFIX + service)

    def moto_changed(self, service: str) -> None:
        """Our code changed moto's ``service`` in the background (an upload, log lines)."""
        self.changed(_MOTO_PREFIX + service)

    def saving(self, name: str, handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
        """``handler`` (one of our services), saving ``name`` after each request that changed it."""

        def handle(request: Request) -> Response:
            response = handler(request)
            if response.status_code < 400 and changes_state(request.environ):
                self.save(name)
            return response

        return handle

    def _write(self, name: str, source: _Source, value: Any = None, *, captured: bool = False) -> None:
        """Capture (unless given) and store ``source``; the caller holds ``source.lock``."""
        covers = source.changes
        s3 = name == _MOTO_PREFIX + "s3"
        discarded = self.objects.take_discarded() if s3 else []
        try:
            for attempt in range(self._CAPTURE_ATTEMPTS):
                try:
                    if not captured:
                        value = source.capture()
                    with s3_objects.naming() as named:
                        payload = dumps(value)  # walks live objects: a concurrent change is retried
                    break
                except RuntimeError:  # "dictionary changed size during iteration"
                    if captured or attempt == self._CAPTURE_ATTEMPTS - 1:
                        raise
            if s3:
                self.objects.sync()  # the bodies it names, before the snapshot that names them
            self.store.save(name, payload)
        except Exception:
            for body in discarded:
                self.objects.discard(body)
            raise
        source.saved = covers
        if source.polled:
            source.last = value
        if discarded:
            # A body goes once a snapshot that no longer names it is on disk.
            self.objects.remove([body for body in discarded if body not in named])
            for body in discarded:
                if body in named:
                    self.objects.discard(body)

    # -- the flusher -----------------------------------------------------------------------------
    def start(self) -> None:
        self._flusher.start()

    def _flush_periodically(self) -> None:
        while not self._closed.wait(self.FLUSH_INTERVAL):
            self.flush()

    def flush(self) -> None:
        """Save every source that changed since its last save."""
        with self._sources_lock:
            sources = list(self._sources.items())
        for name, source in sources:
            try:
                with source.lock:
                    if source.polled:
                        value = source.capture()
                        if value != source.last:
                            self._write(name, source, value, captured=True)
                    elif source.changes > source.saved:
                        self._write(name, source)
            except Exception:  # a failed save is retried next round; the emulator keeps serving
                _logger.exception("could not save %s", name)

    def close(self) -> None:
        """Save what is pending and stop saving (what workloads do while being stopped is not kept)."""
        if self._closed.is_set():
            return
        self.flush()
        self._closed.set()
        if self._flusher.is_alive():
            self._flusher.join(5)
        self._lock_file.close()

    # -- start -----------------------------------------------------------------------------------
    def load(self) -> None:
        """Restore every saved source (moto's first: SageMaker redeploys models from S3), then
        remove what belonged to resources that no longer exist."""
        self.store.remove_temporaries()
        for scratch in SCRATCH_DIRECTORIES:  # before endpoints are redeployed into it
            sandbox.remove_tree(self.data_dir / scratch)  # unpacked Lambda packages may deny their owner
        names = self.store.names()
        bodies: set[str] = set()
        ordered = [n for n in names if n.startswith(_MOTO_PREFIX)] + [
            n for n in names if not n.startswith(_MOTO_PREFIX)
        ]
        for name in ordered:
            source = self._source(name)
            if source is None:
                _logger.warning("ignoring saved state %s: nothing restores it", name)
                continue
            payload = self.store.load(name)
            try:
                with s3_objects.naming() as named:
                    value = loads(payload)
            except Exception as error:
                raise StateError(
                    f"{self.store.path(name)} cannot be loaded ({type(error).__name__}: {error}); it may come "
                    f"from another sagelocal or moto version. Move {self.store.directory} away to start clean."
                ) from error
            source.restore(value)
            if source.polled:
                source.last = source.capture()
            bodies |= named
        removed = self.objects.sweep(bodies)
        if names:
            _logger.info("restored %s from %s (%d orphaned object bodies removed)", ", ".join(names),
                         self.store.directory, removed)  # fmt: skip
