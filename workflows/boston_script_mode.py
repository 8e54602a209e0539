"""Boston housing in script mode: the SageMaker most users write, with no Docker.

A processing job (SKLearnProcessor) splits the raw CSV -> the user's own ``train.py`` trains
scikit-learn gradient-boosted trees (SKLearn estimator) -> a HyperparameterTuner tunes it on the
validation RMSE the script prints -> the best model deploys with the user's ``inference.py`` ->
the endpoint predicts the test set. The scripts are in ``workflows/code/boston_script_mode`` and
are exactly what runs on AWS with ``--target aws``.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from workflows import boston, steps
from workflows.datasets import boston as boston_data
from workflows.evaluation import plot_predicted_vs_actual, regression_errors
from workflows.plan import Item, instances
from workflows.registry import WorkflowResult
from workflows.target import Target

NAME = "boston-script-mode"
SUMMARY = "Boston housing, script mode: SKLearnProcessor, train.py, HyperparameterTuner, deploy inference.py"
PREFIX = "boston-script-mode"
CODE = Path(__file__).parent / "code" / "boston_script_mode"
SKLEARN_VERSION = "1.2-1"
MAX_JOBS = 6
MAX_PARALLEL_JOBS = 2
METRIC = {"Name": "validation:rmse", "Regex": r"validation_rmse=([0-9.]+)"}


def plan(instance_type: str) -> list[Item]:
    # Processing jobs have their own quotas ("<type> for processing job usage") as well.
    return [
        instances("processing job", "processing", 1, instance_type, f"sklearn {SKLEARN_VERSION}"),
        instances(
            "tuning job",
            "training",
            MAX_PARALLEL_JOBS,
            instance_type,
            f"{MAX_JOBS} training jobs, 1 instance each",
        ),
        Item("model", f"sklearn {SKLEARN_VERSION} with inference.py"),
        instances("endpoint config + endpoint", "endpoint", 1, instance_type),
    ]


def run(target: Target, output_dir: Path, log=print) -> WorkflowResult:
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.inputs import TrainingInput
    from sagemaker.processing import ProcessingInput, ProcessingOutput
    from sagemaker.serializers import CSVSerializer
    from sagemaker.sklearn import SKLearn, SKLearnProcessor
    from sagemaker.tuner import ContinuousParameter, HyperparameterTuner, IntegerParameter

    session = target.sagemaker_session
    stamp = time.strftime("%y%m%d-%H%M%S", time.gmtime())  # SDK default names have minute resolution
    raw = session.upload_data(str(boston_data.CSV_PATH), bucket=target.bucket, key_prefix=f"{PREFIX}/raw")

    log("processing job: splitting the raw data (preprocess.py)...")
    processor = SKLearnProcessor(
        framework_version=SKLEARN_VERSION,
        role=target.role_arn,
        instance_type=target.instance_type,
        instance_count=1,
        base_job_name=f"boston-prep-{stamp}",
        sagemaker_session=session,
    )
    outputs = {
        name: f"s3://{target.bucket}/{PREFIX}/{stamp}/{name}" for name in ("train", "validation", "test")
    }
    processor.run(
        code=str(CODE / "preprocess.py"),
        inputs=[ProcessingInput(source=raw.rsplit("/", 1)[0] + "/", destination="/opt/ml/processing/input")],
        outputs=[
            ProcessingOutput(output_name=name, source=f"/opt/ml/processing/{name}", destination=uri)
            for name, uri in outputs.items()
        ],
        arguments=["--input", "/opt/ml/processing/input", "--output", "/opt/ml/processing"],
        logs=False,
    )

    estimator = SKLearn(
        entry_point="train.py",
        source_dir=str(CODE),
        framework_version=SKLEARN_VERSION,
        role=target.role_arn,
        instance_type=target.instance_type,
        instance_count=1,
        hyperparameters={"n-estimators": 200},
        metric_definitions=[METRIC],
        output_path=f"s3://{target.bucket}/{PREFIX}/{stamp}/models",
        sagemaker_session=session,
    )
    tuner = HyperparameterTuner(
        estimator,
        objective_metric_name=METRIC["Name"],
        objective_type="Minimize",
        metric_definitions=[METRIC],
        hyperparameter_ranges={
            "learning-rate": ContinuousParameter(0.02, 0.3, scaling_type="Logarithmic"),
            "max-depth": IntegerParameter(2, 5),
        },
        max_jobs=MAX_JOBS,
        max_parallel_jobs=MAX_PARALLEL_JOBS,
    )
    tuning_job = f"boston-sm-{stamp}"
    log(f"tuning job {tuning_job}: train.py, {MAX_JOBS} jobs, {MAX_PARALLEL_JOBS} at a time...")
    channels = {
        name: TrainingInput(outputs[name], content_type="text/csv") for name in ("train", "validation")
    }
    tuner.fit(channels, job_name=tuning_job, logs=False)
    tuner.wait()
    best_job = tuner.best_training_job()
    log(f"best training job: {best_job}")
    objectives = {
        row["TrainingJobName"]: row.get("FinalObjectiveValue")
        for row in tuner.analytics().dataframe().to_dict("records")
    }

    log("deploying the best model with inference.py...")
    best = SKLearn.attach(best_job, sagemaker_session=session)
    predictor = best.deploy(
        1,
        target.instance_type,
        entry_point="inference.py",
        serializer=CSVSerializer(),
        deserializer=JSONDeserializer(),
    )
    test = _read_csv(target, f"{outputs['test']}/test.csv")
    y_test, x_test = test[0].values, test.drop(columns=[0]).values
    try:
        predictions = np.array(predictor.predict(x_test)["predictions"])
    finally:
        predictor.delete_model()
        predictor.delete_endpoint()

    metrics = regression_errors(y_test, predictions)
    plot = plot_predicted_vs_actual(
        y_test,
        predictions,
        output_dir / "predicted-vs-actual.png",
        f"script mode: Median Price vs Predicted Price (test RMSE {metrics['test_rmse']:.2f})",
    )
    metrics["best_validation_rmse"] = steps.final_metric(target, best_job, METRIC["Name"])
    progress = boston.plot_tuning(objectives, output_dir, f"{tuning_job}: validation:rmse per training job")
    details = {
        "processing_job": processor.latest_job.job_name,
        "tuning_job": tuning_job,
        "best_training_job": best_job,
    }
    details["best_hyperparameters"] = json.dumps(
        {k: v for k, v in best.hyperparameters().items() if not k.startswith("sagemaker_")}
    )
    return WorkflowResult(NAME, metrics, [plot, progress], details)


def _read_csv(target, uri: str) -> pd.DataFrame:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    body = target.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    return pd.read_csv(io.BytesIO(body), header=None)
