"""What the four Boston workflows share: the algorithm set-up from the original tutorial.

SDK v1 names are replaced by today's: ``get_image_uri`` -> ``image_uris.retrieve``, objective
``reg:linear`` -> ``reg:squarederror``.
"""

from __future__ import annotations

from pathlib import Path

from workflows.datasets import boston
from workflows.evaluation import plot_predicted_vs_actual, plot_tuning_progress, regression_errors

XGBOOST_VERSION = "1.7-1"
INSTANCE_TYPE = "ml.m4.xlarge"
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


def xgboost_image(region: str) -> str:
    from sagemaker import image_uris

    return image_uris.retrieve("xgboost", region, version=XGBOOST_VERSION)


def evaluate(split: boston.BostonSplit, predictions, output_dir: Path, title: str) -> tuple[dict[str, float], Path]:
    metrics = regression_errors(split.Y_test, predictions)
    plot = plot_predicted_vs_actual(split.Y_test, predictions, output_dir / "predicted-vs-actual.png", title)
    return metrics, plot


def final_metric(target, job_name: str, metric: str) -> float:
    """A metric's last value as the service parsed it from the training log (FinalMetricDataList)."""
    described = target.client("sagemaker").describe_training_job(TrainingJobName=job_name)
    values = {m["MetricName"]: m["Value"] for m in described.get("FinalMetricDataList", [])}
    return values.get(metric, float("nan"))


def plot_tuning(objectives_by_job: dict[str, float | None], output_dir: Path, title: str) -> Path:
    """Objective per child job in launch order (child names carry their launch number)."""
    ordered = [objectives_by_job[name] for name in sorted(objectives_by_job)]
    return plot_tuning_progress(ordered, output_dir / "tuning-progress.png", title, minimize=True)


def csv_channel(name: str, uri: str) -> dict:
    """A text/csv S3Prefix channel for create_training_job / create_hyper_parameter_tuning_job."""
    return {
        "ChannelName": name,
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "FullyReplicated"}},
        "ContentType": "text/csv",
        "CompressionType": "None",
    }
