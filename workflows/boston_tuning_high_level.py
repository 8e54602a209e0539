"""1c: Boston housing, hyperparameter tuning with the SageMaker Python SDK (high level).

HyperparameterTuner over five ranges (20 jobs, 3 in parallel) -> best_training_job() ->
Estimator.attach -> batch transform of the test set -> RMSE. SageMaker local mode cannot run
this at all (no tuning); sagelocal runs every child job for real.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from workflows import boston, steps
from workflows.datasets import boston as boston_data
from workflows.plan import Item, instances
from workflows.registry import WorkflowResult
from workflows.target import Target

NAME = "boston-tuning-high-level"
SUMMARY = "Boston housing, SageMaker SDK: HyperparameterTuner (20 jobs, 3 parallel), attach best, transform"
PREFIX = "boston-xgboost-tuning-HL"
MAX_JOBS = 20
MAX_PARALLEL_JOBS = 3


def plan(instance_type: str) -> list[Item]:
    return [
        instances(
            "tuning job",
            "training",
            MAX_PARALLEL_JOBS,
            instance_type,
            f"{MAX_JOBS} training jobs, 1 instance each",
        ),
        Item("model", "xgboost " + steps.XGBOOST_VERSION),
        instances("transform job", "transform", 1, instance_type),
    ]


def run(target: Target, output_dir: Path, log=print) -> WorkflowResult:
    from sagemaker.estimator import Estimator
    from sagemaker.tuner import ContinuousParameter, HyperparameterTuner, IntegerParameter

    split = boston_data.prepare(output_dir / "data")
    locations = boston.upload_split(target, split, PREFIX)
    tuner = HyperparameterTuner(
        estimator=steps.estimator(target, PREFIX, boston.HYPERPARAMETERS),
        objective_metric_name="validation:rmse",
        objective_type="Minimize",
        max_jobs=MAX_JOBS,
        max_parallel_jobs=MAX_PARALLEL_JOBS,
        hyperparameter_ranges={
            "max_depth": IntegerParameter(3, 12),
            "eta": ContinuousParameter(0.05, 0.5),
            "min_child_weight": IntegerParameter(2, 8),
            "subsample": ContinuousParameter(0.5, 0.9),
            "gamma": ContinuousParameter(0, 10),
        },
    )
    # The SDK's default name has minute resolution; two runs in one minute would collide.
    # 32 characters at most; the suffix keeps two runs in the same second apart, as names must be.
    job_name = time.strftime("boston-tuning-%y%m%d-%H%M%S", time.gmtime()) + f"-{uuid.uuid4().hex[:4]}"
    log(f"tuning job {job_name}: {MAX_JOBS} training jobs, {MAX_PARALLEL_JOBS} at a time...")
    tuner.fit(steps.training_inputs(locations), job_name=job_name)
    tuner.wait()
    best_job = tuner.best_training_job()
    log(f"best training job: {best_job}")
    objectives = {
        row["TrainingJobName"]: row.get("FinalObjectiveValue")
        for row in tuner.analytics().dataframe().to_dict("records")
    }

    best_estimator = Estimator.attach(best_job, sagemaker_session=target.sagemaker_session)
    predictions = boston_data.parse_predictions(
        steps.sdk_batch_transform(target, best_estimator, locations["test"])
    )

    metrics, plot = boston.evaluate(
        split, predictions, output_dir, "1c tuning, high level: Median Price vs Predicted Price"
    )
    metrics["best_validation_rmse"] = steps.final_metric(target, best_job, "validation:rmse")
    progress = boston.plot_tuning(objectives, output_dir, f"1c {job_name}: validation:rmse per training job")
    return WorkflowResult(
        NAME, metrics, [plot, progress], {"tuning_job": job_name, "best_training_job": best_job}
    )
