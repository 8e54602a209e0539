"""The IMDB loader, the shipped sample, the split and the original-archive downloader (offline)."""

from __future__ import annotations

import functools
import hashlib
import io
import socket
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from workflows.datasets import imdb
from workflows.datasets.imdb import (
    SAMPLE_PATH,
    DownloadError,
    ReviewSets,
    default_source,
    download_original,
    load_reviews,
    shuffle_and_split,
)
from workflows.datasets.make_imdb_sample import make_sample

# --------------------------------------------------------------------------- helpers


def _extract(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:  # pragma: no cover - Python without extraction filters
            tar.extractall(dest)


def _write_layout(root: Path, per_class: dict[str, int]) -> None:
    """A fake aclImdb directory with ``per_class[split]`` reviews per sentiment, plus noise."""
    for split, count in per_class.items():
        for sentiment in ("pos", "neg"):
            folder = root / "aclImdb" / split / sentiment
            folder.mkdir(parents=True)
            for i in range(count):
                rating = 8 if sentiment == "pos" else 2
                (folder / f"{i}_{rating}.txt").write_text(f"{split} {sentiment} review {i}", encoding="utf-8")
    unsup = root / "aclImdb" / "train" / "unsup"
    unsup.mkdir(parents=True)
    (unsup / "0_0.txt").write_text("unlabelled", encoding="utf-8")
    (root / "aclImdb" / "imdb.vocab").write_text("the\nand\n", encoding="utf-8")
    (root / "aclImdb" / "train" / "urls_pos.txt").write_text("http://x\n", encoding="utf-8")


@pytest.fixture(scope="module")
def sample() -> ReviewSets:
    return load_reviews(SAMPLE_PATH)


# --------------------------------------------------------------------------- the shipped sample


def test_sample_is_shipped_and_small():
    assert SAMPLE_PATH.is_file()
    assert SAMPLE_PATH.name == "aclImdb_sample.tar.gz"
    assert SAMPLE_PATH.stat().st_size < 2_000_000


def test_sample_counts_and_labels(sample):
    assert len(sample.train_texts) == len(sample.train_labels) == 1000
    assert len(sample.test_texts) == len(sample.test_labels) == 400
    assert sample.train_labels.count(1) == sample.train_labels.count(0) == 500
    assert sample.test_labels.count(1) == sample.test_labels.count(0) == 200
    assert set(sample.train_labels) | set(sample.test_labels) == {0, 1}
    assert all(isinstance(text, str) and text.strip() for text in sample.train_texts + sample.test_texts)
    # Fixed order: positives first, then negatives.
    assert sample.train_labels == [1] * 500 + [0] * 500
    assert sample.test_labels == [1] * 200 + [0] * 200


def test_sample_layout_and_file_names():
    names = []
    with tarfile.open(SAMPLE_PATH) as tar:
        names = [member.name for member in tar.getmembers() if member.isfile()]
    assert len(names) == 1400
    assert all(imdb._parse_member(name) is not None for name in names)
    assert all(name.startswith("aclImdb/") for name in names)
    # Ratings follow the sentiment: pos 7-10, neg 1-4.
    for name in names:
        review = imdb._parse_member(name)
        assert (review.rating >= 7) if review.sentiment == "pos" else (review.rating <= 4)


def test_extracted_directory_reads_the_same(sample, tmp_path):
    _extract(SAMPLE_PATH, tmp_path)
    from_parent = load_reviews(tmp_path)
    from_root = load_reviews(tmp_path / "aclImdb")
    assert from_parent == sample
    assert from_root == sample


def test_sample_texts_are_real_reviews(sample):
    """The sample holds the labelled reviews themselves, including their <br /> markup."""
    assert any("<br />" in text for text in sample.train_texts)
    assert sum(len(text) for text in sample.train_texts) / 1000 > 300


def test_make_sample_is_deterministic_and_balanced(tmp_path):
    source = tmp_path / "source"
    _write_layout(source, {"train": 6, "test": 4})
    first, second = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    assert make_sample(source, first, seed=7, per_class={"train": 3, "test": 2}) == 10
    make_sample(source, second, seed=7, per_class={"train": 3, "test": 2})
    assert first.read_bytes() == second.read_bytes()

    sets = load_reviews(first)
    assert sets.train_labels == [1, 1, 1, 0, 0, 0]
    assert sets.test_labels == [1, 1, 0, 0]
    assert all(text.startswith("train pos") for text in sets.train_texts[:3])
    assert all(text.startswith("test neg") for text in sets.test_texts[2:])

    # The sample can itself be sampled (archive source), and a different seed picks differently.
    other = tmp_path / "c.tar.gz"
    make_sample(source, other, seed=8, per_class={"train": 3, "test": 2})
    assert load_reviews(other) != sets
    again = tmp_path / "d.tar.gz"
    make_sample(first, again, seed=1, per_class={"train": 3, "test": 2})
    assert load_reviews(again) == sets


def test_make_sample_refuses_too_few_reviews(tmp_path):
    _write_layout(tmp_path / "source", {"train": 2, "test": 2})
    with pytest.raises(ValueError, match="only 2 reviews"):
        make_sample(tmp_path / "source", tmp_path / "out.tar.gz", per_class={"train": 3, "test": 1})


# --------------------------------------------------------------------------- loading


def test_loader_ignores_unsup_and_other_files(tmp_path):
    _write_layout(tmp_path, {"train": 3, "test": 2})
    sets = load_reviews(tmp_path)
    assert sets.train_labels == [1, 1, 1, 0, 0, 0]
    assert sets.test_labels == [1, 1, 0, 0]
    assert "unlabelled" not in sets.train_texts


def test_loader_orders_by_numeric_id(tmp_path):
    folder = tmp_path / "aclImdb" / "train" / "pos"
    folder.mkdir(parents=True)
    for review_id in (10, 2, 1):
        (folder / f"{review_id}_9.txt").write_text(f"review {review_id}", encoding="utf-8")
    assert load_reviews(tmp_path).train_texts == ["review 1", "review 2", "review 10"]


def test_loader_reads_archive_with_any_member_order(tmp_path):
    archive = tmp_path / "shuffled.tar.gz"
    members = [
        ("aclImdb/test/neg/5_1.txt", "n5"),
        ("aclImdb/train/neg/3_2.txt", "n3"),
        ("aclImdb/train/pos/4_9.txt", "p4"),
        ("aclImdb/test/pos/1_10.txt", "p1"),
        ("aclImdb/train/unsup/1_0.txt", "u"),
    ]
    with tarfile.open(archive, "w:gz") as tar:
        for name, text in members:
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    sets = load_reviews(archive)
    assert (sets.train_texts, sets.train_labels) == (["p4", "n3"], [1, 0])
    assert (sets.test_texts, sets.test_labels) == (["p1", "n5"], [1, 0])


def test_loader_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_reviews(tmp_path / "missing.tar.gz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError):
        load_reviews(tmp_path / "empty")
    (tmp_path / "empty" / "aclImdb" / "train").mkdir(parents=True)
    with pytest.raises(ValueError, match="no reviews"):
        load_reviews(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("not an archive")
    with pytest.raises(ValueError, match="neither"):
        load_reviews(tmp_path / "notes.txt")


def test_default_source(monkeypatch, tmp_path):
    monkeypatch.delenv("SAGELOCAL_IMDB", raising=False)
    assert default_source() == SAMPLE_PATH
    monkeypatch.setenv("SAGELOCAL_IMDB", "")
    assert default_source() == SAMPLE_PATH
    monkeypatch.setenv("SAGELOCAL_IMDB", str(tmp_path / "aclImdb_v1.tar.gz"))
    assert default_source() == tmp_path / "aclImdb_v1.tar.gz"


# --------------------------------------------------------------------------- splitting


def test_shuffle_and_split_sizes(sample):
    split = shuffle_and_split(sample, seed=1, validation_size=400)
    assert len(split.validation_texts) == len(split.validation_labels) == 400
    assert len(split.train_texts) == len(split.train_labels) == 600
    assert len(split.test_texts) == len(split.test_labels) == 400
    assert shuffle_and_split(sample, seed=1, validation_size=0.4) == split


def test_shuffle_and_split_full_size_proportions():
    sets = ReviewSets([f"t{i}" for i in range(25_000)], [i % 2 for i in range(25_000)], ["x"] * 10, [0] * 10)
    split = shuffle_and_split(sets, seed=0)
    assert len(split.validation_texts) == 10_000
    assert len(split.train_texts) == 15_000
    assert set(split.train_texts).isdisjoint(split.validation_texts)


def test_shuffle_and_split_is_deterministic_and_keeps_pairs(sample):
    first = shuffle_and_split(sample, seed=42, validation_size=400)
    assert shuffle_and_split(sample, seed=42, validation_size=400) == first
    assert shuffle_and_split(sample, seed=43, validation_size=400) != first

    label_of = dict(zip(sample.train_texts, sample.train_labels, strict=True))
    label_of.update(zip(sample.test_texts, sample.test_labels, strict=True))
    for texts, labels in [
        (first.train_texts, first.train_labels),
        (first.validation_texts, first.validation_labels),
        (first.test_texts, first.test_labels),
    ]:
        assert all(label_of[text] == label for text, label in zip(texts, labels, strict=True))

    # Validation is the front of the shuffled train set, train the rest: together all of train.
    assert sorted(first.validation_texts + first.train_texts) == sorted(sample.train_texts)
    assert sorted(first.test_texts) == sorted(sample.test_texts)
    # Shuffled: not the loader's positives-first order.
    assert first.train_labels != sorted(first.train_labels, reverse=True)
    assert first.test_labels != sample.test_labels
    # Roughly balanced after shuffling.
    assert 150 < sum(first.validation_labels) < 250


def test_shuffle_and_split_does_not_modify_input(sample):
    before = (list(sample.train_texts), list(sample.test_labels))
    shuffle_and_split(sample, seed=3, validation_size=100)
    assert (sample.train_texts, sample.test_labels) == before


@pytest.mark.parametrize("size", [0, 1000, 5000, 0.0, 1.0, 1.5])
def test_shuffle_and_split_rejects_impossible_validation(sample, size):
    with pytest.raises(ValueError):
        shuffle_and_split(sample, seed=0, validation_size=size)


def test_shuffle_and_split_default_needs_full_data(sample):
    with pytest.raises(ValueError, match="fraction"):
        shuffle_and_split(sample, seed=0)


# --------------------------------------------------------------------------- downloading


@pytest.fixture
def fake_archive(tmp_path, monkeypatch) -> Path:
    """A small stand-in for aclImdb_v1.tar.gz, with the module's size and sha256 pointed at it."""
    source = tmp_path / "served"
    _write_layout(source, {"train": 2, "test": 1})
    archive = tmp_path / "remote" / "aclImdb_v1.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source / "aclImdb", arcname="aclImdb")
    with archive.open("ab") as handle:  # pad it so the progress bar has a few steps (> 1 MB)
        handle.write(b"\0" * 3_000_000)
    data = archive.read_bytes()
    monkeypatch.setattr(imdb, "IMDB_URL", archive.as_uri())
    monkeypatch.setattr(imdb, "IMDB_SIZE", len(data))
    monkeypatch.setattr(imdb, "IMDB_SHA256", hashlib.sha256(data).hexdigest())
    return archive


@pytest.fixture
def http_server(fake_archive, monkeypatch):
    """Serve the fake archive's folder on 127.0.0.1 and point IMDB_URL at it."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(fake_archive.parent))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setattr(imdb, "IMDB_URL", f"{base}/{fake_archive.name}")
    yield base
    server.shutdown()
    server.server_close()


def test_download_from_file_url_with_progress(fake_archive, tmp_path, capsys):
    cache = tmp_path / "cache"
    path = download_original(cache)
    assert path == cache / "aclImdb_v1.tar.gz"
    assert path.read_bytes() == fake_archive.read_bytes()
    assert not list(cache.glob("*.part"))
    progress = capsys.readouterr().err
    assert "100%" in progress and "MB" in progress and "aclImdb_v1.tar.gz" in progress
    assert progress.count("%") >= 3  # several steps, not one line at the end
    sets = load_reviews(path)
    assert (len(sets.train_texts), len(sets.test_texts)) == (4, 2)


def test_download_over_http_and_cache(http_server, fake_archive, tmp_path, capsys, monkeypatch):
    cache = tmp_path / "cache"
    path = download_original(cache)
    assert path.read_bytes() == fake_archive.read_bytes()
    assert "100%" in capsys.readouterr().err

    # A valid cached file is reused: no request is made (the URL now points nowhere).
    monkeypatch.setattr(imdb, "IMDB_URL", f"{http_server}/gone.tar.gz")
    assert download_original(cache) == path
    assert capsys.readouterr().err == ""


def test_corrupt_cache_is_downloaded_again(fake_archive, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "aclImdb_v1.tar.gz").write_bytes(b"x" * imdb.IMDB_SIZE)  # right size, wrong sha256
    path = download_original(cache)
    assert path.read_bytes() == fake_archive.read_bytes()


def test_size_mismatch_is_an_error(fake_archive, tmp_path, monkeypatch):
    monkeypatch.setattr(imdb, "IMDB_SIZE", imdb.IMDB_SIZE + 1)
    with pytest.raises(DownloadError, match="expected"):
        download_original(tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_checksum_mismatch_is_an_error(fake_archive, tmp_path, monkeypatch):
    monkeypatch.setattr(imdb, "IMDB_SHA256", "0" * 64)
    with pytest.raises(DownloadError, match="sha256"):
        download_original(tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_http_error_is_reported(http_server, tmp_path, monkeypatch):
    monkeypatch.setattr(imdb, "IMDB_URL", f"{http_server}/missing.tar.gz")
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_original(tmp_path / "cache")


def test_offline_is_a_clear_error(tmp_path, monkeypatch):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(imdb, "IMDB_URL", f"http://127.0.0.1:{port}/aclImdb_v1.tar.gz")
    with pytest.raises(DownloadError, match="offline") as raised:
        download_original(tmp_path / "cache")
    assert "SAGELOCAL_IMDB" in str(raised.value)
    assert not (tmp_path / "cache" / "aclImdb_v1.tar.gz").exists()


def test_real_constants():
    assert imdb.IMDB_URL == "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
    assert imdb.IMDB_SIZE == 84_125_825
    assert imdb.IMDB_SHA256 == "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"


def test_default_source_download_fetches_into_the_cache(fake_archive, tmp_path, monkeypatch):
    monkeypatch.setattr(imdb, "DOWNLOAD_CACHE", tmp_path / "cache")
    monkeypatch.setenv("SAGELOCAL_IMDB", "download")
    source = default_source()
    assert source == tmp_path / "cache" / imdb.ARCHIVE_NAME
    assert source.read_bytes() == fake_archive.read_bytes()
