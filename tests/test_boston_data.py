"""The Boston split: the tutorial's sizes, and scikit-learn's rows without importing scikit-learn."""

from __future__ import annotations

import pytest

from workflows.datasets import boston


def test_the_split_has_the_tutorials_sizes_and_no_shared_rows(tmp_path):
    split = boston.prepare(tmp_path)

    assert (len(split.X_train), len(split.X_val), len(split.X_test)) == (227, 112, 167)
    assert not set(split.X_train.index) & set(split.X_val.index)
    assert not set(split.X_test.index) & (set(split.X_train.index) | set(split.X_val.index))
    assert split.train_csv.read_text().splitlines()[0].split(",")[0] == repr(float(split.Y_train.iloc[0]))


@pytest.mark.parametrize("seed", [boston.SEED, 0, 7])
def test_the_split_is_scikit_learns_row_for_row(seed):
    model_selection = pytest.importorskip("sklearn.model_selection")
    X, Y = boston.load()

    ours = boston.train_test_split(X, Y, test_size=0.33, seed=seed)
    theirs = model_selection.train_test_split(X, Y, test_size=0.33, random_state=seed)

    assert all(a.equals(b) for a, b in zip(ours, theirs, strict=True))
