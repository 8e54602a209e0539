"""The local built-in XGBoost container: training log, errors, model formats and serving answers."""

from __future__ import annotations

import io
import itertools
import json
import math
import pickle
import re

import numpy as np
import pytest
import xgboost

from emulation.containers.xgboost import SUPPORTED_VERSIONS, inference, training, version_at_least
from emulation.containers.xgboost.training import AlgorithmError, UserError, failure_reason

# The metric definition SageMaker injects for built-in XGBoost, applied to a line as CloudWatch shows it.
VALIDATION_RMSE_REGEX = r".*\[[0-9]+\].*#011validation-rmse:([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?).*"
ROUND_LINE = re.compile(r"^\[(\d+)\]((?:\t[a-z]+-[a-z0-9_@.-]+:-?[0-9.e+-]+)+)$")


def regression_rows(count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(count, 4))
    label = 3 * features[:, 0] - 2 * features[:, 1] + rng.normal(scale=0.5, size=count)
    return np.column_stack([label, features])


def classification_rows(count: int, seed: int = 0) -> np.ndarray:
    rows = regression_rows(count, seed)
    rows[:, 0] = (rows[:, 0] > 0).astype(float)
    return rows


def write_csv(path, rows: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, rows, delimiter=",", fmt="%.6g")


def write_libsvm(path, rows: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        f"{row[0]:g} " + " ".join(f"{index}:{value:.6g}" for index, value in enumerate(row[1:]))
        for row in rows
    ]
    path.write_text("\n".join(lines) + "\n")


def make_job(prefix, hyperparameters: dict, channels: dict[str, dict] | None = None):
    """A job directory (the container's /opt/ml) with the given config; data is written by the caller."""
    config = prefix / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    (config / "inputdataconfig.json").write_text(
        json.dumps(channels or {"train": {"ContentType": "text/csv"}})
    )
    return prefix


def csv_job(prefix, hyperparameters: dict, train_rows: np.ndarray, validation_rows: np.ndarray | None = None):
    channels = {"train": {"ContentType": "text/csv"}}
    if validation_rows is not None:
        channels["validation"] = {"ContentType": "text/csv"}
        write_csv(prefix / "input" / "data" / "validation" / "validation.csv", validation_rows)
    write_csv(prefix / "input" / "data" / "train" / "train.csv", train_rows)
    return make_job(prefix, hyperparameters, channels)


def round_lines(output: str) -> list[tuple[int, dict[str, float]]]:
    rounds = []
    for line in output.splitlines():
        match = ROUND_LINE.match(line)
        if match:
            scores = {}
            for item in match[2].split("\t")[1:]:
                name, _, value = item.rpartition(":")
                scores[name] = float(value)
            rounds.append((int(match[1]), scores))
    return rounds


def load_saved(prefix, version: str):
    path = prefix / "model" / "xgboost-model"
    if version_at_least(version, "1.3-1"):
        booster = xgboost.Booster()
        booster.load_model(bytearray(path.read_bytes()))
        return booster
    return pickle.loads(path.read_bytes())


# --- versions and failure reasons -------------------------------------------------------------


def test_versions_are_ordered_with_the_legacy_image_first():
    assert SUPPORTED_VERSIONS[0] == "1"
    for older, newer in itertools.pairwise(SUPPORTED_VERSIONS):
        assert version_at_least(newer, older) and not version_at_least(older, newer)
    assert version_at_least("1.2-2", "1.2-2")


def test_failure_reason_shows_user_errors_as_is_and_frames_algorithm_errors():
    assert failure_reason(UserError("Missing required channel: train")) == "Missing required channel: train"
    reason = failure_reason(AlgorithmError("XGB train call failed with exception:\n boom" + "x" * 2000))
    assert reason.startswith(
        "AlgorithmError: framework error: \nXGB train call failed with exception:\n boom"
    )
    assert len(reason) == 1024
    assert issubclass(UserError, AlgorithmError)


# --- hyperparameter and channel validation ----------------------------------------------------


@pytest.mark.parametrize(
    ("hyperparameters", "message"),
    [
        ({"eta": "0.1"}, "Missing required hyperparameter: num_round"),
        ({"num_round": "5", "n_estimators": "5"}, "Extraneous hyperparameter found: n_estimators"),
        ({"num_round": "5", "max_depth": "6.0"}, "Hyperparameter max_depth: could not parse value"),
        ({"num_round": "5", "eta": "1.5"}, "Hyperparameter eta: 1.5 is not in [0, 1]"),
        ({"num_round": "5", "learning_rate": "1.5"}, "Hyperparameter eta: 1.5 is not in [0, 1]"),
        ({"num_round": "5", "subsample": "0"}, "Hyperparameter subsample: 0.0 is not in (0, 1]"),
        ({"num_round": "0"}, "Hyperparameter num_round: 0 is not in [1, +inf)"),
        (
            {"num_round": "5", "booster": "gbforest"},
            "Hyperparameter booster: gbforest is not in ['gbtree', 'gblinear', 'dart']",
        ),
        (
            {"num_round": "5", "objective": "multi:softmax"},
            "Require input for parameter 'num_class' for multi-classification",
        ),
        (
            {"num_round": "5", "objective": "reg:squarederror", "eval_metric": "rmse,auc"},
            "Metric 'auc' can only be applied for classification and ranking problems.",
        ),
        ({"num_round": "5", "silent": "1"}, "Extraneous hyperparameter found: silent"),
        (
            {"num_round": "5", "tree_method": "hist", "monotone_constraints": "(1,2)"},
            "Hyperparameter monotone_constraints: value (1, 2) not in range [-1, 0, 1]",
        ),
    ],
)
def test_hyperparameter_errors_carry_the_container_message(tmp_path, hyperparameters, message):
    make_job(tmp_path, hyperparameters)
    with pytest.raises(UserError) as raised:
        training.train(tmp_path, "1.7-1")
    assert str(raised.value) == message


def test_silent_is_accepted_up_to_1_0_1(tmp_path):
    job = csv_job(tmp_path, {"num_round": "2", "silent": "1"}, regression_rows(50))
    training.train(job, "1.0-1")
    assert (job / "model" / "xgboost-model").exists()


@pytest.mark.parametrize(
    ("channels", "message"),
    [
        ({"validation": {"ContentType": "text/csv"}}, "Missing required channel: train"),
        ({"train": {"ContentType": "text/csv"}, "test": {}}, "Extraneous channel found: test"),
        (
            {"train": {"ContentType": "application/json"}},
            "application/json is not an accepted ContentType: csv, libsvm, parquet, recordio-protobuf, text/csv, "
            "text/libsvm, text/x-libsvm, application/x-parquet, application/x-recordio-protobuf.",
        ),
    ],
)
def test_channel_errors(tmp_path, channels, message):
    make_job(tmp_path, {"num_round": "2"}, channels)
    with pytest.raises(UserError) as raised:
        training.train(tmp_path, "1.7-1")
    assert str(raised.value) == message


def test_empty_training_channel(tmp_path):
    make_job(tmp_path, {"num_round": "2"})
    (tmp_path / "input" / "data" / "train").mkdir(parents=True)
    (tmp_path / "input" / "data" / "train" / "_SUCCESS").write_text("ignored")
    with pytest.raises(UserError) as raised:
        training.train(tmp_path, "1.7-1")
    assert str(raised.value) == f"No data in training channel path {tmp_path / 'input' / 'data' / 'train'}"


def test_csv_read_as_the_default_libsvm_fails_with_the_first_line(tmp_path):
    rows = regression_rows(20)
    write_csv(tmp_path / "input" / "data" / "train" / "boston.csv", rows)
    make_job(tmp_path, {"num_round": "2"}, {"train": {}})
    # As in the image, the snippet is the line's first 50 characters, its newline included when shorter.
    first_line = (
        (tmp_path / "input" / "data" / "train" / "boston.csv").read_text().splitlines(keepends=True)[0]
    )
    with pytest.raises(UserError) as raised:
        training.train(tmp_path, "1.7-1")
    assert str(raised.value) == (
        f"First line '{first_line[:50]}...' of file 'boston.csv' is not 'LIBSVM' format. "
        "Please ensure the file is in 'LIBSVM' format."
    )


def test_parquet_needs_pyarrow(tmp_path):
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("pyarrow is installed, so parquet is read")
    (tmp_path / "input" / "data" / "train").mkdir(parents=True)
    (tmp_path / "input" / "data" / "train" / "part-0.parquet").write_bytes(b"PAR1")
    make_job(tmp_path, {"num_round": "2"}, {"train": {"ContentType": "application/x-parquet"}})
    with pytest.raises(
        UserError, match="^Failed to load parquet data with exception:\nreading parquet needs pyarrow"
    ):
        training.train(tmp_path, "1.7-1")


def test_bad_labels_for_logistic_regression_are_a_user_error(tmp_path):
    rows = regression_rows(50)  # labels far outside [0, 1]
    job = csv_job(tmp_path, {"num_round": "2", "objective": "binary:logistic"}, rows)
    with pytest.raises(UserError) as raised:
        training.train(job, "1.7-1")
    assert str(raised.value) == "label must be in [0,1] for logistic regression"


# --- training log, metrics and model formats ---------------------------------------------------


def test_csv_training_logs_like_the_container_and_saves_a_native_model(tmp_path, capsys):
    job = csv_job(
        tmp_path, {"num_round": "5", "max_depth": "3"}, regression_rows(200), regression_rows(100, seed=1)
    )
    training.train(job, "1.7-1")
    output = capsys.readouterr().out
    messages = [re.sub(r"^\[[0-9:-]+:INFO\] ", "", line) for line in output.splitlines() if ":INFO] " in line]
    assert messages == [
        "Running XGBoost Sagemaker in algorithm mode",
        *["Determined delimiter of CSV input is ','"] * 4,
        "Single node training.",
        "Train matrix has 200 rows and 4 columns",
        "Validation matrix has 100 rows",
    ]
    lines = [line for line in output.splitlines() if line.startswith("[") and "INFO" not in line]
    assert len(lines) == 5
    for number, line in enumerate(lines):
        assert re.fullmatch(rf"\[{number}\]\ttrain-rmse:\d+\.\d{{5}}\tvalidation-rmse:\d+\.\d{{5}}", line)
    scraped = re.match(VALIDATION_RMSE_REGEX, lines[-1].replace("\t", "#011"))
    assert scraped and float(scraped[1]) == round_lines(output)[-1][1]["validation-rmse"]
    booster = load_saved(job, "1.7-1")
    assert booster.num_boosted_rounds() == 5 and booster.num_features() == 4


def test_libsvm_training_before_1_3_pickles_and_defaults_to_the_error_rate(tmp_path, capsys):
    write_libsvm(tmp_path / "input" / "data" / "train" / "part-0", classification_rows(200))
    make_job(
        tmp_path,
        {"num_round": "3", "objective": "binary:logistic"},
        {"train": {"ContentType": "text/libsvm"}},
    )
    training.train(tmp_path, "1.2-1")
    rounds = round_lines(capsys.readouterr().out)
    assert [list(scores) for _, scores in rounds] == [["train-error"]] * 3
    booster = load_saved(tmp_path, "1.2-1")
    assert isinstance(booster, xgboost.Booster) and booster.num_boosted_rounds() == 3


def test_version_0_90_prints_values_with_g_format(tmp_path, capsys):
    job = csv_job(tmp_path, {"num_round": "2"}, regression_rows(100))
    training.train(job, "0.90-1")
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[0]")]
    value = lines[0].split(":")[1]
    assert lines[0].startswith("[0]\ttrain-rmse:") and value == f"{float(value):g}"


def test_csv_weights_take_the_second_column(tmp_path, capsys):
    """Weight 0 on half the rows trains the model that the other half alone trains, and differs from
    the unweighted one: the weights reach xgboost, and the second column is not read as a feature."""
    rows = regression_rows(200)
    kept = rows[:, 0] > 0  # the rows with a positive label keep weight 1
    weighted = np.column_stack([rows[:, :1], kept.astype(float), rows[:, 1:]])
    unweighted = np.column_stack([rows[:, :1], np.ones(len(rows)), rows[:, 1:]])
    hyperparameters = {"num_round": "5", "csv_weights": "1", "base_score": "0.5", "tree_method": "exact"}
    models = {}
    for name, table in (("weighted", weighted), ("unweighted", unweighted), ("subset", unweighted[kept])):
        training.train(csv_job(tmp_path / name, hyperparameters, table), "1.7-1")
        models[name] = load_saved(tmp_path / name, "1.7-1")
    assert "Train matrix has 200 rows and 4 columns" in capsys.readouterr().out
    features = xgboost.DMatrix(rows[kept, 1:])  # where the split points of both models agree
    predicted = {name: model.predict(features) for name, model in models.items()}
    np.testing.assert_allclose(predicted["weighted"], predicted["subset"], rtol=1e-5)
    assert np.abs(predicted["weighted"] - predicted["unweighted"]).mean() > 0.05


def test_early_stopping_keeps_the_best_iteration(tmp_path, capsys):
    hyperparameters = {"num_round": "300", "eta": "0.5", "eval_metric": "rmse", "early_stopping_rounds": "3"}
    job = csv_job(tmp_path, hyperparameters, regression_rows(200), regression_rows(100, seed=1))
    training.train(job, "1.7-1")
    rounds = round_lines(capsys.readouterr().out)
    scores = [score["validation-rmse"] for _, score in rounds]
    best = int(np.argmin(scores))
    assert len(rounds) < 300 and rounds[-1][0] == best + 3
    assert load_saved(job, "1.7-1").num_boosted_rounds() == best + 1


def test_early_stopping_needs_a_metric_from_1_3_1(tmp_path, capsys):
    job = csv_job(tmp_path, {"num_round": "30", "eta": "0.5", "early_stopping_rounds": "2"}, regression_rows(200),
                  regression_rows(100, seed=1))  # fmt: skip
    training.train(job, "1.7-1")
    assert len(round_lines(capsys.readouterr().out)) == 30


def test_early_stopping_before_1_3_keeps_every_tree_and_serving_uses_the_best(tmp_path, capsys):
    hyperparameters = {"num_round": "300", "eta": "0.5", "early_stopping_rounds": "3"}
    job = csv_job(tmp_path, hyperparameters, regression_rows(200), regression_rows(100, seed=1))
    training.train(job, "1.2-2")
    rounds = round_lines(capsys.readouterr().out)
    best = int(np.argmin([score["validation-rmse"] for _, score in rounds]))
    saved = load_saved(job, "1.2-2")
    assert saved.num_boosted_rounds() == len(rounds) == best + 4
    model = inference.load_model(job / "model")
    row = regression_rows(1, seed=5)[:, 1:]
    body = ",".join(map(str, row[0])).encode()
    expected = saved.predict(xgboost.DMatrix(row), iteration_range=(0, best + 1))
    assert inference.invoke(model, body, "text/csv", None, "1.2-2").body == f"{float(expected[0])}\n".encode()


def test_tuning_objective_metric_joins_eval_metric_and_container_metrics_are_computed(tmp_path, capsys):
    hyperparameters = {"num_round": "3", "eval_metric": "mae", "_tuning_objective_metric": "validation:mse"}
    job = csv_job(tmp_path, hyperparameters, regression_rows(200), regression_rows(100, seed=1))
    training.train(job, "1.7-1")
    output = capsys.readouterr().out
    assert "Setting up HPO optimized metric to be : mse" in output
    last = round_lines(output)[-1][1]
    # mae and mse are both computed by the container, so xgboost adds its default metric, as in the image.
    assert list(last) == [
        f"{data}-{metric}" for data in ("train", "validation") for metric in ("rmse", "mae", "mse")
    ]
    booster = load_saved(job, "1.7-1")
    validation = regression_rows(100, seed=1)
    predictions = booster.predict(xgboost.DMatrix(validation[:, 1:]))
    assert last["validation-mse"] == pytest.approx(np.mean((predictions - validation[:, 0]) ** 2), abs=1e-4)


def test_classification_metrics_from_the_container(tmp_path, capsys):
    hyperparameters = {"num_round": "3", "objective": "binary:logistic", "eval_metric": "auc,accuracy,f1"}
    job = csv_job(tmp_path, hyperparameters, classification_rows(200), classification_rows(100, seed=1))
    training.train(job, "1.7-1")
    last = round_lines(capsys.readouterr().out)[-1][1]
    assert list(last) == [
        f"{data}-{metric}" for data in ("train", "validation") for metric in ("auc", "accuracy", "f1")
    ]
    validation = classification_rows(100, seed=1)
    predicted = load_saved(job, "1.7-1").predict(xgboost.DMatrix(validation[:, 1:])) > 0.5
    assert last["validation-accuracy"] == pytest.approx(np.mean(predicted == validation[:, 0]), abs=1e-5)


# --- serving -----------------------------------------------------------------------------------


@pytest.fixture
def served(tmp_path):
    """A 1.7-1 model trained on 4 features, as serving loads it, plus the booster to compare with.
    Made per test (it is small), so that mutation testing counts training and loading as part of
    every serving test rather than only the first."""
    prefix = tmp_path / "served"
    csv_job(prefix, {"num_round": "4"}, regression_rows(200))
    training.train(prefix, "1.7-1")
    return inference.load_model(prefix / "model"), load_saved(prefix, "1.7-1")


ROWS = regression_rows(2, seed=9)[:, 1:]
CSV_BODY = "\n".join(",".join(map(str, row)) for row in ROWS).encode()


def expected_scores(booster, rows: np.ndarray) -> list[str]:
    return [str(float(value)) for value in booster.predict(xgboost.DMatrix(rows, missing=math.nan))]


def test_serving_csv_output_per_version(served):
    model, booster = served
    scores = expected_scores(booster, ROWS)
    old = inference.invoke(model, CSV_BODY, "text/csv", "application/json", "1.2-1")
    assert (old.status, old.body) == (200, ",".join(scores).encode())
    new = inference.invoke(model, CSV_BODY, "text/csv", None, "1.7-1")
    assert (new.status, new.body) == (200, ("\n".join(scores) + "\n").encode())
    assert new.content_type.startswith("text/csv")
    assert inference.invoke(model, CSV_BODY, "text/csv", "*/*", "3.0-5").body == new.body


def test_serving_json_and_jsonlines(served):
    model, booster = served
    scores = [float(score) for score in expected_scores(booster, ROWS)]
    as_json = inference.invoke(model, CSV_BODY, "text/csv", "application/json", "1.7-1")
    assert json.loads(as_json.body) == {"predictions": [{"score": score} for score in scores]}
    as_lines = inference.invoke(model, CSV_BODY, "text/csv", "application/jsonlines", "1.7-1")
    assert [json.loads(line) for line in as_lines.body.decode().splitlines()] == [
        {"score": s} for s in scores
    ]


def test_recordio_protobuf_round_trip_with_the_sagemaker_sdk(tmp_path, monkeypatch):
    """Train on records the SDK writes, send it the SDK's RecordSerializer payload, read the answer back."""
    monkeypatch.setenv("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    common = pytest.importorskip("sagemaker.amazon.common")
    rows = regression_rows(200)
    channel = tmp_path / "input" / "data" / "train"
    channel.mkdir(parents=True)
    with open(channel / "train.pbr", "wb") as stream:
        common.write_numpy_to_dense_tensor(
            stream, rows[:, 1:].astype("float32"), rows[:, 0].astype("float32")
        )
    make_job(tmp_path, {"num_round": "3"}, {"train": {"ContentType": "application/x-recordio-protobuf"}})
    training.train(tmp_path, "1.7-1")
    model = inference.load_model(tmp_path / "model")
    payload = common.RecordSerializer().serialize(ROWS)
    payload = payload.getvalue() if hasattr(payload, "getvalue") else payload
    result = inference.invoke(
        model, payload, "application/x-recordio-protobuf", "application/x-recordio-protobuf", "1.7-1"
    )
    records = common.read_records(io.BytesIO(result.body))
    scores = [record.label["score"].float32_tensor.values[0] for record in records]
    expected = load_saved(tmp_path, "1.7-1").predict(xgboost.DMatrix(ROWS.astype("float32")))
    assert result.status == 200 and scores == pytest.approx(expected.tolist(), rel=1e-6)


def test_batch_transform_before_1_2_2_prints_one_prediction_per_line(served, monkeypatch):
    model, booster = served
    monkeypatch.setenv("SAGEMAKER_BATCH", "true")
    result = inference.invoke(model, CSV_BODY, "text/csv", None, "1.0-1")
    assert result.body == ("\n".join(expected_scores(booster, ROWS)) + "\n").encode()


def test_blank_csv_cell_is_a_missing_value(served):
    model, booster = served
    rows = ROWS[:1].copy()
    rows[0, 2] = math.nan
    body = ",".join("" if math.isnan(value) else str(value) for value in rows[0]).encode()
    result = inference.invoke(model, body, "text/csv", None, "1.7-1")
    assert result.body == (expected_scores(booster, rows)[0] + "\n").encode()


def test_libsvm_payload(served):
    model, booster = served
    body = " ".join(f"{index}:{value}" for index, value in enumerate(ROWS[0])).encode()
    result = inference.invoke(model, body, "text/libsvm", None, "1.7-1")
    assert (result.status, result.body) == (200, (expected_scores(booster, ROWS[:1])[0] + "\n").encode())


def test_serving_errors(served):
    model, _ = served
    assert inference.invoke(model, b"", "text/csv", None, "1.7-1").status == 204
    unsupported = inference.invoke(model, CSV_BODY, "application/json", None, "1.7-1")
    assert unsupported.status == 415
    assert unsupported.body.decode() == (
        "application/json is not an accepted ContentType: csv, libsvm, parquet, recordio-protobuf, text/csv, "
        "text/libsvm, text/x-libsvm, application/x-parquet, application/x-recordio-protobuf."
    )
    unreadable = inference.invoke(model, b"1,two,3,4", "text/csv", None, "1.7-1")
    assert unreadable.status == 415 and unreadable.body.startswith(b"Loading csv data failed with Exception")
    mismatch = inference.invoke(model, b"1,2", "text/csv", None, "1.7-1")
    assert (mismatch.status, mismatch.body.decode()) == (
        400,
        "Unable to evaluate payload provided: Feature size of csv inference data 2 is not consistent with "
        "feature size of trained model 4.",
    )
    not_acceptable = inference.invoke(model, CSV_BODY, "text/csv", "text/html", "1.7-1")
    assert (not_acceptable.status, not_acceptable.body.decode()) == (
        406,
        "Accept type text/html is not supported. Please use supported accept types: ['application/json', "
        "'application/jsonlines', 'application/x-recordio-protobuf', 'text/csv'].",
    )
    assert inference.invoke(model, CSV_BODY, "text/csv", "text/html", "1.2-1").status == 200


@pytest.mark.parametrize("booster_name", ["gblinear", "dart"])
def test_other_boosters_train_and_serve(tmp_path, booster_name):
    job = csv_job(tmp_path, {"num_round": "3", "booster": booster_name}, regression_rows(100))
    training.train(job, "1.7-1")
    result = inference.invoke(inference.load_model(job / "model"), CSV_BODY, "text/csv", None, "1.7-1")
    expected = load_saved(job, "1.7-1").predict(xgboost.DMatrix(ROWS))
    assert result.status == 200
    assert [float(line) for line in result.body.decode().split()] == pytest.approx(
        expected.tolist(), rel=1e-6
    )


def test_model_load_errors(tmp_path):
    with pytest.raises(inference.ModelLoadError):
        inference.load_model(tmp_path)
    (tmp_path / "xgboost-model").write_bytes(b"not a model")
    with pytest.raises(inference.ModelLoadError, match="cannot be loaded"):
        inference.load_model(tmp_path)


def test_execution_parameters():
    parameters = inference.execution_parameters()
    assert parameters["BatchStrategy"] == "MULTI_RECORD" and parameters["MaxPayloadInMB"] == 6
    assert parameters["MaxConcurrentTransforms"] >= 1
