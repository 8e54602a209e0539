"""Hyperparameter tuning jobs: strategies, the best job, counters, real parallelism, stop, errors."""

from __future__ import annotations

import re
import time
import uuid

import botocore.exceptions
import pandas as pd
import pytest

from workflows.datasets import boston as boston_data

ROLE = "arn:aws:iam::000000000000:role/SageLocalExecutionRole"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def data(client, bucket, tmp_path_factory):
    """Boston as regression (label MEDV) and as classification (label: MEDV above the median)."""
    directory = tmp_path_factory.mktemp("tuning-data")
    split = boston_data.prepare(directory)
    s3 = client("s3")
    prefix = unique("tuning-tests")
    for path in (split.train_csv, split.validation_csv):
        s3.upload_file(str(path), bucket, f"{prefix}/regression/{path.stem}/{path.name}")
    median = split.Y_train.median()
    for name, X, Y in (("train", split.X_train, split.Y_train), ("validation", split.X_val, split.Y_val)):
        path = directory / f"binary-{name}.csv"
        pd.concat([(Y > median).astype(int), X], axis=1).to_csv(path, header=False, index=False)
        s3.upload_file(str(path), bucket, f"{prefix}/binary/{name}/{name}.csv")
    return f"s3://{bucket}/{prefix}"


def tuning_request(name, data_uri, *, strategy="Bayesian", ranges=None, static=None, metric="validation:rmse",
                   direction="Minimize", max_jobs=4, parallel=2, problem="regression", **config):  # fmt: skip
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": strategy,
            "HyperParameterTuningJobObjective": {"MetricName": metric, "Type": direction},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": max_jobs, "MaxParallelTrainingJobs": parallel},
            "ParameterRanges": ranges
            or {
                "ContinuousParameterRanges": [{"Name": "eta", "MinValue": "0.05", "MaxValue": "0.5"}],
                "IntegerParameterRanges": [{"Name": "max_depth", "MinValue": "2", "MaxValue": "8"}],
            },
            **config,
        },
        "TrainingJobDefinition": {
            "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
            "RoleArn": ROLE,
            "OutputDataConfig": {"S3OutputPath": f"{data_uri}/output"},
            "HyperParameterTuningResourceConfig": {
                "InstanceCount": 1,
                "InstanceType": "ml.m4.xlarge",
                "VolumeSizeInGB": 5,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
            "StaticHyperParameters": static
            or {
                "objective": "reg:squarederror",
                "num_round": "30",
                "early_stopping_rounds": "5",
                "subsample": "0.8",
            },
            "InputDataConfig": [
                {
                    "ChannelName": channel,
                    "DataSource": {
                        "S3DataSource": {
                            "S3DataType": "S3Prefix",
                            "S3Uri": f"{data_uri}/{problem}/{channel}/",
                        }
                    },
                    "ContentType": "text/csv",
                }
                for channel in ("train", "validation")
            ],
        },
    }


def run_tuning(client, request, timeout=120):
    sagemaker = client("sagemaker")
    name = request["HyperParameterTuningJobName"]
    sagemaker.create_hyper_parameter_tuning_job(**request)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
        if described["HyperParameterTuningJobStatus"] in ("Completed", "Failed", "Stopped"):
            return described
        time.sleep(0.1)
    raise AssertionError("tuning job did not finish")


def children(client, name):
    paginator = client("sagemaker").get_paginator("list_training_jobs_for_hyper_parameter_tuning_job")
    return [
        s
        for page in paginator.paginate(HyperParameterTuningJobName=name)
        for s in page["TrainingJobSummaries"]
    ]


@pytest.fixture(scope="module")
def bayesian(client, data):
    name = unique("bayes")
    return run_tuning(client, tuning_request(name, data, max_jobs=6, parallel=3)), children(client, name)


def test_bayesian_tuning_completes_with_the_best_job(bayesian):
    described, jobs = bayesian
    assert described["HyperParameterTuningJobStatus"] == "Completed"
    assert len(jobs) == 6
    completed = [j for j in jobs if j["TrainingJobStatus"] == "Completed"]
    best_value = min(j["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for j in completed)
    best = described["BestTrainingJob"]
    assert best["FinalHyperParameterTuningJobObjectiveMetric"] == {
        "MetricName": "validation:rmse",
        "Value": best_value,
    }
    assert best["TrainingJobName"] in {j["TrainingJobName"] for j in completed}
    assert set(best["TunedHyperParameters"]) == {"eta", "max_depth"}


def test_counters_add_up(bayesian):
    described, jobs = bayesian
    training = described["TrainingJobStatusCounters"]
    assert sum(training.values()) == len(jobs)
    assert training["Completed"] == sum(j["TrainingJobStatus"] == "Completed" for j in jobs)
    objective = described["ObjectiveStatusCounters"]
    assert objective["Succeeded"] + objective["Failed"] + objective["Pending"] == len(jobs)


def test_children_are_ordinary_training_jobs(client, bayesian):
    described, jobs = bayesian
    name = described["HyperParameterTuningJobName"]
    for job in jobs:
        assert re.fullmatch(rf"{name}-\d{{3}}-[0-9a-f]{{8}}", job["TrainingJobName"])
    child = client("sagemaker").describe_training_job(TrainingJobName=jobs[0]["TrainingJobName"])
    assert child["TuningJobArn"] == described["HyperParameterTuningJobArn"]
    assert child["HyperParameters"]["_tuning_objective_metric"] == "validation:rmse"
    static = described["TrainingJobDefinition"]["StaticHyperParameters"]
    assert static["_tuning_objective_metric"] == "validation:rmse"
    assert described["TrainingJobDefinition"]["ResourceConfig"]["InstanceType"] == "ml.m4.xlarge"
    ranges = described["HyperParameterTuningJobConfig"]["ParameterRanges"]
    assert ranges["ContinuousParameterRanges"][0]["ScalingType"] == "Auto"


def test_max_parallel_is_honoured_and_used(client, bayesian):
    _, jobs = bayesian
    events = []
    for job in jobs:
        described = client("sagemaker").describe_training_job(TrainingJobName=job["TrainingJobName"])
        events += [(described["TrainingStartTime"], 1), (described["TrainingEndTime"], -1)]
    running = peak = 0
    for _, change in sorted(events, key=lambda e: (e[0], e[1])):
        running += change
        peak = max(peak, running)
    assert 1 < peak <= 3


@pytest.mark.parametrize("strategy", ["Random", "Hyperband"])
def test_other_strategies_run(client, data, strategy):
    name = unique(strategy.lower())
    described = run_tuning(client, tuning_request(name, data, strategy=strategy, max_jobs=4, RandomSeed=7))
    assert described["HyperParameterTuningJobStatus"] == "Completed"
    assert sum(described["TrainingJobStatusCounters"].values()) == 4
    assert "BestTrainingJob" in described


def test_grid_runs_every_combination_and_a_failing_child_does_not_fail_the_job(client, data):
    name = unique("grid")
    ranges = {
        "CategoricalParameterRanges": [{"Name": "max_depth", "Values": ["3", "-1"]}],
        "IntegerParameterRanges": [{"Name": "min_child_weight", "MinValue": "2", "MaxValue": "3"}],
    }
    described = run_tuning(client, tuning_request(name, data, strategy="Grid", ranges=ranges, max_jobs=10))
    jobs = children(client, name)
    assert described["HyperParameterTuningJobStatus"] == "Completed"
    assert sorted((j["TunedHyperParameters"]["max_depth"], j["TunedHyperParameters"]["min_child_weight"]) for j in jobs) == [
        ("-1", "2"), ("-1", "3"), ("3", "2"), ("3", "3"),
    ]  # fmt: skip
    assert described["TrainingJobStatusCounters"]["NonRetryableError"] == 2
    assert described["TrainingJobStatusCounters"]["Completed"] == 2
    assert described["BestTrainingJob"]["TunedHyperParameters"]["max_depth"] == "3"


def test_maximize_picks_the_highest_auc(client, data):
    name = unique("auc")
    static = {"objective": "binary:logistic", "num_round": "20", "early_stopping_rounds": "5"}
    described = run_tuning(
        client,
        tuning_request(
            name, data, metric="validation:auc", direction="Maximize", static=static, problem="binary"
        ),
    )
    jobs = [j for j in children(client, name) if j["TrainingJobStatus"] == "Completed"]
    top = max(j["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for j in jobs)
    assert described["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == top
    assert 0.5 < top <= 1.0


def test_stop_tuning_job_stops_running_children(client, data):
    sagemaker = client("sagemaker")
    name = unique("stop")
    slow = {"objective": "reg:squarederror", "num_round": "100000", "early_stopping_rounds": "100000"}
    request = tuning_request(name, data, static=slow, max_jobs=4, parallel=2,
                             ranges={"ContinuousParameterRanges": [{"Name": "eta", "MinValue": "0.0001", "MaxValue": "0.001"}]})  # fmt: skip
    sagemaker.create_hyper_parameter_tuning_job(**request)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not [
        j for j in children(client, name) if j["TrainingJobStatus"] == "InProgress"
    ]:
        time.sleep(0.05)
    sagemaker.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    while time.monotonic() < deadline:
        described = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
        if described["HyperParameterTuningJobStatus"] == "Stopped":
            break
        time.sleep(0.05)
    assert described["HyperParameterTuningJobStatus"] == "Stopped"
    assert all(j["TrainingJobStatus"] == "Stopped" for j in children(client, name))
    assert len(children(client, name)) < 4


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"metric": "validation:bogus"}, "isn't valid for the [sagemaker-xgboost] algorithm"),
        ({"metric": "train:rmse"}, "isn't valid for the [sagemaker-xgboost] algorithm"),
        ({"ranges": {"ContinuousParameterRanges": [{"Name": "eta", "MinValue": "0.5", "MaxValue": "0.1"}]}}, "must be less than or equal to"),
        ({"ranges": {"ContinuousParameterRanges": [{"Name": "eta", "MinValue": "0", "MaxValue": "0.5", "ScalingType": "Logarithmic"}]}}, "Logarithmic scaling type requires MinValue > 0"),
        ({"ranges": {"ContinuousParameterRanges": [{"Name": "subsample", "MinValue": "0.5", "MaxValue": "0.9"}]}}, "both in StaticHyperParameters and in ParameterRanges"),
        ({"strategy": "Hyperband", "TrainingJobEarlyStoppingType": "Auto"}, "TrainingJobEarlyStoppingType must be Off"),
        ({"strategy": "Grid"}, "does not support continuous parameter ranges"),
    ],
)  # fmt: skip
def test_invalid_configurations_are_rejected(client, data, changes, message):
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        client("sagemaker").create_hyper_parameter_tuning_job(
            **tuning_request(unique("bad"), data, **changes)
        )
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert message in raised.value.response["Error"]["Message"]


def test_unknown_and_duplicate_tuning_jobs(client, bayesian, data):
    sagemaker = client("sagemaker")
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="ghost")
    assert raised.value.response["Error"]["Code"] == "ResourceNotFound"
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        sagemaker.create_hyper_parameter_tuning_job(
            **tuning_request(bayesian[0]["HyperParameterTuningJobName"], data)
        )
    assert raised.value.response["Error"]["Code"] == "ResourceInUse"


def test_sdk_attach_and_analytics(emulator, boto_session, bayesian, monkeypatch):
    import sagemaker
    from sagemaker.tuner import HyperparameterTuner

    monkeypatch.setenv("AWS_ENDPOINT_URL", emulator.url)
    session = sagemaker.Session(
        boto_session=boto3_session(boto_session), default_bucket="sagelocal-tests",
        sagemaker_config={"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}},
    )  # fmt: skip
    name = bayesian[0]["HyperParameterTuningJobName"]
    tuner = HyperparameterTuner.attach(name, sagemaker_session=session)
    assert tuner.objective_metric_name == "validation:rmse"
    assert tuner.best_training_job() == bayesian[0]["BestTrainingJob"]["TrainingJobName"]
    frame = tuner.analytics().dataframe()
    assert len(frame) == 6 and "FinalObjectiveValue" in frame.columns


def boto3_session(base):
    import boto3

    credentials = base.get_credentials()
    return boto3.Session(
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key=credentials.secret_key,
        region_name=base.region_name,
    )


def test_early_stopping_auto_stops_lagging_children(client, data):
    """TrainingJobEarlyStoppingType Auto: children whose objective lags the median are stopped early."""
    name = unique("auto")
    ranges = {
        "ContinuousParameterRanges": [
            {"Name": "eta", "MinValue": "0.001", "MaxValue": "0.5", "ScalingType": "Logarithmic"}
        ]
    }
    static = {"objective": "reg:squarederror", "num_round": "150"}
    described = run_tuning(
        client,
        tuning_request(name, data, ranges=ranges, static=static, max_jobs=10, parallel=1, RandomSeed=3,
                       strategy="Random", TrainingJobEarlyStoppingType="Auto"),
    )  # fmt: skip
    assert described["HyperParameterTuningJobStatus"] == "Completed"
    counters = described["TrainingJobStatusCounters"]
    assert counters["Stopped"] >= 1 and counters["Completed"] >= 1
    best = described["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
    completed = [j for j in children(client, name) if j["TrainingJobStatus"] == "Completed"]
    assert best == min(j["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for j in completed)
