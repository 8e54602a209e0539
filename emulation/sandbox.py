"""Run untrusted code with only what the cloud service would give it, through bubblewrap (``bwrap``).

A Lambda function on AWS sees its package read-only at /var/task, a private /tmp and its own
environment; a SageMaker container sees its job directory at /opt/ml. Neither sees the host's files,
processes or the emulator's secrets. :class:`Sandbox` describes such a view, and
:meth:`Sandbox.command` turns it into the ``bwrap`` command line that runs a program inside it: new
user, PID, IPC, UTS and cgroup namespaces, its own network namespace unless asked otherwise (with
only a loopback interface), no capabilities, and only the bound paths in its file system, writable
only where a bind says so. The
process dies with the one that started it if asked; :func:`launch` starts it from a thread that
lives as long as this process, so that "the one that started it" is this process, however it ends.

Where bubblewrap cannot run (macOS, most containers without user namespaces) :func:`available` is
False and :func:`warn_unavailable` says so once; callers then run the program directly with a
scrubbed environment, which isolates nothing else. ``SAGELOCAL_SANDBOX=0`` turns the sandbox off.

The environment is not the sandbox's business: bwrap passes on the one it is started with, so the
caller hands the program exactly its own variables (``subprocess.Popen(env=...)``).
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import os
import shutil
import site
import stat
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_logger = logging.getLogger("sagelocal.sandbox")

#: What every sandboxed program needs from the host, read-only: programs, libraries, /etc.
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")


@dataclass(frozen=True)
class Bind:
    """A host path seen at ``target`` inside the sandbox; read-only unless ``writable``."""

    source: Path
    target: str
    writable: bool = False


@dataclass(frozen=True)
class Sandbox:
    """What a sandboxed program sees.

    ``binds`` and ``empty`` paths (an empty in-memory directory, e.g. to hide a bound directory's
    subdirectory) are mounted outermost first, so one may sit inside another;
    ``workdir`` is the program's working directory; ``network=False`` gives it its own network
    namespace with only loopback; ``uid``/``gid`` are its ids inside (the host sees the caller's).
    ``die_with_parent`` kills the sandbox when the *thread* that started it ends (the kernel's
    parent-death signal follows threads): use it only from a thread that lives as long as the
    sandbox should, or start the sandbox with :func:`launch`.
    """

    binds: Sequence[Bind]
    empty: Sequence[str] = ()
    workdir: str = "/"
    network: bool = False
    uid: int | None = None
    gid: int | None = None
    die_with_parent: bool = False

    def command(self, argv: Sequence[str]) -> list[str]:
        """The bwrap command line that runs ``argv`` inside this sandbox."""
        command = [bwrap_path(), "--unshare-all", "--cap-drop", "ALL"]
        if self.die_with_parent:
            command.append("--die-with-parent")
        if self.network:
            command.append("--share-net")
        if self.uid is not None:
            command += ["--uid", str(self.uid)]
        if self.gid is not None:
            command += ["--gid", str(self.gid)]
        command += ["--proc", "/proc", "--dev", "/dev"]
        # Outer mounts before the ones inside them, whatever order they were given in: a private
        # /tmp must not hide an interpreter that lives under /tmp (a tox or CI virtualenv), and an
        # empty directory inside a bind must come after it. Same depth: the order given.
        mounts = [("--bind" if b.writable else "--ro-bind", str(b.source), b.target) for b in self.binds]
        mounts += [("--tmpfs", path) for path in self.empty]
        for mount in sorted(mounts, key=lambda m: len(Path(m[-1]).parts)):
            command += list(mount)
        # The root itself (bwrap's scratch tmpfs, holding the mount points) is read-only too: the
        # program writes only where a writable bind (or an ``empty`` directory) lets it.
        command += ["--remount-ro", "/", "--chdir", self.workdir, "--", *argv]
        return command


def system_binds() -> list[Bind]:
    """The host's programs, libraries and /etc, read-only at their own paths (those that exist here)."""
    # Resolved, so that a merged /usr's links (/lib -> usr/lib) become binds of their targets.
    return [Bind(Path(path).resolve(), path) for path in SYSTEM_PATHS if os.path.isdir(path)]


def python_binds() -> tuple[list[Bind], list[str]]:
    """(binds, empty): this interpreter and its standard library, read-only, without its site-packages.

    The interpreter keeps its own path, so ``sys.executable`` works inside; installed packages are
    hidden so that only what the caller binds in is importable (or even readable).
    """
    prefixes = dict.fromkeys(Path(p).resolve() for p in (sys.base_prefix, sys.prefix))
    binds = [Bind(prefix, str(prefix)) for prefix in prefixes if not _under_system_paths(prefix)]
    site_dirs = [*site.getsitepackages(), site.getusersitepackages()]
    empty = [str(Path(d).resolve()) for d in site_dirs if os.path.isdir(d)]
    return binds, list(dict.fromkeys(empty))


def _under_system_paths(path: Path) -> bool:
    return any(path == Path(p) or Path(p) in path.parents for p in SYSTEM_PATHS)


def bwrap_path() -> str:
    return shutil.which("bwrap") or "bwrap"


@functools.cache
def unavailable_reason() -> str | None:
    """None when bubblewrap runs here; else why not (checked once per process)."""
    if os.environ.get("SAGELOCAL_SANDBOX", "1").strip().lower() in {"0", "false", "no", "off"}:
        return "SAGELOCAL_SANDBOX=0"
    if sys.platform != "linux":
        return f"bubblewrap needs Linux (this is {sys.platform})"
    if shutil.which("bwrap") is None:
        return "bubblewrap (bwrap) is not installed"
    probe = Sandbox(system_binds()).command(["/bin/true"])
    try:
        result = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"bwrap did not start: {error}"
    if result.returncode != 0:
        return f"bwrap cannot create its namespaces here: {result.stderr.strip() or result.returncode}"
    return None


def available() -> bool:
    return unavailable_reason() is None


@functools.cache
def warn_unavailable(what: str) -> None:
    """Say once per process (and per ``what``) that ``what`` runs without a sandbox, and why."""
    _logger.warning(
        "%s run without a sandbox (%s): they get a scrubbed environment but can read and write "
        "whatever this user can. Install bubblewrap where user namespaces are allowed to isolate them.",
        what,
        unavailable_reason(),
    )


def private_directory(path: Path) -> Path:
    """``path`` as a directory only this user can enter (mode 0700), made if missing.

    Refuses a path that is a symbolic link, belongs to another user, or sits in a directory that
    others may rename entries of (writable by group or others without the sticky bit): whoever
    controls such a place controls what the emulator later reads back from it.
    """
    path = Path(path)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise PermissionError(f"{path} is not a directory (a symbolic link?); refusing to use it")
    if info.st_uid != os.getuid():
        raise PermissionError(f"{path} belongs to user id {info.st_uid}, not this user; refusing to use it")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)
    parent = os.stat(path.parent)
    if parent.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not parent.st_mode & stat.S_ISVTX:
        if parent.st_uid != os.getuid():
            raise PermissionError(f"{path.parent} is writable by other users; refusing to keep files in it")
        os.chmod(path.parent, stat.S_IMODE(parent.st_mode) & ~(stat.S_IWGRP | stat.S_IWOTH))
    return path


def remove_tree(path: Path) -> None:
    """Remove a directory tree, also one whose modes deny its owner (e.g. a package unpacked with only
    its world permissions, which a sandboxed program got to see as on the cloud)."""

    def open_up(directory: str) -> None:  # top-down: a directory must be opened before it is listed
        try:
            os.chmod(directory, 0o700)
            entries = list(os.scandir(directory))
        except OSError:
            return
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                open_up(entry.path)

    if os.path.isdir(path) and not os.path.islink(path):
        open_up(str(path))
    shutil.rmtree(path, ignore_errors=True)


def without_capabilities(argv: Sequence[str], die_with_parent: bool = False) -> list[str]:
    """The command line that runs ``argv`` with no capabilities, for a program run without a sandbox.

    For root, through util-linux's ``setpriv`` with empty bounding and inheritable sets: the program
    then obeys file modes (no CAP_DAC_OVERRIDE) as an unprivileged user does. Other users have no
    capabilities to drop. ``die_with_parent`` as for :class:`Sandbox`, but it reaches only the
    program itself, not what it starts (there is no PID namespace to end).
    """
    options = ["--bounding-set=-all", "--inh-caps=-all"] if os.getuid() == 0 else []
    if die_with_parent:
        options[:0] = ["--pdeathsig", "KILL"]
    if not options:
        return list(argv)
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        _logger.warning(
            "setpriv (util-linux) is missing: programs run without a sandbox keep root's capabilities "
            "and may outlive the emulator"
        )
        return list(argv)
    return [setpriv, *options, "--", *argv]


#: The one thread that starts long-lived sandboxes (see :func:`launch`); it ends with the process.
_launcher = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandbox-launcher")


def launch(command: Sequence[str], **popen_arguments) -> subprocess.Popen:
    """``subprocess.Popen(command, ...)``, started from one thread that lives as long as this process.

    The kernel's parent-death signal (``--die-with-parent``, ``setpriv --pdeathsig``) fires when the
    thread that forked the program ends. Started from a request's thread, a pooled Lambda worker
    would die with that request; started here, it dies when this process does, whether it returns,
    is killed by SIGKILL or crashes.
    """
    return _launcher.submit(subprocess.Popen, list(command), **popen_arguments).result()
