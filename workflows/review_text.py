"""Review text processing shared by IMDB training (workflow 2a) and the sentiment Lambda function.

This one module turns a movie review into the tokens that make up the bag of words, both when
the vocabulary is fitted and the training files are written, and when the Lambda function
answers a request. The original project split words with ``str.split()`` in its Lambda while
training used CountVectorizer's tokenizer, so the served model saw different features from the
ones it was trained on; sharing this module removes that skew.

It is copied verbatim into the Lambda deployment package, so it imports only the Python standard
library and ``nltk.stem.porter`` (no scikit-learn, no numpy, no NLTK corpus downloads).

Rules, applied in this order:

1. lower-case;
2. replace ``<br />`` line breaks (``<br /><br />``, ``<br/>``, ``<br>``) with a space;
3. replace ``-`` and ``/`` with a space;
4. delete the characters ``. ; : ! ' ? , " ( ) [ ]``;
5. tokenize with ``(?u)\\b\\w\\w+\\b`` (CountVectorizer's default token pattern);
6. stem every token with NLTK's PorterStemmer.

To fit the vocabulary with scikit-learn, hand ``tokenize`` to CountVectorizer and switch off
its own preprocessing, e.g. ``CountVectorizer(max_features=VOCABULARY_SIZE, tokenizer=tokenize,
lowercase=False, token_pattern=None)``; then save ``{word: int(index)}`` from ``vocabulary_``
as the ``vocabulary.json`` the Lambda function reads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache

from nltk.stem.porter import PorterStemmer

__all__ = ["VOCABULARY_SIZE", "bag_of_words", "normalize", "to_csv_row", "tokenize"]

#: Number of columns of the bag of words (CountVectorizer ``max_features``).
VOCABULARY_SIZE = 5000

_LINE_BREAK = re.compile(r"<br\s*/?>")
_TOKEN = re.compile(r"(?u)\b\w\w+\b")
_TRANSLATION = str.maketrans({"-": " ", "/": " ", **dict.fromkeys(".;:!'?,\"()[]")})

_STEMMER = PorterStemmer()


@lru_cache(maxsize=262_144)
def _stem(word: str) -> str:
    return _STEMMER.stem(word)


def normalize(text: str) -> str:
    """Apply the character rules (1-4 above) and return the cleaned text."""
    text = _LINE_BREAK.sub(" ", text.lower())
    return text.translate(_TRANSLATION)


def tokenize(text: str) -> list[str]:
    """Return the stemmed tokens of ``text``, in order, duplicates kept."""
    return [_stem(token) for token in _TOKEN.findall(normalize(text))]


def bag_of_words(text: str, vocabulary: Mapping[str, int]) -> list[int]:
    """Count the tokens of ``text`` into a vector of ``len(vocabulary)`` columns.

    ``vocabulary`` maps a (stemmed) word to its column index, 0 to ``len(vocabulary) - 1``.
    Words not in the vocabulary are ignored.
    """
    counts = [0] * len(vocabulary)
    for token in tokenize(text):
        column = vocabulary.get(token)
        if column is not None:
            counts[column] += 1
    return counts


def to_csv_row(counts: Iterable[int]) -> str:
    """Join a counts vector with commas, no newline: a ``text/csv`` request body for the endpoint."""
    return ",".join(str(count) for count in counts)
