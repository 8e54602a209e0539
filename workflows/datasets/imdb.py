"""The Large Movie Review Dataset v1.0 (IMDB, Maas et al. 2011) for workflow 2a.

Layout (both in the original archive and in the sample shipped with this project)::

    aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt      pos -> label 1, neg -> label 0

The original archive also holds ``train/unsup`` (unlabelled reviews) and word lists; they are
ignored.

- :func:`load_reviews` reads an extracted directory or a ``.tar.gz`` (streamed, never extracted
  to disk). Reviews come back in a fixed order (per split: positives then negatives, each by
  numeric id), whatever the source, so a seeded shuffle gives the same split everywhere.
- :func:`download_original` fetches the original 84 MB archive from ai.stanford.edu into a cache.
- :func:`shuffle_and_split` makes the train / validation / test sets of the workflow.
- :data:`SAMPLE_PATH` is a small labelled sample shipped with the project (1,000 train and
  400 test reviews, balanced); :func:`default_source` picks ``$SAGELOCAL_IMDB`` or the sample.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import sys
import tarfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "ARCHIVE_NAME",
    "ENV_VAR",
    "IMDB_SHA256",
    "IMDB_SIZE",
    "IMDB_URL",
    "SAMPLE_PATH",
    "DownloadError",
    "ReviewFile",
    "ReviewSets",
    "SplitSets",
    "default_source",
    "download_original",
    "iter_review_files",
    "load_reviews",
    "shuffle_and_split",
]

IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
IMDB_SIZE = 84_125_825
IMDB_SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
ARCHIVE_NAME = "aclImdb_v1.tar.gz"

#: Environment variable naming the data to use (an extracted directory or a .tar.gz).
ENV_VAR = "SAGELOCAL_IMDB"

#: Small labelled sample shipped with the project (see ``make_imdb_sample``).
SAMPLE_PATH = Path(__file__).resolve().parent / "data" / "aclImdb_sample.tar.gz"

SPLITS = ("train", "test")
SENTIMENTS = ("pos", "neg")
LABELS = {"pos": 1, "neg": 0}

_MEMBER = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")
_CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """The original archive could not be downloaded or did not verify."""


class ReviewFile(NamedTuple):
    """One review file of the layout: where it sits and what it is named."""

    split: str  # "train" or "test"
    sentiment: str  # "pos" or "neg"
    id: int
    rating: int  # 1-10, from the file name
    name: str  # path inside the archive / relative to the directory holding aclImdb/

    @property
    def label(self) -> int:
        return LABELS[self.sentiment]

    @property
    def sort_key(self) -> tuple[int, int, int]:
        return SPLITS.index(self.split), SENTIMENTS.index(self.sentiment), self.id


@dataclass
class ReviewSets:
    """Labelled reviews as in the data set: 1 = positive, 0 = negative."""

    train_texts: list[str] = field(default_factory=list)
    train_labels: list[int] = field(default_factory=list)
    test_texts: list[str] = field(default_factory=list)
    test_labels: list[int] = field(default_factory=list)


@dataclass
class SplitSets:
    """The workflow's sets: shuffled train split into validation (first part) and train (rest)."""

    train_texts: list[str]
    train_labels: list[int]
    validation_texts: list[str]
    validation_labels: list[int]
    test_texts: list[str]
    test_labels: list[int]


# --------------------------------------------------------------------------- reading


def _parse_member(name: str) -> ReviewFile | None:
    match = _MEMBER.search(name.replace("\\", "/"))
    if match is None:
        return None
    split, sentiment, review_id, rating = match.groups()
    return ReviewFile(split, sentiment, int(review_id), int(rating), name)


def _is_archive(source: Path) -> bool:
    return source.is_file() and (source.name.endswith((".tar.gz", ".tgz")) or tarfile.is_tarfile(source))


def _dataset_root(source: Path) -> Path:
    """The ``aclImdb`` directory: ``source`` itself or ``source/aclImdb``."""
    if (source / "aclImdb").is_dir():
        return source / "aclImdb"
    if any((source / split).is_dir() for split in SPLITS):
        return source
    raise FileNotFoundError(f"{source} holds neither aclImdb/ nor train/ and test/ review folders")


def iter_review_files(source: Path) -> Iterator[tuple[ReviewFile, Callable[[], bytes]]]:
    """Yield ``(review file, read)`` for every labelled review in ``source``, in source order.

    ``source`` is a directory (holding ``aclImdb/`` or being it) or a tar archive. ``read()``
    returns the file's bytes; for an archive, which is streamed, call it before taking the next
    item (it is only valid until then).
    """
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"IMDB data not found: {source}")
    if source.is_dir():
        root = _dataset_root(source)
        for path in sorted(root.glob("*/*/*.txt")):
            review = _parse_member("aclImdb/" + path.relative_to(root).as_posix())
            if review is not None:
                yield review, path.read_bytes
        return
    if not _is_archive(source):
        raise ValueError(f"{source} is neither a directory nor a tar archive")
    with tarfile.open(source, mode="r|*") as archive:
        for member in archive:
            if not member.isfile():
                continue
            review = _parse_member(member.name)
            if review is None:
                continue
            handle = archive.extractfile(member)
            if handle is None:  # pragma: no cover - isfile() members always have data
                continue
            yield review, handle.read


def load_reviews(source: Path) -> ReviewSets:
    """Read the labelled train and test reviews from a directory or a ``.tar.gz``.

    Reviews are ordered per split by sentiment (positives first) then numeric id, so the result
    does not depend on file-system or archive order.
    """
    found: list[tuple[ReviewFile, str]] = []
    for review, read in iter_review_files(source):
        found.append((review, read().decode("utf-8", errors="replace")))
    if not found:
        raise ValueError(f"no reviews found in {source} (expected aclImdb/{{train,test}}/{{pos,neg}}/*.txt)")
    found.sort(key=lambda item: item[0].sort_key)
    sets = ReviewSets()
    for review, text in found:
        if review.split == "train":
            sets.train_texts.append(text)
            sets.train_labels.append(review.label)
        else:
            sets.test_texts.append(text)
            sets.test_labels.append(review.label)
    return sets


#: ``SAGELOCAL_IMDB=download``: fetch the original archive (once, verified) into this cache.
DOWNLOAD_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sagelocal"


def default_source() -> Path:
    """Where the workflow reads IMDB from: ``$SAGELOCAL_IMDB`` (a directory or .tar.gz, or
    ``download`` for the original archive from ai.stanford.edu), else the shipped sample."""
    configured = os.environ.get(ENV_VAR, "").strip()
    if configured == "download":
        return download_original(DOWNLOAD_CACHE)
    if configured:
        return Path(configured).expanduser()
    return SAMPLE_PATH


# --------------------------------------------------------------------------- splitting


def shuffle_and_split(sets: ReviewSets, seed: int, validation_size: int | float = 10_000) -> SplitSets:
    """Shuffle train and test (seeded), then take validation from the front of the shuffled train.

    As in the original workflow: of the 25,000 train reviews the first 10,000 after shuffling
    are validation and the other 15,000 train. ``validation_size`` is a count, or a float
    between 0 and 1 for a fraction of train (e.g. 0.4 for the same proportion on a sample).
    """
    n_train = len(sets.train_texts)
    if len(sets.train_labels) != n_train or len(sets.test_labels) != len(sets.test_texts):
        raise ValueError("texts and labels differ in length")
    if isinstance(validation_size, float):
        if not 0.0 < validation_size < 1.0:
            raise ValueError(f"a fractional validation_size must be between 0 and 1, not {validation_size}")
        validation_size = round(n_train * validation_size)
    if not 0 < validation_size < n_train:
        raise ValueError(
            f"validation_size={validation_size} leaves no train or no validation reviews out of {n_train};"
            " pass a smaller count or a fraction such as 0.4"
        )
    rng = random.Random(seed)
    train_order = list(range(n_train))
    rng.shuffle(train_order)
    test_order = list(range(len(sets.test_texts)))
    rng.shuffle(test_order)

    train_texts = [sets.train_texts[i] for i in train_order]
    train_labels = [sets.train_labels[i] for i in train_order]
    return SplitSets(
        train_texts=train_texts[validation_size:],
        train_labels=train_labels[validation_size:],
        validation_texts=train_texts[:validation_size],
        validation_labels=train_labels[:validation_size],
        test_texts=[sets.test_texts[i] for i in test_order],
        test_labels=[sets.test_labels[i] for i in test_order],
    )


# --------------------------------------------------------------------------- downloading


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _is_valid(path: Path) -> bool:
    return path.is_file() and path.stat().st_size == IMDB_SIZE and _sha256(path) == IMDB_SHA256


def _progress(done: int, total: int) -> str:
    mb = 1_000_000
    percent = min(100, done * 100 // total) if total else 0
    return f"\rDownloading {ARCHIVE_NAME}: {percent:3d}% ({done / mb:.1f}/{total / mb:.1f} MB)"


def download_original(cache_dir: Path) -> Path:
    """Download the original archive into ``cache_dir`` (once) and return its path.

    A cached file is reused when its size and sha256 match; otherwise the archive is fetched
    from ``IMDB_URL`` with a progress bar on stderr, verified, and moved into place atomically.
    Raises :class:`DownloadError` when offline or when the download does not verify.
    """
    cache_dir = Path(cache_dir)
    target = cache_dir / ARCHIVE_NAME
    if _is_valid(target):
        return target

    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    done = 0
    try:
        with urllib.request.urlopen(IMDB_URL, timeout=60) as response, partial.open("wb") as out:
            total = int(response.headers.get("Content-Length") or IMDB_SIZE)
            shown = ""
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                line = _progress(done, total)
                if line != shown:
                    sys.stderr.write(line)
                    sys.stderr.flush()
                    shown = line
            sys.stderr.write("\n")
    except (urllib.error.URLError, OSError) as exc:
        partial.unlink(missing_ok=True)
        if isinstance(exc, urllib.error.HTTPError):
            reason = f"HTTP {exc.code} {exc.reason}"
        elif isinstance(exc, urllib.error.URLError):
            reason = f"{exc.reason} (are you offline?)"
        else:
            reason = str(exc)
        raise DownloadError(
            f"could not download {IMDB_URL}: {reason}. Download it by hand and put it at {target},"
            f" or point ${ENV_VAR} at an aclImdb directory or .tar.gz."
        ) from exc

    if done != IMDB_SIZE:
        partial.unlink(missing_ok=True)
        raise DownloadError(f"{IMDB_URL}: got {done:,} bytes, expected {IMDB_SIZE:,} (truncated download?)")
    if digest.hexdigest() != IMDB_SHA256:
        partial.unlink(missing_ok=True)
        raise DownloadError(f"{IMDB_URL}: sha256 {digest.hexdigest()} does not match {IMDB_SHA256}")
    os.replace(partial, target)
    return target
