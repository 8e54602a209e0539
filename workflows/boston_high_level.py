"""1a: Boston housing with the SageMaker Python SDK (high level).

Estimator -> fit(train, validation) -> batch transform of the test set -> deploy -> predict all
test rows in one call -> delete the endpoint. SDK v1 names replaced by v2's: ``s3_input`` ->
``TrainingInput``, ``csv_serializer`` -> ``CSVSerializer``.
"""

from __future__ import annotations

from pathlib import Path

from workflows import boston, steps
from workflows.datasets import boston as boston_data
from workflows.evaluation import regression_errors
from workflows.plan import Item, instances
from workflows.registry import WorkflowResult
from workflows.target import Target

NAME = "boston-high-level"
SUMMARY = "Boston housing, SageMaker SDK: Estimator.fit, batch transform, deploy, predict"
PREFIX = "boston-xgboost-HL"


def plan(instance_type: str) -> list[Item]:
    return [
        instances("training job", "training", 1, instance_type),
        Item("model", "xgboost " + steps.XGBOOST_VERSION),
        instances("transform job", "transform", 1, instance_type),
        instances("endpoint config + endpoint", "endpoint", 1, instance_type),
    ]


def run(target: Target, output_dir: Path, log=print) -> WorkflowResult:
    from sagemaker.serializers import CSVSerializer

    split = boston_data.prepare(output_dir / "data")
    locations = boston.upload_split(target, split, PREFIX)
    estimator = steps.estimator(target, PREFIX, boston.HYPERPARAMETERS)
    log("training (fit with logs)...")
    estimator.fit(steps.training_inputs(locations))

    log("batch transform of the test set...")
    batch_predictions = boston_data.parse_predictions(
        steps.sdk_batch_transform(target, estimator, locations["test"])
    )

    log("deploying an endpoint...")
    predictor = estimator.deploy(1, target.instance_type, serializer=CSVSerializer())
    try:
        endpoint_predictions = boston_data.parse_predictions(predictor.predict(split.X_test.values).decode())
    finally:
        # Model first: once the endpoint config is gone, Predictor.delete_model() cannot find it.
        predictor.delete_model()
        predictor.delete_endpoint()

    metrics, plot = boston.evaluate(
        split, batch_predictions, output_dir, "1a high level: Median Price vs Predicted Price"
    )
    metrics["endpoint_test_rmse"] = regression_errors(split.Y_test, endpoint_predictions)["test_rmse"]
    job_name = estimator.latest_training_job.name
    metrics["validation_rmse"] = steps.final_metric(target, job_name, "validation:rmse")
    return WorkflowResult(NAME, metrics, [plot], {"training_job": job_name})
