"""Build the sentiment Lambda's deployment package: the one zip both targets deploy.

The package holds the function (``lambda/sentiment``), the text module shared with training
(``workflows/review_text.py``, so serving tokenizes exactly as training did), the vocabulary, and
the installed distributions the text module needs (nltk and its requirements). The Lambda runtime
provides only boto3 and botocore, locally as on AWS, so anything missing here fails in both places.
Compiled dependencies (nltk needs ``regex``) are taken from this interpreter: deploy with the
matching runtime (``RUNTIME``) on x86_64 Linux.
"""

from __future__ import annotations

import io
import json
import sys
import zipfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

from workflows import review_text

FUNCTION_SOURCE = Path(__file__).resolve().parents[1] / "lambda" / "sentiment"
HANDLER = "lambda_function.lambda_handler"
RUNTIME = f"python{sys.version_info.major}.{sys.version_info.minor}"
#: What the text module imports beyond the standard library.
VENDORED_DISTRIBUTIONS = ("nltk",)


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


def _distribution_files(distribution: str):
    for file in metadata.files(distribution) or []:
        if "__pycache__" in file.parts or file.suffix == ".pyc" or str(file).startswith(".."):
            continue
        yield file, file.locate()


def build(vocabulary: dict[str, int]) -> bytes:
    """The zip, in memory: function + text module + vocabulary.json + vendored distributions."""
    distributions: set[str] = set()
    for name in VENDORED_DISTRIBUTIONS:
        _requirements(name, distributions)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as package:
        for path in sorted(FUNCTION_SOURCE.glob("*.py")):
            package.write(path, path.name)
        package.write(Path(review_text.__file__), "review_text.py")
        # writestr's default mode is 0600; Lambda runs the function as another user, who must read it.
        vocabulary_entry = zipfile.ZipInfo("vocabulary.json")
        vocabulary_entry.external_attr = 0o100644 << 16
        vocabulary_entry.compress_type = zipfile.ZIP_DEFLATED
        package.writestr(vocabulary_entry, json.dumps(vocabulary, sort_keys=True))
        for distribution in sorted(distributions):
            for relative, located in _distribution_files(distribution):
                if Path(located).is_file():
                    package.write(located, str(relative))
    return buffer.getvalue()
