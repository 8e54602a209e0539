"""Names that become files stay inside their directory.

S3 keys are opaque strings: ``data/../../home/me/.bashrc`` is a valid key. Wherever the emulator
turns a key (or an archive member's name) into a file (training channels, transform inputs,
model artifacts, Lambda code, source archives), the path goes through :func:`contained`, which
refuses a name that would resolve outside the directory, including through a symbolic link already
there. Callers check every name before writing any, so a refused download writes nothing.
"""

from __future__ import annotations

import tarfile
from pathlib import Path


class EscapeError(ValueError):
    """A name that would put a file outside the directory it belongs in; the message names it."""

    def __init__(self, what: str, name: str, directory: str):
        super().__init__(f"{what} '{name}' would be written outside {directory}; nothing was written.")
        self.name = name


def contained(
    directory: Path,
    name: str,
    *,
    what: str,
    shown_as: str | None = None,
    may_be_directory_itself: bool = False,
) -> Path:
    """``directory / name``, resolved, if it lies strictly inside ``directory``; else EscapeError.

    ``what`` says what the name is (e.g. "The S3 key"), ``shown_as`` how to show the directory in
    the message (e.g. the container's path, /opt/ml/input/data/train), defaulting to its real path.
    """
    base = directory.resolve()
    path = (base / name).resolve()
    if base not in path.parents and not (may_be_directory_itself and path == base):
        raise EscapeError(what, name, shown_as or str(directory))
    return path


def extract_tar(
    archive: tarfile.TarFile, destination: Path, *, what: str, shown_as: str | None = None
) -> None:
    """Unpack every member inside ``destination`` or none: links and names that escape are refused."""
    for member in archive.getmembers():
        contained(
            destination,
            member.name,
            what=f"{what}: the member",
            shown_as=shown_as,
            may_be_directory_itself=member.isdir(),
        )
        if member.issym() or member.islnk():
            target = member.linkname if member.islnk() else str(Path(member.name).parent / member.linkname)
            contained(destination, target, what=f"{what}: the link {member.name} to", shown_as=shown_as)
        if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
            raise EscapeError(f"{what}: the special file", member.name, shown_as or str(destination))
    if not hasattr(tarfile, "data_filter"):
        # Python before 3.10.12 / 3.11.4 (Debian 12's own is 3.11.2) has no extraction filters;
        # every member was checked above, so a plain extraction is as safe.
        archive.extractall(destination)
        return
    try:
        archive.extractall(destination, filter="data")
    except tarfile.FilterError as error:
        raise EscapeError(
            f"{what}: the member", getattr(error.tarinfo, "name", "?"), shown_as or str(destination)
        ) from None
