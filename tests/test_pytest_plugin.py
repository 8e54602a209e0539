"""The pytest plugin, used the way a user's project uses it: a separate test project in a temporary
directory (pytester), run in its own pytest process, testing its own training code.

The inner runs load the plugin by module name and block the entry-point name, so they test this
checkout's plugin whether or not the installed distribution already registers it; the entry point
itself is checked in pyproject.toml, which is what an install registers.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

PLUGIN = (
    "-p",
    "no:sagelocal",
    "-p",
    "workflows.pytest_plugin",
    "-p",
    "no:randomly",
    "-p",
    "no:cacheprovider",
)
BOSTON_CSV = Path(__file__).parents[1] / "workflows" / "datasets" / "data" / "boston_house_prices.csv"

#: The user's own code: it knows nothing about sagelocal (its own Session, get_execution_role()).
TRAINING_CODE = """
import sagemaker
from sagemaker import get_execution_role
from sagemaker.estimator import Estimator
from sagemaker.inputs import TrainingInput
from sagemaker.serializers import CSVSerializer


def train(train_csv, prefix="house-prices"):
    session = sagemaker.Session()
    uri = session.upload_data(train_csv, key_prefix=prefix)
    estimator = Estimator(
        sagemaker.image_uris.retrieve("xgboost", session.boto_region_name, "1.7-1"),
        get_execution_role(),
        instance_count=1,
        instance_type="ml.m5.large",
        output_path=f"s3://{session.default_bucket()}/{prefix}/output",
        hyperparameters={"objective": "reg:squarederror", "num_round": 10},
    )
    estimator.fit({"train": TrainingInput(uri, content_type="text/csv")})
    return estimator


def deploy(estimator):
    return estimator.deploy(1, "ml.m5.large", serializer=CSVSerializer())
"""

USER_TESTS = """
import boto3
import pytest

from training import deploy, train


@pytest.mark.sagelocal
def test_training_writes_a_model(sagelocal):
    estimator = train("train.csv")
    assert estimator.model_data.startswith(f"s3://{sagelocal.bucket}/house-prices/output/")
    key = estimator.model_data.split("/", 3)[3]
    assert sagelocal.client("s3").head_object(Bucket=sagelocal.bucket, Key=key)["ContentLength"] > 0


@pytest.mark.sagelocal
def test_the_endpoint_predicts_and_is_left_running(sagelocal):
    predictor = deploy(train("train.csv"))
    predictions = predictor.predict([[0.1, 18.0, 2.3, 0.0, 0.5, 6.5, 65.0, 4.0, 1.0, 296.0, 15.3, 396.9, 5.0]])
    assert 5 < float(predictions.decode()) < 60
    # no delete_endpoint(): the plugin removes what the test created


def test_nothing_was_left_behind_and_unmarked_tests_are_untouched(sagelocal):
    import os

    assert sagelocal.client("sagemaker").list_endpoints()["Endpoints"] == []
    assert "AWS_ENDPOINT_URL" not in os.environ
"""


def boston_rows(count: int) -> str:
    """Label first, no header, as the built-in algorithm reads CSV."""
    lines = BOSTON_CSV.read_text().splitlines()[2 : 2 + count]
    return "".join(",".join([*line.split(",")[-1:], *line.split(",")[:-1]]) + "\n" for line in lines)


@pytest.fixture
def user_project(pytester: pytest.Pytester, monkeypatch) -> pytest.Pytester:
    monkeypatch.delenv("SAGELOCAL_ENDPOINT", raising=False)
    monkeypatch.setenv("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    pytester.makepyfile(training=TRAINING_CODE, test_training=USER_TESTS)
    (pytester.path / "train.csv").write_text(boston_rows(120))
    return pytester


@pytest.mark.e2e
def test_a_users_training_code_is_tested_against_a_fresh_emulator(user_project):
    result = user_project.runpytest_subprocess(*PLUGIN, "-v")

    result.assert_outcomes(passed=3)


@pytest.mark.e2e
def test_the_option_attaches_to_a_running_emulator(user_project, emulator, client):
    before = {j["TrainingJobName"] for j in client("sagemaker").list_training_jobs()["TrainingJobSummaries"]}

    result = user_project.runpytest_subprocess(
        *PLUGIN, "--sagelocal-endpoint", emulator.url, "-k", "writes_a_model"
    )

    result.assert_outcomes(passed=1)
    after = {j["TrainingJobName"] for j in client("sagemaker").list_training_jobs()["TrainingJobSummaries"]}
    assert len(after - before) == 1, "the user's training job ran on the emulator given by the option"


def test_the_marker_and_option_are_registered(pytester: pytest.Pytester):
    result = pytester.runpytest_subprocess(*PLUGIN, "--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.sagelocal:*"])
    result = pytester.runpytest_subprocess(*PLUGIN, "--help")
    result.stdout.fnmatch_lines(["*--sagelocal-endpoint*"])


def test_pyproject_registers_the_plugin_and_loading_it_starts_nothing():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    module = pyproject["project"]["entry-points"]["pytest11"]["sagelocal"]
    probe = f"import sys, {module}; print(sorted({{'emulation', 'sagemaker', 'boto3'}} & set(sys.modules)))"

    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)

    assert completed.stdout.strip() == "[]", "every pytest run in a project with sagelocal installed loads it"
