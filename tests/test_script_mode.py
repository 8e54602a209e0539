"""Script mode through the SageMaker SDK v2: framework estimators run the user's own train.py and
serve its inference.py, as the framework containers do on AWS.

Every job really runs the script in a child process (scikit-learn, xgboost, torch on the CPU);
the assertions are what the user of each estimator would check.
"""

from __future__ import annotations

import io
import json
import tarfile
import textwrap
import uuid

import numpy as np
import pytest
from response_shapes import check_responses

from emulation import sandbox
from workflows.datasets import boston as boston_data
from workflows.evaluation import regression_errors
from workflows.target import TargetSettings, open_target

pytestmark = pytest.mark.e2e
INSTANCE = "ml.m5.xlarge"


@pytest.fixture(scope="module")
def target(emulator):
    with open_target(TargetSettings(name="local", endpoint_url=emulator.url), log=lambda *_: None) as opened:
        check_responses(opened.boto_session)  # every SageMaker answer must fit botocore's output shape
        yield opened


@pytest.fixture(scope="module")
def boston(target, tmp_path_factory):
    """The Boston split in S3: train and validation (label first), test (features only)."""
    split = boston_data.prepare(tmp_path_factory.mktemp("boston"))
    prefix = f"script-mode-{uuid.uuid4().hex[:8]}"
    s3 = target.client("s3")
    for path in (split.train_csv, split.validation_csv, split.test_csv):
        s3.upload_file(str(path), target.bucket, f"{prefix}/{path.stem}/{path.name}")
    uris = {name: f"s3://{target.bucket}/{prefix}/{name}/" for name in ("train", "validation", "test")}
    return split, uris


def source(directory, **files: str):
    """Write a source directory (file name -> text) and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name.replace("__", ".")).write_text(textwrap.dedent(text))
    return str(directory)


def failure_reason(target, job_name: str) -> str:
    return target.client("sagemaker").describe_training_job(TrainingJobName=job_name)["FailureReason"]


SKLEARN_TRAIN = """
    import argparse, glob, os
    import joblib
    import pandas as pd
    from sklearn.linear_model import Ridge

    if __name__ == "__main__":
        parser = argparse.ArgumentParser()
        parser.add_argument("--alpha", type=float, default=1.0)
        parser.add_argument("--model-dir", default=os.environ["SM_MODEL_DIR"])
        args = parser.parse_args()
        frame = pd.concat(pd.read_csv(f, header=None) for f in glob.glob(os.environ["SM_CHANNEL_TRAIN"] + "/*.csv"))
        model = Ridge(alpha=args.alpha).fit(frame.iloc[:, 1:], frame.iloc[:, 0])
        print(f"alpha={args.alpha} train_r2={model.score(frame.iloc[:, 1:], frame.iloc[:, 0]):.4f}")
        joblib.dump(model, os.path.join(args.model_dir, "model.joblib"))
"""

SKLEARN_INFERENCE = """
    import json, os
    import joblib
    import numpy as np

    def model_fn(model_dir):
        return joblib.load(os.path.join(model_dir, "model.joblib"))

    def input_fn(body, content_type):
        if content_type != "application/json":
            raise ValueError(f"this model reads application/json, not {content_type}")
        return np.array(json.loads(body)["rows"], dtype=float)

    def predict_fn(rows, model):
        if rows.shape[1] != 13:
            raise ValueError(f"each row needs the 13 Boston features, got {rows.shape[1]}")
        return model.predict(rows)

    def output_fn(predictions, accept):
        return json.dumps({"median_values": predictions.round(3).tolist()}), "application/json"
"""


def test_sklearn_fit_then_deploy_with_a_custom_inference_script(target, boston, tmp_path):
    from botocore.exceptions import ClientError
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.serializers import JSONSerializer
    from sagemaker.sklearn import SKLearn

    split, uris = boston
    code = source(tmp_path / "src", train__py=SKLEARN_TRAIN, inference__py=SKLEARN_INFERENCE)
    estimator = SKLearn(
        entry_point="train.py",
        source_dir=code,
        framework_version="1.2-1",
        role=target.role_arn,
        instance_type=INSTANCE,
        instance_count=1,
        hyperparameters={"alpha": 0.5},
        metric_definitions=[{"Name": "train:r2", "Regex": r"train_r2=([0-9.]+)"}],
        sagemaker_session=target.sagemaker_session,
    )
    estimator.fit({"train": uris["train"]}, logs=False)
    described = target.client("sagemaker").describe_training_job(
        TrainingJobName=estimator.latest_training_job.name
    )
    assert described["TrainingJobStatus"] == "Completed"
    assert [m["MetricName"] for m in described["FinalMetricDataList"]] == ["train:r2"]
    assert 0.6 < described["FinalMetricDataList"][0]["Value"] <= 1.0

    predictor = estimator.deploy(
        1, INSTANCE, entry_point="inference.py", serializer=JSONSerializer(), deserializer=JSONDeserializer()
    )
    try:
        answer = predictor.predict({"rows": split.X_test.values.tolist()})
        rmse = regression_errors(split.Y_test, np.array(answer["median_values"]))["test_rmse"]
        assert 3.0 < rmse < 7.0  # a linear model on Boston
        with pytest.raises(ClientError) as raised:
            predictor.predict({"rows": [[1.0, 2.0]]})
        error = raised.value.response
        assert error["Error"]["Code"] == "ModelError"
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
        assert error["OriginalStatusCode"] == 500
        assert "each row needs the 13 Boston features, got 2" in error["Error"]["Message"]
    finally:
        predictor.delete_model()
        predictor.delete_endpoint()


XGBOOST_TRAIN = """
    import argparse, os
    import pandas as pd
    import xgboost as xgb

    def matrix(channel):
        directory = os.environ[f"SM_CHANNEL_{channel.upper()}"]
        frame = pd.concat(pd.read_csv(os.path.join(directory, f), header=None) for f in os.listdir(directory))
        return xgb.DMatrix(frame.iloc[:, 1:], label=frame.iloc[:, 0])

    if __name__ == "__main__":
        parser = argparse.ArgumentParser()
        parser.add_argument("--num_round", type=int)
        parser.add_argument("--max_depth", type=int)
        parser.add_argument("--eta", type=float)
        args = parser.parse_args()
        train, validation = matrix("train"), matrix("validation")
        booster = xgb.train(
            {"max_depth": args.max_depth, "eta": args.eta, "objective": "reg:squarederror"},
            train, args.num_round, evals=[(train, "train"), (validation, "validation")],
        )
        booster.save_model(os.path.join(os.environ["SM_MODEL_DIR"], "xgboost-model"))
"""


def test_xgboost_framework_fit_deploy_predict_and_transform(target, boston, tmp_path):
    from sagemaker.serializers import CSVSerializer
    from sagemaker.xgboost import XGBoost

    split, uris = boston
    estimator = XGBoost(
        entry_point="train.py",
        source_dir=source(tmp_path / "src", train__py=XGBOOST_TRAIN),
        framework_version="1.7-1",
        role=target.role_arn,
        instance_type=INSTANCE,
        instance_count=1,
        hyperparameters={"num_round": 40, "max_depth": 4, "eta": 0.2},
        sagemaker_session=target.sagemaker_session,
    )
    estimator.fit({"train": uris["train"], "validation": uris["validation"]}, logs=False)
    described = target.client("sagemaker").describe_training_job(
        TrainingJobName=estimator.latest_training_job.name
    )
    assert described["HyperParameters"]["sagemaker_program"] == '"train.py"'
    metrics = {m["MetricName"]: m["Value"] for m in described["FinalMetricDataList"]}
    assert 1.5 < metrics["validation:rmse"] < 6.0  # the image's metric definitions read the script's log

    predictor = estimator.deploy(1, INSTANCE, serializer=CSVSerializer())
    try:
        # no inference.py functions: the XGBoost container's defaults load xgboost-model and read CSV
        answer = predictor.predict(split.X_test.values)  # XGBoostPredictor reads text/csv back
        endpoint_predictions = np.array(answer, dtype=float).ravel()
    finally:
        predictor.delete_model()
        predictor.delete_endpoint()
    assert len(endpoint_predictions) == len(split.Y_test)
    assert 2.0 < regression_errors(split.Y_test, endpoint_predictions)["test_rmse"] < 6.0

    transformer = estimator.transformer(1, INSTANCE, accept="text/csv")
    transformer.transform(uris["test"], content_type="text/csv", split_type="Line")
    transformer.wait(logs=False)
    bucket, key = f"{transformer.output_path.rstrip('/')}/test.csv.out".removeprefix("s3://").split("/", 1)
    output = target.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    batch_predictions = np.array([float(v) for v in output.split()])
    np.testing.assert_allclose(batch_predictions, endpoint_predictions, rtol=1e-5)


PYTORCH_TRAIN = """
    import argparse, os
    import numpy as np
    import torch

    if __name__ == "__main__":
        parser = argparse.ArgumentParser()
        parser.add_argument("--epochs", type=int)
        parser.add_argument("--lr", type=float)
        args = parser.parse_args()
        directory = os.environ["SM_CHANNEL_TRAIN"]
        data = np.loadtxt(os.path.join(directory, os.listdir(directory)[0]), delimiter=",", dtype=np.float32)
        features, labels = torch.from_numpy(data[:, 1:]), torch.from_numpy(data[:, :1])
        mean, std = features.mean(0), features.std(0)
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(13, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
        optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
        for epoch in range(args.epochs):
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model((features - mean) / std), labels)
            loss.backward()
            optimizer.step()
        print(f"epoch={epoch} loss={loss.item():.4f}")

        class Standardized(torch.nn.Module):
            def __init__(self, net, mean, std):
                super().__init__()
                self.net, self.mean, self.std = net, mean, std
            def forward(self, x):
                return self.net((x - self.mean) / self.std)

        torch.jit.script(Standardized(model, mean, std)).save(os.path.join(os.environ["SM_MODEL_DIR"], "model.pt"))
"""


def test_pytorch_cpu_fit_deploy_predict(target, boston, tmp_path):
    pytest.importorskip("torch")  # .ci/run installs the CPU build
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.pytorch import PyTorch
    from sagemaker.serializers import JSONSerializer

    split, uris = boston
    estimator = PyTorch(
        entry_point="train.py",
        source_dir=source(tmp_path / "src", train__py=PYTORCH_TRAIN),
        framework_version="2.3",
        py_version="py311",
        role=target.role_arn,
        instance_type=INSTANCE,
        instance_count=1,
        hyperparameters={"epochs": 300, "lr": 0.05},
        metric_definitions=[{"Name": "train:loss", "Regex": r"loss=([0-9.]+)"}],
        sagemaker_session=target.sagemaker_session,
    )
    estimator.fit({"train": uris["train"]}, logs=False)
    described = target.client("sagemaker").describe_training_job(
        TrainingJobName=estimator.latest_training_job.name
    )
    assert described["FinalMetricDataList"][0]["Value"] < 30.0  # MSE, from the script's log

    # no model_fn: the PyTorch container's default loads the TorchScript model.pt
    predictor = estimator.deploy(1, INSTANCE, serializer=JSONSerializer(), deserializer=JSONDeserializer())
    try:
        answer = predictor.predict(split.X_test.values.tolist())
    finally:
        predictor.delete_model()
        predictor.delete_endpoint()
    predictions = np.array(answer).ravel()
    assert len(predictions) == len(split.Y_test)
    assert regression_errors(split.Y_test, predictions)["test_rmse"] < 7.0


def test_a_failing_script_fails_the_job_with_the_end_of_its_traceback(target, boston, tmp_path):
    from sagemaker.exceptions import UnexpectedStatusException
    from sagemaker.sklearn import SKLearn

    script = """
        import sys

        def check(alpha):
            if alpha < 0:
                raise ValueError(f"alpha must be positive, got {alpha}")

        print("starting")
        check(float(sys.argv[sys.argv.index("--alpha") + 1]))
    """
    estimator = SKLearn(
        entry_point="train.py",
        source_dir=source(tmp_path / "src", train__py=script),
        framework_version="1.2-1",
        role=target.role_arn,
        instance_type=INSTANCE,
        hyperparameters={"alpha": -1},
        sagemaker_session=target.sagemaker_session,
    )
    with pytest.raises(UnexpectedStatusException):
        estimator.fit({"train": boston[1]["train"]}, logs=False)
    reason = failure_reason(target, estimator.latest_training_job.name)
    assert reason.startswith("AlgorithmError: ExecuteUserScriptError:\nExitCode 1\nErrorMessage ")
    assert "ValueError: alpha must be positive, got -1.0" in reason
    assert "train.py --alpha -1" in reason and reason.endswith("exit code: 1")


IMPORTS_INFLECTION = """
    import inflection
    print("pluralized:", inflection.pluralize("house"))
"""


def _sklearn_job(target, code: str, uris) -> str:
    """Run a script-mode job on the Scikit-learn image; its name, whatever its outcome."""
    from sagemaker.exceptions import UnexpectedStatusException
    from sagemaker.sklearn import SKLearn

    estimator = SKLearn(
        entry_point="train.py",
        source_dir=code,
        framework_version="1.2-1",
        role=target.role_arn,
        instance_type=INSTANCE,
        sagemaker_session=target.sagemaker_session,
    )
    try:
        estimator.fit({"train": uris["train"]}, logs=False)
    except UnexpectedStatusException:
        pass
    return estimator.latest_training_job.name


def _log_text(target, job_name: str) -> str:
    logs = target.client("logs")
    group = "/aws/sagemaker/TrainingJobs"
    streams = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=job_name)["logStreams"]
    events = logs.get_log_events(logGroupName=group, logStreamName=streams[0]["logStreamName"])["events"]
    return "\n".join(e["message"] for e in events)


def test_requirements_txt_is_installed_and_a_missing_package_fails_as_on_aws(target, boston, tmp_path):
    sagemaker = target.client("sagemaker")
    with_requirements = source(
        tmp_path / "with", train__py=IMPORTS_INFLECTION, requirements__txt="inflection==0.5.1\n"
    )
    job = _sklearn_job(target, with_requirements, boston[1])
    assert sagemaker.describe_training_job(TrainingJobName=job)["TrainingJobStatus"] == "Completed"
    assert "pluralized: houses" in _log_text(target, job)

    without = source(tmp_path / "without", train__py=IMPORTS_INFLECTION)
    job = _sklearn_job(target, without, boston[1])
    reason = failure_reason(target, job)
    assert reason.startswith("AlgorithmError: ExecuteUserScriptError:")
    assert "ModuleNotFoundError: No module named 'inflection'" in reason

    unknown = source(
        tmp_path / "unknown",
        train__py=IMPORTS_INFLECTION,
        requirements__txt="sagelocal-no-such-package-x7q==1.0\n",
    )
    job = _sklearn_job(target, unknown, boston[1])
    reason = failure_reason(target, job)
    assert reason.startswith("AlgorithmError: InstallRequirementsError:\nExitCode 1")
    assert "sagelocal-no-such-package-x7q" in reason
    assert "-m pip install -r requirements.txt" in reason


def test_the_script_gets_the_training_toolkit_environment(target, boston, tmp_path):
    script = """
        import json, os, sys
        print("ENV " + json.dumps({k: v for k, v in os.environ.items() if k.startswith("SM_")}))
        print("ARGS " + json.dumps(sys.argv[1:]))
    """
    from sagemaker.sklearn import SKLearn

    estimator = SKLearn(
        entry_point="train.py",
        source_dir=source(tmp_path / "src", train__py=script),
        framework_version="1.2-1",
        role=target.role_arn,
        instance_type=INSTANCE,
        hyperparameters={"epochs": 3, "learning-rate": 0.1, "tag": "a b"},
        sagemaker_session=target.sagemaker_session,
    )
    estimator.fit({"train": boston[1]["train"], "validation": boston[1]["validation"]}, logs=False)
    log = _log_text(target, estimator.latest_training_job.name)
    env = json.loads(log.split("ENV ", 1)[1].split("\n", 1)[0])
    args = json.loads(log.split("ARGS ", 1)[1].split("\n", 1)[0])
    assert args == ["--epochs", "3", "--learning-rate", "0.1", "--tag", "a b"]
    assert json.loads(env["SM_HPS"]) == {"epochs": 3, "learning-rate": 0.1, "tag": "a b"}
    assert env["SM_HP_EPOCHS"] == "3" and env["SM_HP_TAG"] == "a b"
    assert json.loads(env["SM_CHANNELS"]) == ["train", "validation"]
    for channel in ("train", "validation"):
        assert env[f"SM_CHANNEL_{channel.upper()}"].endswith(f"/input/data/{channel}")
    assert env["SM_MODEL_DIR"].endswith("/model") and env["SM_OUTPUT_DATA_DIR"].endswith("/output/data")
    assert env["SM_CURRENT_HOST"] == "algo-1" and json.loads(env["SM_HOSTS"]) == ["algo-1"]
    assert int(env["SM_NUM_CPUS"]) >= 1 and env["SM_NUM_GPUS"] == "0"
    training_env = json.loads(env["SM_TRAINING_ENV"])
    assert training_env["job_name"] == estimator.latest_training_job.name
    assert (
        training_env["user_entry_point"] == "train.py" and training_env["current_instance_type"] == INSTANCE
    )


@pytest.mark.skipif(not sandbox.available(), reason="the job directory is at /opt/ml only inside bubblewrap")
def test_a_script_that_hard_codes_opt_ml_works_in_the_sandbox(target, boston, tmp_path):
    """An unmodified script from the AWS docs style: fixed /opt/ml paths, no environment variables."""
    from sagemaker.sklearn import SKLearn

    script = """
        import json, os
        hyperparameters = json.load(open("/opt/ml/input/config/hyperparameters.json"))
        rows = sum(1 for f in os.listdir("/opt/ml/input/data/train") for _ in open("/opt/ml/input/data/train/" + f))
        with open("/opt/ml/model/summary.json", "w") as out:
            json.dump({"rows": rows, "depth": json.loads(hyperparameters["depth"])}, out)
        print("home is writable:", os.access(os.environ["HOME"], os.W_OK), "host root visible:", os.path.exists("/var"))
    """
    estimator = SKLearn(
        entry_point="train.py",
        source_dir=source(tmp_path / "src", train__py=script),
        framework_version="1.2-1",
        role=target.role_arn,
        instance_type=INSTANCE,
        hyperparameters={"depth": 3},
        sagemaker_session=target.sagemaker_session,
    )
    estimator.fit({"train": boston[1]["train"]}, logs=False)
    bucket, key = estimator.model_data.removeprefix("s3://").split("/", 1)
    archive = target.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(archive)) as model:
        summary = json.load(model.extractfile("summary.json"))
    assert summary == {"rows": len(boston[0].Y_train), "depth": 3}
    assert "home is writable: True host root visible: False" in _log_text(
        target, estimator.latest_training_job.name
    )


def test_tuning_a_script_mode_estimator_finds_the_best_job(target, boston, tmp_path):
    """The objective comes from the estimator's MetricDefinitions; a grid over alpha has one best
    point by construction (the script's loss is smallest at alpha=10)."""
    from sagemaker.sklearn import SKLearn
    from sagemaker.tuner import CategoricalParameter, HyperparameterTuner

    script = """
        import argparse, math
        parser = argparse.ArgumentParser()
        parser.add_argument("--alpha", type=float)
        parser.add_argument("--unused", default="")
        alpha = parser.parse_args().alpha
        for step in range(3):
            print(f"step {step} validation_loss={(math.log10(alpha) - 1) ** 2 + 1.0 / (step + 1):.6f}")
    """
    estimator = SKLearn(
        entry_point="train.py",
        source_dir=source(tmp_path / "src", train__py=script),
        framework_version="1.2-1",
        role=target.role_arn,
        instance_type=INSTANCE,
        metric_definitions=[{"Name": "validation:loss", "Regex": r"validation_loss=([0-9.]+)"}],
        sagemaker_session=target.sagemaker_session,
    )
    tuner = HyperparameterTuner(
        estimator,
        objective_metric_name="validation:loss",
        objective_type="Minimize",
        hyperparameter_ranges={"alpha": CategoricalParameter([0.1, 1, 10, 100, 1000])},
        metric_definitions=estimator.metric_definitions,
        strategy="Grid",
        max_jobs=5,
        max_parallel_jobs=2,
    )
    tuner.fit({"train": boston[1]["train"]}, logs=False)
    tuner.wait()
    name = tuner.latest_tuning_job.name
    sagemaker = target.client("sagemaker")
    described = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    assert described["HyperParameterTuningJobStatus"] == "Completed"
    assert described["TrainingJobStatusCounters"]["Completed"] == 5
    best = described["BestTrainingJob"]
    assert best["TunedHyperParameters"]["alpha"] == '"10"'  # the SDK JSON-encodes a framework's categories
    # the last value the script printed: (log10(10) - 1)^2 + 1/3
    assert best["FinalHyperParameterTuningJobObjectiveMetric"] == {
        "MetricName": "validation:loss",
        "Value": 0.333333,
    }
    assert tuner.best_training_job() == best["TrainingJobName"]
    child = sagemaker.describe_training_job(TrainingJobName=best["TrainingJobName"])
    assert {"Name": "validation:loss", "Regex": r"validation_loss=([0-9.]+)"} in child[
        "AlgorithmSpecification"
    ]["MetricDefinitions"]
