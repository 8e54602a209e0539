"""What the four Boston workflows share: the tutorial's hyperparameters, data upload and evaluation.

SDK v1 names are replaced by today's: objective ``reg:linear`` -> ``reg:squarederror``.
"""

from __future__ import annotations

from pathlib import Path

from workflows.datasets import boston
from workflows.evaluation import plot_predicted_vs_actual, plot_tuning_progress, regression_errors

HYPERPARAMETERS = {
    "max_depth": 5,
    "eta": 0.2,
    "gamma": 4,
    "min_child_weight": 6,
    "subsample": 0.8,
    "objective": "reg:squarederror",
    "early_stopping_rounds": 10,
    "num_round": 200,
}


def evaluate(
    split: boston.BostonSplit, predictions, output_dir: Path, title: str
) -> tuple[dict[str, float], Path]:
    metrics = regression_errors(split.Y_test, predictions)
    title = f"{title} (test RMSE {metrics['test_rmse']:.2f})"
    plot = plot_predicted_vs_actual(split.Y_test, predictions, output_dir / "predicted-vs-actual.png", title)
    return metrics, plot


def plot_tuning(objectives_by_job: dict[str, float | None], output_dir: Path, title: str) -> Path:
    """Objective per child job in launch order (child names carry their launch number)."""
    ordered = [objectives_by_job[name] for name in sorted(objectives_by_job)]
    return plot_tuning_progress(ordered, output_dir / "tuning-progress.png", title, minimize=True)


def upload_split(target, split: boston.BostonSplit, prefix: str) -> dict[str, str]:
    """Upload test, validation and train CSVs under the workflow's key prefix; their S3 URIs."""
    session = target.sagemaker_session
    return {
        name: session.upload_data(str(path), bucket=target.bucket, key_prefix=prefix)
        for name, path in (
            ("test", split.test_csv),
            ("validation", split.validation_csv),
            ("train", split.train_csv),
        )
    }
