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


def evaluate(
    split: boston.BostonSplit, predictions, output_dir: Path, title: str
) -> tuple[dict[str, float], Path]:
    metrics = regression_errors(split.Y_test, predictions)
    title = f"{title} (test RMSE {metrics['test_rmse']:.2f})"
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
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": uri,
                "S3DataDistributionType": "FullyReplicated",
            }
        },
        "ContentType": "text/csv",
        "CompressionType": "None",
    }


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


def estimator(target, prefix: str, hyperparameters: dict | None = None):
    """The SDK Estimator of the original notebooks: built-in XGBoost, 1 x ml.m4.xlarge."""
    from sagemaker.estimator import Estimator

    built = Estimator(
        xgboost_image(target.region),
        target.role_arn,
        instance_count=1,
        instance_type=INSTANCE_TYPE,
        output_path=f"s3://{target.bucket}/{prefix}/output",
        sagemaker_session=target.sagemaker_session,
    )
    built.set_hyperparameters(**(hyperparameters or HYPERPARAMETERS))
    return built


def training_inputs(locations: dict[str, str]) -> dict:
    from sagemaker.inputs import TrainingInput

    return {name: TrainingInput(locations[name], content_type="text/csv") for name in ("train", "validation")}


def sdk_batch_transform(target, fitted_estimator, test_location: str) -> str:
    """Transformer of a fitted (or attached) estimator over the test CSV, line by line; the output text."""
    transformer = fitted_estimator.transformer(1, INSTANCE_TYPE)
    transformer.transform(test_location, content_type="text/csv", split_type="Line")
    transformer.wait()
    return read_s3_text(target, f"{transformer.output_path}/test.csv.out")


def boto3_batch_transform(target, name: str, model_name: str, test_location: str, output_uri: str) -> str:
    """create_transform_job as in the original low-level notebooks, waited for; the output text."""
    target.client("sagemaker").create_transform_job(
        TransformJobName=name,
        ModelName=model_name,
        MaxConcurrentTransforms=1,
        MaxPayloadInMB=6,
        BatchStrategy="MultiRecord",
        TransformInput={
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": test_location}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        TransformOutput={"S3OutputPath": output_uri},
        TransformResources={"InstanceType": INSTANCE_TYPE, "InstanceCount": 1},
    )
    target.sagemaker_session.wait_for_transform_job(name)
    return read_s3_text(target, f"{output_uri.rstrip('/')}/test.csv.out")


def read_s3_text(target, uri: str) -> str:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    return target.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode()
