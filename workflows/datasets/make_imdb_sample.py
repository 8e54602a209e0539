"""Make the small labelled IMDB sample shipped with the project.

    python -m workflows.datasets.make_imdb_sample SOURCE DEST [--seed N]

SOURCE is the labelled IMDB data (an ``aclImdb`` directory or a ``.tar.gz`` such as
``../shared/data/aclImdb_labeled.tar.gz`` or the original ``aclImdb_v1.tar.gz``); DEST the
``.tar.gz`` to write (the shipped one is ``workflows/datasets/data/aclImdb_sample.tar.gz``).

The selection is deterministic: per split and sentiment, the review files are sorted by id and
a seeded ``random.Random`` picks 500 train and 200 test reviews. The archive keeps the
original layout and file names (``aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt``) and is
written byte-for-byte reproducibly (fixed order, zero mtimes, no owner names).
"""

from __future__ import annotations

import argparse
import gzip
import io
import random
import sys
import tarfile
from pathlib import Path

from workflows.datasets.imdb import SENTIMENTS, SPLITS, ReviewFile, iter_review_files

DEFAULT_SEED = 2011  # the data set's publication year
DEFAULT_PER_CLASS = {"train": 500, "test": 200}


def choose(reviews: list[ReviewFile], seed: int, per_class: dict[str, int]) -> list[ReviewFile]:
    """Pick ``per_class[split]`` reviews for each split and sentiment, deterministically."""
    rng = random.Random(seed)
    chosen: list[ReviewFile] = []
    for split in SPLITS:
        for sentiment in SENTIMENTS:
            group = sorted(
                (r for r in reviews if r.split == split and r.sentiment == sentiment), key=lambda r: r.id
            )
            wanted = per_class[split]
            if len(group) < wanted:
                raise ValueError(f"{split}/{sentiment}: only {len(group)} reviews, {wanted} wanted")
            chosen.extend(sorted(rng.sample(group, wanted), key=lambda r: r.id))
    return chosen


def _tar_info(name: str, size: int | None = None) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    if size is None:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.size = size
        info.mode = 0o644
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_sample(chosen: list[ReviewFile], contents: dict[str, bytes], dest: Path) -> None:
    """Write the chosen reviews as ``aclImdb/{split}/{sentiment}/<id>_<rating>.txt`` into ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as archive:
            archive.addfile(_tar_info("aclImdb"))
            for split in SPLITS:
                archive.addfile(_tar_info(f"aclImdb/{split}"))
                for sentiment in SENTIMENTS:
                    archive.addfile(_tar_info(f"aclImdb/{split}/{sentiment}"))
                    for review in chosen:
                        if review.split == split and review.sentiment == sentiment:
                            data = contents[review.name]
                            name = f"aclImdb/{split}/{sentiment}/{review.id}_{review.rating}.txt"
                            archive.addfile(_tar_info(name, len(data)), io.BytesIO(data))


def make_sample(
    source: Path, dest: Path, seed: int = DEFAULT_SEED, per_class: dict[str, int] | None = None
) -> int:
    """Select and write the sample; return the number of reviews written."""
    per_class = per_class or DEFAULT_PER_CLASS
    reviews = [review for review, _ in iter_review_files(source)]
    chosen = choose(reviews, seed, per_class)
    wanted = {review.name for review in chosen}
    contents = {review.name: read() for review, read in iter_review_files(source) if review.name in wanted}
    write_sample(chosen, contents, dest)
    return len(chosen)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="labelled IMDB data: aclImdb directory or .tar.gz")
    parser.add_argument("dest", type=Path, help="sample .tar.gz to write")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--train-per-class", type=int, default=DEFAULT_PER_CLASS["train"])
    parser.add_argument("--test-per-class", type=int, default=DEFAULT_PER_CLASS["test"])
    args = parser.parse_args(argv)
    count = make_sample(
        args.source, args.dest, args.seed, {"train": args.train_per_class, "test": args.test_per_class}
    )
    print(f"wrote {count} reviews to {args.dest} ({args.dest.stat().st_size:,} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
