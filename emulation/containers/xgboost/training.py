"""The container's ``train`` entry point: algorithm-mode training of the built-in XGBoost image.

``train(prefix, version)`` does what the image does under ``/opt/ml``: validate hyperparameters
and channels, read the data, boost round by round while printing the evaluation lines that
SageMaker's metric regexes scrape (``[12]\\ttrain-rmse:3.14159\\tvalidation-rmse:3.27182``), stop
early the way the image version does, and save ``model/xgboost-model`` in that version's format.
Failures raise ``UserError`` or ``AlgorithmError``; ``failure_reason`` turns them into the
FailureReason a DescribeTrainingJob shows.
"""

from __future__ import annotations

import json
import logging
import pickle
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xgboost

from emulation.containers.xgboost import (
    AlgorithmError,
    UserError,
    data,
    distributed,
    hyperparameters,
    version_at_least,
)

__all__ = ["AlgorithmError", "UserError", "failure_reason", "train"]

MODEL_NAME = "xgboost-model"
FAILURE_REASON_MAX_LENGTH = 1024
_CHANNELS = ("train", "validation", "code")
_DIVIDE_DATA_LINK = "https://docs.aws.amazon.com/sagemaker/latest/dg/xgboost.html#Instance-XGBoost-distributed-training-divide-data"

logger = logging.getLogger("emulation.containers.xgboost")


def failure_reason(error: BaseException) -> str:
    """The FailureReason SageMaker shows for a training job that failed with ``error``.

    A customer error shows its message as is; anything else is the framework error of the
    image's training toolkit, with a traceback when it was not one of the container's own errors.
    """
    if isinstance(error, UserError):
        reason = str(error)
    elif isinstance(error, AlgorithmError):
        reason = f"AlgorithmError: framework error: \n{error}"
    else:
        trace = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        reason = f"AlgorithmError: framework error: \n{trace}\n{error}"
    return reason[:FAILURE_REASON_MAX_LENGTH]


class _StdoutHandler(logging.Handler):
    """Writes each record to the *current* ``sys.stdout`` and flushes, so the parent streams it live."""

    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record), flush=True)


def _configure_logging() -> None:
    """Log as the image does: ``[2024-05-01:12:00:00:INFO] Single node training.``"""
    if not any(isinstance(handler, _StdoutHandler) for handler in logger.handlers):
        handler = _StdoutHandler()
        handler.setFormatter(
            logging.Formatter("[%(asctime)s:%(levelname)s] %(message)s", "%Y-%m-%d:%H:%M:%S")
        )
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except ValueError as error:
        raise AlgorithmError(f"Could not parse {path.name}: {error}") from None


def _validate_channels(channels: dict[str, dict]) -> None:
    """The required channel first, then each given channel in order: known name, accepted ContentType."""
    if "train" not in channels:
        raise UserError("Missing required channel: train")
    for name, channel in channels.items():
        if name not in _CHANNELS:
            raise UserError(f"Extraneous channel found: {name}")
        if name != "code":
            data.data_format(channel.get("ContentType"))


def train(prefix: Path, version: str) -> None:
    """Run a training job whose ``/opt/ml`` is ``prefix``, behaving as image ``version`` does."""
    _configure_logging()
    logger.info("Running XGBoost Sagemaker in algorithm mode")
    config_dir = prefix / "input" / "config"
    config = hyperparameters.validate(_read_json(config_dir / "hyperparameters.json"), version)
    channels = _read_json(config_dir / "inputdataconfig.json")
    _validate_channels(channels)
    if "_kfold" in config:
        raise UserError("Cross-validation training (_kfold) is not supported by the local XGBoost container.")

    data_format = data.data_format(channels["train"].get("ContentType"))
    csv_weights = config.get("csv_weights", 0)
    train_dir = prefix / "input" / "data" / "train"
    validation_dir = prefix / "input" / "data" / "validation" if "validation" in channels else None
    train_files = data.channel_files(train_dir)
    validation_files = data.channel_files(validation_dir) if validation_dir else []
    has_train = sum(path.stat().st_size for path in train_files) > 0
    has_validation = sum(path.stat().st_size for path in validation_files) > 0
    if has_train:
        data.validate_files(train_files, data_format)
    if has_validation:
        data.validate_files(validation_files, data_format)
    dtrain = data.load(train_files, data_format, csv_weights) if has_train else None
    dvalidation = data.load(validation_files, data_format, csv_weights) if has_validation else None
    resources = _read_json(config_dir / "resourceconfig.json")
    hosts = resources.get("hosts") or ["algo-1"]
    current_host = resources.get("current_host", hosts[0])
    if len(hosts) == 1:
        if dtrain is None:
            raise UserError(f"No data in training channel path {train_dir}")
        if validation_dir is not None and dvalidation is None:
            raise UserError(f"No data in validation channel path {validation_dir}")
    _require_labelled_rows(dtrain)
    model_path = prefix / "model" / MODEL_NAME

    def train_here(is_master: bool) -> None:
        if is_master:
            model_path.parent.mkdir(parents=True, exist_ok=True)
        booster = _train_job(config, dtrain, dvalidation, version, model_path, is_master)
        if is_master:
            _save(booster, model_path, version)

    if len(hosts) == 1:
        logger.info("Single node training.")
        train_here(True)
        return
    logger.info(f"Distributed node training with {len(hosts)} hosts: {hosts}")
    distributed.wait_hostname_resolution(hosts)
    include = True
    if dtrain is None:
        logger.warning(
            f"Host {current_host} does not have training data. Will broadcast to cluster and this host "
            f"{current_host} will not be used in distributed training. Please divide the training data across "
            f"instances properly. See {_DIVIDE_DATA_LINK}. "
        )
        include = False
    if validation_dir is not None and dvalidation is None:
        logger.warning(
            f"Host {current_host} does not have validation data in the validation channel : "
            f"{channels['validation']}. Will broadcast to cluster and this host {current_host} will not be used "
            f"in distributed training. Please divide the validation data across instances properly. "
            f"See {_DIVIDE_DATA_LINK}. "
        )
        include = False
    distributed.rabit_run(train_here, include, hosts, current_host)


def _require_labelled_rows(dtrain) -> None:
    if dtrain is not None and dtrain.num_row() == 0:
        raise UserError(
            "Got input data without labels. Please check the input data set. If training job is running on "
            "multiple instances, please switch to using single instance if number of records in the data set "
            "is less than number of workers (16 * number of instance) in the cluster."
        )


def _save(booster, path: Path, version: str) -> None:
    """Images up to 1.2-2 pickle the Booster; later ones call ``save_model`` on a name without an
    extension, so the format is the running xgboost's default: the legacy binary format up to 1.7,
    UBJSON from 2.0. Under an image's own xgboost the file is byte-for-byte what that image writes."""
    partial = path.with_name(path.name + ".partial")
    if version_at_least(version, "1.3-1"):
        booster.save_model(str(partial))
    else:
        with open(partial, "wb") as stream:
            pickle.dump(booster, stream)
    partial.replace(path)


@dataclass
class _Metrics:
    """Which metrics xgboost computes, which the container computes itself, and which one stops early."""

    native: list[str]
    custom: list[str]
    early_stopping: str | None

    @classmethod
    def plan(cls, config: dict[str, Any], version: str, has_validation: bool) -> _Metrics:
        tuning = config.get("_tuning_objective_metric")
        tuning_metrics = tuning.split(":", 1)[1].split(",") if tuning else None
        if tuning:
            logger.info(f"Setting up HPO optimized metric to be : {tuning.split(':', 1)[1]}")
        eval_metric = config.get("eval_metric")
        if tuning_metrics and eval_metric:
            union = sorted(set(tuning_metrics) | set(eval_metric))
        else:
            union = tuning_metrics or eval_metric or []
        custom = [metric for metric in union if metric in CONTAINER_METRICS]
        native = [metric for metric in union if metric not in CONTAINER_METRICS]
        early_stopping = None
        if version_at_least(version, "1.3-1") and has_validation and config.get("early_stopping_rounds"):
            early_stopping = (tuning_metrics or eval_metric or [None])[-1]
        return cls(native, custom, early_stopping)


def _train_job(config: dict[str, Any], dtrain, dvalidation, version: str, model_path: Path, is_master: bool):
    """Boost ``num_round`` rounds, printing each round's evaluation and stopping early like ``version``.

    Across hosts, xgboost's evaluation is already global (allreduced); as in the image, where the
    tracker on the master prints what rank 0 reports, the master alone prints the rounds and saves,
    and its early-stopping decision is every host's, so that all stop at the same round."""
    metrics = _Metrics.plan(config, version, dvalidation is not None)
    params = hyperparameters.booster_params(
        config, version, dtrain.num_row(), distributed=distributed.is_distributed()
    )
    if metrics.native:
        params["eval_metric"] = metrics.native
    elif not version_at_least(version, "1.3-1"):
        # xgboost before 1.3 defaulted classification to the error rate, not the log loss.
        objective = params.get("objective", "")
        if objective == "binary:logistic":
            params["eval_metric"] = "error"
        elif objective.startswith("multi:"):
            params["eval_metric"] = "merror"

    logger.info(f"Train matrix has {dtrain.num_row()} rows and {dtrain.num_col()} columns")
    if dvalidation is not None:
        logger.info(f"Validation matrix has {dvalidation.num_row()} rows")

    evals = [(dtrain, "train")] + ([(dvalidation, "validation")] if dvalidation is not None else [])
    new_style = version_at_least(version, "1.3-1")
    stopper = None
    if config.get("early_stopping_rounds") and (metrics.early_stopping or not new_style):
        stopper = _EarlyStopping(config["early_stopping_rounds"], metrics.early_stopping, new_style)
    save_each_round = config.get("save_model_on_termination") == "true" and is_master
    try:
        booster = xgboost.Booster(params, [matrix for matrix, _ in evals])
        for iteration in range(config["num_round"]):
            booster.update(dtrain, iteration)
            results = _evaluate(booster, evals, iteration, metrics.custom)
            if is_master:
                print(_round_line(iteration, results, version), flush=True)
            if save_each_round:
                _save(booster, model_path, version)
            if stopper is not None and distributed.broadcast(stopper.should_stop(iteration, results)):
                break
        if stopper is not None:
            booster = stopper.finish(booster)
        # Booster.reset (xgboost 2+) drops the training matrices' caches; older releases keep them.
        return booster.reset() if hasattr(booster, "reset") else booster
    except Exception as error:
        message = _clean_xgboost_message(str(error))
        user_message = _customer_error(message, params.get("objective", ""))
        if user_message is not None:
            raise UserError(user_message) from None
        raise AlgorithmError(f"XGB train call failed with exception:\n {message}") from None


# One evaluation result: (data set name, metric name, value).
Result = tuple[str, str, float]


def _evaluate(booster, evals, iteration: int, custom: list[str]) -> list[Result]:
    """xgboost's own metrics for every data set, then the container's metrics for every data set.

    The container metrics see the raw margin, as they did through ``feval`` in the images.
    """
    results: list[Result] = []
    for token in booster.eval_set(evals, iteration).split("\t")[1:]:
        name, _, value = token.rpartition(":")
        data_name, _, metric = name.partition("-")
        results.append((data_name, metric, float(value)))
    for matrix, data_name in evals if custom else ():
        margin = booster.predict(matrix, output_margin=True, training=False)
        labels = matrix.get_label()
        results.extend(
            (data_name, metric, float(CONTAINER_METRICS[metric](labels, margin))) for metric in custom
        )
    return results


def _round_line(iteration: int, results: list[Result], version: str) -> str:
    """Images from 1.3-1 print one value per data set and metric (the container's value wins a
    name clash), grouped by data set; older ones print every result in evaluation order. xgboost
    printed ``%g`` before 1.0 and ``%.5f`` since."""
    if version_at_least(version, "1.3-1"):
        grouped: dict[str, dict[str, float]] = {}
        for data_name, metric, value in results:
            grouped.setdefault(data_name, {})[metric] = value
        results = [
            (data_name, metric, value)
            for data_name, scores in grouped.items()
            for metric, value in scores.items()
        ]
    template = "\t{}-{}:{:.5f}" if version_at_least(version, "1.0-1") else "\t{}-{}:{:g}"
    return f"[{iteration}]" + "".join(template.format(*result) for result in results)


class _EarlyStopping:
    """Stop after ``rounds`` rounds without improvement, as the image's xgboost does.

    From 1.3-1 the image watches its chosen metric on the validation set, tells xgboost whether
    to maximise it, and keeps only the best model. Older images let ``xgb.train`` watch the last
    result of the last data set, guess the direction from the metric name, and keep every tree
    (serving then predicts with the best ones).
    """

    def __init__(self, rounds: int, metric: str | None, new_style: bool):
        self.rounds = rounds
        self.metric = metric
        self.new_style = new_style
        self.best_iteration = 0
        self.best_score: float | None = None

    def _watched(self, results: list[Result]) -> tuple[float, bool]:
        if self.new_style:
            scores = [
                value
                for data_name, metric, value in results
                if (data_name, metric) == ("validation", self.metric)
            ]
            if not scores:
                raise AlgorithmError(
                    f"Early stopping metric '{self.metric}' was not evaluated on the validation data"
                )
            return scores[-1], self.metric in hyperparameters.MAXIMIZE_METRICS
        metric = results[-1][1]
        maximize = metric in ("auc", "aucpr", "map", "ndcg") or metric.startswith(
            ("auc@", "aucpr@", "map@", "ndcg@")
        )
        return results[-1][2], maximize

    def should_stop(self, iteration: int, results: list[Result]) -> bool:
        score, maximize = self._watched(results)
        improved = self.best_score is None or (
            score > self.best_score if maximize else score < self.best_score
        )
        if improved:
            self.best_iteration, self.best_score = iteration, score
            return False
        return iteration - self.best_iteration >= self.rounds

    def finish(self, booster):
        if self.new_style:
            booster = booster[: self.best_iteration + 1]
        booster.set_attr(best_iteration=str(self.best_iteration), best_score=str(self.best_score))
        return booster


def _clean_xgboost_message(message: str) -> str:
    """Drop xgboost's C++ stack trace, which says nothing to a customer."""
    return message.split("\nStack trace:", 1)[0].strip()


def _customer_error(message: str, objective: str) -> str | None:
    """The image's wording of a failure the customer caused, or None for a framework failure.

    The image matched xgboost 1.x messages; the installed xgboost words some differently.
    """
    if "for logistic regression" in message and "label must be in" in message:
        return "label must be in [0,1] for logistic regression"
    if "label must be discrete values in the range of [0, num_class)" in message:
        return "label must be in [0, num_class)"
    if "label must be non-negative for Poisson/Tweedie regression" in message:
        kind = "TweedieRegression" if objective == "reg:tweedie" else "PoissonRegression"
        return f"Check failed: label_correct {kind}: label must be nonnegative"
    if "base_score must be in (0,1)" in message:
        return "Check failed: base_score > 0.0f && base_score < 1.0f base_score must be in (0,1) for logistic loss"
    for known in (
        "Parameter reg_lambda should be greater equal to 0",
        "Target is multiclass but average='binary'",
        "feature_names mismatch",
        "Check failed: preds.size() == info.labels_.size()",
    ):
        if known in message:
            return message
    return None


# The metrics the container computes itself (through feval), on labels and raw margins, with the
# semantics of the scikit-learn functions the image calls.


def _class_labels(margin: np.ndarray) -> np.ndarray:
    """Multi-class margins pick the largest class; binary ones compare log-odds with 0."""
    return np.argmax(margin, axis=-1) if margin.ndim == 2 else (margin > 0.0).astype(int)


def _per_class_counts(labels: np.ndarray, predicted: np.ndarray, classes: np.ndarray):
    true_positive = np.array([np.sum((labels == c) & (predicted == c)) for c in classes], dtype=float)
    predicted_count = np.array([np.sum(predicted == c) for c in classes], dtype=float)
    actual_count = np.array([np.sum(labels == c) for c in classes], dtype=float)
    return true_positive, predicted_count, actual_count


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def _classification(average: str, kind: str) -> Callable[[np.ndarray, np.ndarray], float]:
    """precision/recall/f1 with scikit-learn's ``average`` ("binary", "macro" or "micro"); 0 where undefined."""

    def metric(labels: np.ndarray, margin: np.ndarray) -> float:
        if margin.size == 0:
            return 0.0
        predicted = _class_labels(margin)
        classes = np.union1d(labels, predicted)
        if average == "binary":
            if len(classes) > 2:
                raise ValueError(
                    "Target is multiclass but average='binary'. Please choose another average setting, "
                    "one of [None, 'micro', 'macro', 'weighted']."
                )
            classes = np.array([1.0])
        true_positive, predicted_count, actual_count = _per_class_counts(labels, predicted, classes)
        if average == "micro":
            true_positive, predicted_count, actual_count = (
                np.array([values.sum()]) for values in (true_positive, predicted_count, actual_count)
            )
        precision = _ratio(true_positive, predicted_count)
        recall = _ratio(true_positive, actual_count)
        if kind == "precision":
            scores = precision
        elif kind == "recall":
            scores = recall
        else:
            scores = _ratio(2 * true_positive, predicted_count + actual_count)
        return float(np.mean(scores))

    return metric


def _accuracy(labels: np.ndarray, margin: np.ndarray) -> float:
    return float(np.mean(labels == _class_labels(margin))) if margin.size else 0.0


def _balanced_accuracy(labels: np.ndarray, margin: np.ndarray) -> float:
    if margin.size == 0:
        return 0.0
    classes = np.unique(labels)
    true_positive, _, actual_count = _per_class_counts(labels, _class_labels(margin), classes)
    return float(np.mean(true_positive / actual_count))


def _regression(labels: np.ndarray, margin: np.ndarray) -> np.ndarray:
    if margin.ndim != 1:
        raise ValueError(f"y_true and y_pred have different number of output (1!={margin.shape[-1]})")
    return margin.astype(float) - labels


def _r2(labels: np.ndarray, margin: np.ndarray) -> float:
    residual = float(np.sum(_regression(labels, margin) ** 2))
    total = float(np.sum((labels - labels.mean()) ** 2))
    if total == 0:
        return 1.0 if residual == 0 else 0.0
    return 1.0 - residual / total


CONTAINER_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": _accuracy,
    "balanced_accuracy": _balanced_accuracy,
    "f1": _classification("macro", "f1"),
    "f1_binary": _classification("binary", "f1"),
    "f1_macro": _classification("macro", "f1"),
    "mse": lambda labels, margin: float(np.mean(_regression(labels, margin) ** 2)),
    "rmse": lambda labels, margin: float(np.sqrt(np.mean(_regression(labels, margin) ** 2))),
    "mae": lambda labels, margin: float(np.mean(np.abs(_regression(labels, margin)))),
    "precision": _classification("binary", "precision"),
    "precision_macro": _classification("macro", "precision"),
    "precision_micro": _classification("micro", "precision"),
    "r2": _r2,
    "recall": _classification("binary", "recall"),
    "recall_macro": _classification("macro", "recall"),
    "recall_micro": _classification("micro", "recall"),
}
