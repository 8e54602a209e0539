"""1b: Boston housing with boto3 (low level): the same steps as 1a, one API call at a time.

create_training_job -> wait with logs -> create_model -> create_transform_job -> wait ->
create_endpoint_config -> create_endpoint -> wait InService -> invoke_endpoint with the test rows
-> delete the endpoint, its config and the model (the original deleted only the endpoint).
"""

from __future__ import annotations

import time
from pathlib import Path

from workflows import boston, steps
from workflows.cleanup import delete_endpoint
from workflows.datasets import boston as boston_data
from workflows.evaluation import regression_errors
from workflows.plan import Item, instances
from workflows.registry import WorkflowResult
from workflows.target import Target

NAME = "boston-low-level"
SUMMARY = "Boston housing, boto3: create_training_job ... invoke_endpoint"
PREFIX = "boston-xgboost-LL"


def plan(instance_type: str) -> list[Item]:
    return [
        instances("training job", "training", 1, instance_type, "5 GB volume"),
        Item("model", "xgboost " + steps.XGBOOST_VERSION),
        instances("transform job", "transform", 1, instance_type),
        instances("endpoint config + endpoint", "endpoint", 1, instance_type),
    ]


def run(target: Target, output_dir: Path, log=print) -> WorkflowResult:
    session = target.sagemaker_session
    sagemaker = target.client("sagemaker")
    runtime = target.client("sagemaker-runtime")
    bucket = target.bucket
    split = boston_data.prepare(output_dir / "data")
    locations = boston.upload_split(target, split, PREFIX)

    stamp = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime()) + f"-{int(time.time() * 1000) % 1000:03d}"
    job_name = f"boston-xgboost-{stamp}"
    image = steps.xgboost_image(target.region)
    sagemaker.create_training_job(
        TrainingJobName=job_name,
        RoleArn=target.role_arn,
        AlgorithmSpecification={"TrainingImage": image, "TrainingInputMode": "File"},
        OutputDataConfig={"S3OutputPath": f"s3://{bucket}/{PREFIX}/output"},
        ResourceConfig={"InstanceCount": 1, "InstanceType": target.instance_type, "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 86400},
        HyperParameters={k: str(v) for k, v in boston.HYPERPARAMETERS.items()},
        InputDataConfig=[
            steps.csv_channel("train", locations["train"]),
            steps.csv_channel("validation", locations["validation"]),
        ],
    )
    log(f"training job {job_name} created; streaming its log...")
    session.logs_for_job(job_name, wait=True)
    artifacts = sagemaker.describe_training_job(TrainingJobName=job_name)["ModelArtifacts"][
        "S3ModelArtifacts"
    ]

    model_name = f"{job_name}-model"
    sagemaker.create_model(
        ModelName=model_name,
        ExecutionRoleArn=target.role_arn,
        PrimaryContainer={"Image": image, "ModelDataUrl": artifacts},
    )

    transform_name = f"boston-xgboost-batch-{stamp}"
    log(f"transform job {transform_name}; waiting...")
    transformed = steps.boto3_batch_transform(
        target, transform_name, model_name, locations["test"], f"s3://{bucket}/{PREFIX}/batch-transform/"
    )
    batch_predictions = boston_data.parse_predictions(transformed)

    endpoint_name = f"boston-xgboost-endpoint-{stamp}"
    config_name = f"boston-xgboost-endpoint-config-{stamp}"
    sagemaker.create_endpoint_config(
        EndpointConfigName=config_name,
        ProductionVariants=[
            {
                "InstanceType": target.instance_type,
                "InitialInstanceCount": 1,
                "InitialVariantWeight": 1,
                "ModelName": model_name,
                "VariantName": "AllTraffic",
            }
        ],
    )
    sagemaker.create_endpoint(EndpointName=endpoint_name, EndpointConfigName=config_name)
    log(f"endpoint {endpoint_name} creating; waiting for InService...")
    try:
        session.wait_for_endpoint(endpoint_name)
        payload = "\n".join(",".join(repr(float(v)) for v in row) for row in split.X_test.values)
        response = runtime.invoke_endpoint(EndpointName=endpoint_name, ContentType="text/csv", Body=payload)
        endpoint_predictions = boston_data.parse_predictions(response["Body"].read().decode())
    finally:
        # The original deleted at once; SageMaker refuses that while the endpoint is still Creating.
        delete_endpoint(sagemaker, endpoint_name, target.poll_seconds, target.tracker.wait_seconds)
        sagemaker.delete_endpoint_config(EndpointConfigName=config_name)
        sagemaker.delete_model(ModelName=model_name)

    metrics, plot = boston.evaluate(
        split, batch_predictions, output_dir, "1b low level: Median Price vs Predicted Price"
    )
    metrics["endpoint_test_rmse"] = regression_errors(split.Y_test, endpoint_predictions)["test_rmse"]
    metrics["validation_rmse"] = steps.final_metric(target, job_name, "validation:rmse")
    return WorkflowResult(NAME, metrics, [plot], {"training_job": job_name, "endpoint": endpoint_name})
