"""SageMaker steps every workflow takes the same way: the built-in XGBoost image, an Estimator as
in the original notebooks, CSV inputs, batch transform of the test set, reading results back.

SDK v1 names are replaced by today's: ``get_image_uri`` -> ``image_uris.retrieve``.
"""

from __future__ import annotations

XGBOOST_VERSION = "1.7-1"


def xgboost_image(region: str) -> str:
    from sagemaker import image_uris

    return image_uris.retrieve("xgboost", region, version=XGBOOST_VERSION)


def final_metric(target, job_name: str, metric: str) -> float:
    """A metric's last value as the service parsed it from the training log (FinalMetricDataList)."""
    described = target.client("sagemaker").describe_training_job(TrainingJobName=job_name)
    values = {m["MetricName"]: m["Value"] for m in described.get("FinalMetricDataList", [])}
    return values.get(metric, float("nan"))


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


def estimator(target, prefix: str, hyperparameters: dict):
    """The SDK Estimator of the original notebooks: built-in XGBoost, 1 instance of the target's type."""
    from sagemaker.estimator import Estimator

    built = Estimator(
        xgboost_image(target.region),
        target.role_arn,
        instance_count=1,
        instance_type=target.instance_type,
        output_path=f"s3://{target.bucket}/{prefix}/output",
        sagemaker_session=target.sagemaker_session,
    )
    built.set_hyperparameters(**hyperparameters)
    return built


def training_inputs(locations: dict[str, str]) -> dict:
    from sagemaker.inputs import TrainingInput

    return {name: TrainingInput(locations[name], content_type="text/csv") for name in ("train", "validation")}


def sdk_batch_transform(target, fitted_estimator, test_location: str) -> str:
    """Transformer of a fitted (or attached) estimator over the test CSV, line by line; the output text."""
    transformer = fitted_estimator.transformer(1, target.instance_type)
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
        TransformResources={"InstanceType": target.instance_type, "InstanceCount": 1},
    )
    target.sagemaker_session.wait_for_transform_job(name)
    return read_s3_text(target, f"{output_uri.rstrip('/')}/test.csv.out")


def read_s3_text(target, uri: str) -> str:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    return target.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode()
