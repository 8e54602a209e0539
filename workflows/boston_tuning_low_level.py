"""1d: Boston housing, hyperparameter tuning with boto3 (low level).

create_hyper_parameter_tuning_job (Bayesian, three ranges, 20 jobs, 3 in parallel) -> wait ->
BestTrainingJob -> create_model -> batch transform -> RMSE.
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

NAME = "boston-tuning-low-level"
SUMMARY = "Boston housing, boto3: create_hyper_parameter_tuning_job (Bayesian), best job, transform"
PREFIX = "boston-xgboost-tuning-LL"
MAX_JOBS = 20
MAX_PARALLEL_JOBS = 3
STATIC = {
    k: str(v) for k, v in boston.HYPERPARAMETERS.items() if k not in ("eta", "max_depth", "min_child_weight")
}


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
    session = target.sagemaker_session
    sagemaker = target.client("sagemaker")
    bucket = target.bucket
    split = boston_data.prepare(output_dir / "data")
    locations = boston.upload_split(target, split, PREFIX)

    image = steps.xgboost_image(target.region)
    # 32 characters at most; the suffix keeps two runs in the same second apart, as names must be.
    tuning_name = time.strftime("tuning-job-%y%m%d-%H%M%S", time.gmtime()) + f"-{uuid.uuid4().hex[:4]}"
    sagemaker.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=tuning_name,
        HyperParameterTuningJobConfig={
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {"MetricName": "validation:rmse", "Type": "Minimize"},
            "ResourceLimits": {
                "MaxNumberOfTrainingJobs": MAX_JOBS,
                "MaxParallelTrainingJobs": MAX_PARALLEL_JOBS,
            },
            "ParameterRanges": {
                "ContinuousParameterRanges": [{"Name": "eta", "MinValue": "0.05", "MaxValue": "0.5"}],
                "IntegerParameterRanges": [
                    {"Name": "max_depth", "MinValue": "3", "MaxValue": "12"},
                    {"Name": "min_child_weight", "MinValue": "2", "MaxValue": "8"},
                ],
            },
        },
        TrainingJobDefinition={
            "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
            "RoleArn": target.role_arn,
            "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/{PREFIX}/output"},
            "ResourceConfig": {"InstanceCount": 1, "InstanceType": target.instance_type, "VolumeSizeInGB": 5},
            "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
            "StaticHyperParameters": STATIC,
            "InputDataConfig": [
                steps.csv_channel("train", locations["train"]),
                steps.csv_channel("validation", locations["validation"]),
            ],
        },
    )
    log(f"tuning job {tuning_name} created; waiting...")
    session.wait_for_tuning_job(tuning_name)
    described = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=tuning_name)
    best_job = described["BestTrainingJob"]["TrainingJobName"]
    counters = described["TrainingJobStatusCounters"]
    log(
        f"best training job: {best_job} ({counters['Completed']} completed, {counters['NonRetryableError']} failed)"
    )
    artifacts = sagemaker.describe_training_job(TrainingJobName=best_job)["ModelArtifacts"][
        "S3ModelArtifacts"
    ]

    objectives = {}
    paginator = sagemaker.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job")
    for page in paginator.paginate(HyperParameterTuningJobName=tuning_name):
        for summary in page["TrainingJobSummaries"]:
            metric = summary.get("FinalHyperParameterTuningJobObjectiveMetric")
            objectives[summary["TrainingJobName"]] = metric["Value"] if metric else None

    model_name = f"{best_job}-model"
    sagemaker.create_model(
        ModelName=model_name,
        ExecutionRoleArn=target.role_arn,
        PrimaryContainer={"Image": image, "ModelDataUrl": artifacts},
    )
    transformed = steps.boto3_batch_transform(
        target,
        f"{tuning_name}-transform",
        model_name,
        locations["test"],
        f"s3://{bucket}/{PREFIX}/batch-transform/",
    )
    predictions = boston_data.parse_predictions(transformed)
    sagemaker.delete_model(ModelName=model_name)

    metrics, plot = boston.evaluate(
        split, predictions, output_dir, "1d tuning, low level: Median Price vs Predicted Price"
    )
    metrics["best_validation_rmse"] = described["BestTrainingJob"][
        "FinalHyperParameterTuningJobObjectiveMetric"
    ]["Value"]
    progress = boston.plot_tuning(
        objectives, output_dir, f"1d {tuning_name}: validation:rmse per training job"
    )
    return WorkflowResult(
        NAME, metrics, [plot, progress], {"tuning_job": tuning_name, "best_training_job": best_job}
    )
