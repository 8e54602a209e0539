"""How workflows report results: error figures and the plots users look at."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def regression_errors(actual, predicted) -> dict[str, float]:
    actual, predicted = np.asarray(actual, dtype=float), np.asarray(predicted, dtype=float)
    if actual.shape != predicted.shape:
        raise ValueError(f"{len(predicted)} predictions for {len(actual)} rows")
    mse = float(np.mean((actual - predicted) ** 2))
    return {"test_rmse": mse**0.5, "test_mse": mse}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_predicted_vs_actual(actual, predicted, path: Path, title: str) -> Path:
    """The original notebooks' "Median Price vs Predicted Price" scatter, with the ideal line."""
    plt = _pyplot()
    actual, predicted = np.asarray(actual, dtype=float), np.asarray(predicted, dtype=float)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.scatter(actual, predicted, s=14, alpha=0.7)
    low, high = float(min(actual.min(), predicted.min())), float(max(actual.max(), predicted.max()))
    ax.plot([low, high], [low, high], color="grey", linewidth=1, linestyle="--", label="predicted = actual")
    ax.set_xlabel("Median Price")
    ax.set_ylabel("Predicted Price")
    ax.set_title(title)
    ax.legend(loc="upper left")
    return _save(plt, fig, path)


def plot_tuning_progress(
    objective_values: Sequence[float | None], path: Path, title: str, minimize: bool = True
) -> Path:
    """Objective per child job in launch order, with the best so far (failed jobs left out)."""
    plt = _pyplot()
    xs = [i + 1 for i, v in enumerate(objective_values) if v is not None]
    ys = [v for v in objective_values if v is not None]
    best, best_line = None, []
    for y in ys:
        best = y if best is None or (y < best if minimize else y > best) else best
        best_line.append(best)
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter(xs, ys, s=22, label="child training job")
    ax.step(xs, best_line, where="post", color="tab:red", label="best so far")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("training job (launch order)")
    ax.set_ylabel("objective")
    ax.set_title(title)
    ax.legend()
    return _save(plt, fig, path)


def plot_score_distribution(scores, labels, path: Path, title: str) -> Path:
    """Predicted probability by true class: how well the classifier separates them, at a glance."""
    plt = _pyplot()
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    bins = np.linspace(0, 1, 41)
    ax.hist(scores[labels == 1], bins=bins, alpha=0.6, label="positive reviews", color="tab:green")
    ax.hist(scores[labels == 0], bins=bins, alpha=0.6, label="negative reviews", color="tab:red")
    ax.axvline(0.5, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("predicted probability of positive")
    ax.set_ylabel("reviews")
    ax.set_title(title)
    ax.legend()
    return _save(plt, fig, path)
