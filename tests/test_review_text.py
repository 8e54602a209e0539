"""The review text module shared by IMDB training and the sentiment Lambda function."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from workflows import review_text
from workflows.review_text import VOCABULARY_SIZE, bag_of_words, normalize, to_csv_row, tokenize

MODULE_PATH = Path(review_text.__file__)


def test_vocabulary_size():
    assert VOCABULARY_SIZE == 5000


def test_lower_cases_and_deletes_punctuation():
    assert tokenize('Hello, WORLD! "Great" (really) [sic]; yes: no? fine.') == [
        "hello",
        "world",
        "great",
        "realli",
        "sic",
        "ye",
        "no",
        "fine",
    ]


def test_apostrophes_are_deleted_not_split():
    # "don't" -> "dont": the apostrophe goes, the word stays whole.
    assert tokenize("I don't think it's bad") == ["dont", "think", "it", "bad"]


@pytest.mark.parametrize("line_break", ["<br /><br />", "<br />", "<br/>", "<br>", "<BR />"])
def test_line_breaks_become_spaces(line_break):
    assert tokenize(f"great{line_break}movie") == ["great", "movi"]
    assert "br" not in tokenize(f"end.{line_break}{line_break}Start")


def test_hyphens_and_slashes_split_words():
    assert tokenize("a well-made film/movie, 10/10") == ["well", "made", "film", "movi", "10", "10"]
    assert normalize("x-y/z") == "x y z"


def test_single_characters_are_not_tokens():
    assert tokenize("a I x 7 ok") == ["ok"]


def test_stemming():
    assert tokenize("loved loving loves") == ["love", "love", "love"]
    assert tokenize("movies films acting") == ["movi", "film", "act"]


def test_empty_text():
    assert tokenize("") == []
    assert tokenize("  ... !!! ") == []


def test_tokens_match_countvectorizer_default_pattern():
    """Before stemming, the tokens are exactly CountVectorizer's default tokens of the cleaned text."""
    from sklearn.feature_extraction.text import CountVectorizer

    analyzer = CountVectorizer().build_analyzer()
    text = "It's a 10/10 sci-fi <br /><br />masterpiece: café naïve_word (1999) -- x y"
    cleaned = normalize(text)
    stemmed = tokenize(text)
    assert len(analyzer(cleaned)) == len(stemmed)
    assert stemmed == [review_text._stem(token) for token in analyzer(cleaned)]


def test_usable_as_countvectorizer_tokenizer():
    from sklearn.feature_extraction.text import CountVectorizer

    texts = ["I loved this movie<br /><br />Loving it!", "Terrible, boring movie. Hated it."]
    vectorizer = CountVectorizer(tokenizer=tokenize, lowercase=False, token_pattern=None).fit(texts)
    vocabulary = {word: int(column) for word, column in vectorizer.vocabulary_.items()}
    expected = vectorizer.transform(texts).toarray().tolist()
    assert [bag_of_words(text, vocabulary) for text in texts] == expected


def test_bag_of_words_counts_and_ignores_unknown_words():
    vocabulary = {"love": 0, "movi": 1, "bad": 2}
    assert bag_of_words("Loved the movie, loving it! Movies.", vocabulary) == [2, 2, 0]
    assert bag_of_words("unknown words only", vocabulary) == [0, 0, 0]
    assert bag_of_words("", vocabulary) == [0, 0, 0]


def test_bag_of_words_has_one_column_per_word():
    vocabulary = {f"w{i:04d}": i for i in range(VOCABULARY_SIZE)}
    counts = bag_of_words("w0000 w4999 w4999 nothing", vocabulary)
    assert len(counts) == VOCABULARY_SIZE
    assert counts[0] == 1 and counts[-1] == 2 and sum(counts) == 3


def test_to_csv_row():
    assert to_csv_row([1, 0, 2]) == "1,0,2"
    assert to_csv_row([0]) == "0"
    assert to_csv_row([]) == ""
    row = to_csv_row(bag_of_words("good good movie", {"good": 0, "movi": 1, "bad": 2}))
    assert row == "2,1,0"
    assert "\n" not in row and " " not in row


def test_many_reviews_tokenize_quickly():
    import time

    texts = [
        f"Review {i}: I loved-loving this film/movie!<br /><br />Acting was great. " * 20 for i in range(2000)
    ]
    start = time.perf_counter()
    for text in texts:
        tokenize(text)
    assert time.perf_counter() - start < 10


def test_imports_only_stdlib_and_porter_stemmer():
    """The module is copied into the Lambda package: stdlib and nltk.stem.porter only."""
    tree = ast.parse(MODULE_PATH.read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports: the module must work on its own"
            imported.add(node.module)
    allowed = set(sys.stdlib_module_names) | {"__future__", "nltk.stem.porter"}
    assert {name for name in imported if name not in allowed and name.split(".")[0] not in allowed} == set()
    assert "nltk.stem.porter" in imported


def test_works_as_a_standalone_module(tmp_path):
    """Copied alone beside a Lambda handler, it imports and tokenizes the same way."""
    import subprocess

    (tmp_path / "review_text.py").write_bytes(MODULE_PATH.read_bytes())
    code = "import review_text; print(' '.join(review_text.tokenize('Loved it!<br />A well-made film')))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == tokenize("Loved it!<br />A well-made film")
