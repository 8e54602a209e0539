"""The Boston housing data (506 rows, 13 features, target MEDV), shipped with the project.

scikit-learn removed ``load_boston``; this is the CSV that scikit-learn 1.1.x carried. The split
reproduces the original tutorial (test = 33% of all rows, validation = 33% of the rest), with a
fixed seed so runs are comparable (the original had none).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

CSV_PATH = Path(__file__).parent / "data" / "boston_house_prices.csv"
SEED = 42


@dataclass(frozen=True)
class BostonSplit:
    X_train: pd.DataFrame
    Y_train: pd.Series
    X_val: pd.DataFrame
    Y_val: pd.Series
    X_test: pd.DataFrame
    Y_test: pd.Series
    directory: Path

    @property
    def train_csv(self) -> Path:
        return self.directory / "train.csv"

    @property
    def validation_csv(self) -> Path:
        return self.directory / "validation.csv"

    @property
    def test_csv(self) -> Path:
        return self.directory / "test.csv"


def load() -> tuple[pd.DataFrame, pd.Series]:
    # First line is "506,13,..." (sizes), second the column names.
    frame = pd.read_csv(CSV_PATH, skiprows=1)
    return frame.drop(columns=["MEDV"]), frame["MEDV"].rename("MEDV")


def train_test_split(X: pd.DataFrame, Y: pd.Series, test_size: float, seed: int):
    """scikit-learn's ``train_test_split(X, Y, test_size=..., random_state=seed)``, row for row
    (the test rows are the first ceil(test_size * n) of one seeded permutation, the train rows the
    rest), without importing scikit-learn: its import is about a second of a 1a/1b run."""
    permutation = np.random.RandomState(seed).permutation(len(X))
    n_test = int(np.ceil(test_size * len(X)))
    test, train = permutation[:n_test], permutation[n_test:]
    return X.iloc[train], X.iloc[test], Y.iloc[train], Y.iloc[test]


def prepare(directory: Path, seed: int = SEED) -> BostonSplit:
    """Split and write train/validation (label first) and test (features only), no header, no index."""
    X, Y = load()
    X_rest, X_test, Y_rest, Y_test = train_test_split(X, Y, test_size=0.33, seed=seed)
    X_train, X_val, Y_train, Y_val = train_test_split(X_rest, Y_rest, test_size=0.33, seed=seed)
    directory.mkdir(parents=True, exist_ok=True)
    split = BostonSplit(X_train, Y_train, X_val, Y_val, X_test, Y_test, directory)
    pd.concat([Y_train, X_train], axis=1).to_csv(split.train_csv, header=False, index=False)
    pd.concat([Y_val, X_val], axis=1).to_csv(split.validation_csv, header=False, index=False)
    X_test.to_csv(split.test_csv, header=False, index=False)
    return split


def parse_predictions(text: str) -> np.ndarray:
    """Predictions as the container returns them: comma- or newline-separated numbers."""
    return np.array([float(v) for v in text.replace("\n", ",").split(",") if v.strip()])
