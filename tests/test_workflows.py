"""The Boston workflows end to end on the local target, as `sagelocal run` runs them."""

from __future__ import annotations

import re

import pytest

from workflows import registry
from workflows.target import TargetSettings, open_target

pytestmark = pytest.mark.e2e


@pytest.fixture
def local_target(emulator):
    with open_target(TargetSettings(name="local", endpoint_url=emulator.url), log=lambda *_: None) as target:
        yield target


def leftovers(client):
    sagemaker = client("sagemaker")
    return (
        [e["EndpointName"] for e in sagemaker.list_endpoints(MaxResults=100)["Endpoints"]],
        [c["EndpointConfigName"] for c in sagemaker.list_endpoint_configs(MaxResults=100)["EndpointConfigs"]],
        [m["ModelName"] for m in sagemaker.list_models(MaxResults=100)["Models"]],
    )


@pytest.mark.parametrize("name", ["boston-high-level", "boston-low-level"])
def test_boston_deploy_workflow(name, emulator, client, tmp_path, capsys):
    before = leftovers(client)
    with open_target(TargetSettings(name="local", endpoint_url=emulator.url), log=print) as target:
        result = registry.load(name).run(target, tmp_path)
    printed = capsys.readouterr().out
    # fit(logs=True) / logs_for_job print the container's round lines as CloudWatch shows them
    assert re.search(r"\[0\]#011train-rmse:[0-9.]+#011validation-rmse:[0-9.]+", printed)
    assert 2.0 < result.metrics["test_rmse"] < 6.0
    assert result.metrics["endpoint_test_rmse"] == pytest.approx(result.metrics["test_rmse"], rel=1e-4)
    assert all(plot.exists() and plot.stat().st_size > 10_000 for plot in result.plots)
    assert leftovers(client) == before, "the workflow left endpoints, configs or models behind"


@pytest.mark.parametrize("name", ["boston-tuning-high-level", "boston-tuning-low-level"])
def test_boston_tuning_workflow(name, emulator, client, tmp_path):
    before = leftovers(client)
    with open_target(TargetSettings(name="local", endpoint_url=emulator.url), log=lambda *_: None) as target:
        result = registry.load(name).run(target, tmp_path)
    assert 2.0 < result.metrics["test_rmse"] < 6.0
    assert 1.5 < result.metrics["best_validation_rmse"] < 5.0
    assert [p.name for p in result.plots] == ["predicted-vs-actual.png", "tuning-progress.png"]
    described = client("sagemaker").describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=result.details["tuning_job"]
    )
    assert sum(described["TrainingJobStatusCounters"].values()) == 20
    assert described["BestTrainingJob"]["TrainingJobName"] == result.details["best_training_job"]
    assert leftovers(client) == before


@pytest.mark.parametrize("interruption", [RuntimeError, KeyboardInterrupt])
def test_a_failing_or_interrupted_step_still_cleans_up(interruption, emulator, client, tmp_path):
    """A failure (or Ctrl-C) injected right after CreateEndpoint, outside any try/finally of the
    workflow: the tracker still removes the endpoint, its config and the model."""
    from workflows import boston_low_level

    def log(message):
        if "creating" in message:
            raise interruption("injected failure after CreateEndpoint")

    before = leftovers(client)
    with pytest.raises(interruption, match="injected failure"):
        with open_target(
            TargetSettings(name="local", endpoint_url=emulator.url), log=lambda *_: None
        ) as target:
            boston_low_level.run(target, tmp_path, log=log)
    assert leftovers(client) == before


def test_boston_script_mode_workflow(emulator, client, tmp_path):
    """Processing job -> the user's train.py -> tuner -> deploy with inference.py -> predict."""
    before = leftovers(client)
    with open_target(TargetSettings(name="local", endpoint_url=emulator.url), log=lambda *_: None) as target:
        result = registry.load("boston-script-mode").run(target, tmp_path)
    assert 2.0 < result.metrics["test_rmse"] < 6.0
    assert 1.5 < result.metrics["best_validation_rmse"] < 6.0
    sagemaker = client("sagemaker")
    processing = sagemaker.describe_processing_job(ProcessingJobName=result.details["processing_job"])
    assert processing["ProcessingJobStatus"] == "Completed"
    tuning = sagemaker.describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=result.details["tuning_job"]
    )
    assert tuning["TrainingJobStatusCounters"]["Completed"] == 6
    assert tuning["BestTrainingJob"]["TrainingJobName"] == result.details["best_training_job"]
    assert all(plot.exists() and plot.stat().st_size > 10_000 for plot in result.plots)
    assert leftovers(client) == before
