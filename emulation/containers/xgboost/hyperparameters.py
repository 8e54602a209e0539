"""Hyperparameter validation of the built-in XGBoost container, and its translation to xgboost params.

The container validates the strings of hyperparameters.json before it reads any data, in a fixed
order (required, extraneous, parse, range, dependencies), and customers see the first failure as
the job's FailureReason, so the messages and the order are part of the behaviour we reproduce.
The validated values are then mapped onto the installed xgboost, which has dropped or renamed
some parameters that the older images still accept.
"""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from emulation.containers.xgboost import UserError, version_at_least

# Metrics the container knows, split by the direction a tuning job (and early stopping) optimises.
MAXIMIZE_METRICS = (
    "accuracy", "auc", "aucpr", "balanced_accuracy", "f1", "f1_binary", "f1_macro", "map", "ndcg",
    "precision", "r2", "recall", "precision_macro", "precision_micro", "recall_macro", "recall_micro",
)  # fmt: skip
MINIMIZE_METRICS = (
    "aft-nloglik", "cox-nloglik", "error", "gamma-deviance", "gamma-nloglik", "interval-regression-accuracy",
    "logloss", "mae", "mape", "merror", "mlogloss", "mphe", "mse", "poisson-nloglik", "rmse", "rmsle",
    "tweedie-nloglik",
)  # fmt: skip
#: The values `_tuning_objective_metric` may take: tuning jobs only optimise validation metrics.
TUNING_OBJECTIVE_METRICS = tuple(f"validation:{metric}" for metric in MAXIMIZE_METRICS + MINIMIZE_METRICS)

ALIASES = {"learning_rate": "eta", "min_split_loss": "gamma", "reg_lambda": "lambda", "reg_alpha": "alpha"}

_OBJECTIVES = (
    "aft_loss_distribution", "binary:logistic", "binary:logitraw", "binary:hinge", "count:poisson",
    "multi:softmax", "multi:softprob", "rank:pairwise", "rank:ndcg", "rank:map", "reg:linear",
    "reg:squarederror", "reg:logistic", "reg:gamma", "reg:pseudohubererror", "reg:squaredlogerror",
    "reg:tweedie", "survival:aft", "survival:cox",
)  # fmt: skip
_TREE_UPDATERS = (
    "grow_colmaker", "distcol", "grow_histmaker", "grow_local_histmaker", "grow_skmaker", "sync", "refresh",
    "prune", "grow_quantile_histmaker",
)  # fmt: skip
_TREE_GROW_UPDATERS = (
    "grow_colmaker", "distcol", "grow_histmaker", "grow_local_histmaker", "grow_quantile_histmaker",
)  # fmt: skip
_LINEAR_UPDATERS = ("shotgun", "coord_descent")


@dataclass(frozen=True)
class Interval:
    """A numeric range, printed the way the container prints it in range errors: ``[0, 1]``, ``(0, +inf)``."""

    min_closed: float | None = None
    min_open: float | None = None
    max_closed: float | None = None
    max_open: float | None = None

    def __contains__(self, value: float) -> bool:
        if self.min_closed is not None and value < self.min_closed:
            return False
        if self.min_open is not None and value <= self.min_open:
            return False
        if self.max_closed is not None and value > self.max_closed:
            return False
        return self.max_open is None or value < self.max_open

    def __str__(self) -> str:
        if self.min_closed is not None:
            low = f"[{self.min_closed}"
        elif self.min_open is not None:
            low = f"({self.min_open}"
        else:
            low = "(-inf"
        if self.max_closed is not None:
            high = f"{self.max_closed}]"
        elif self.max_open is not None:
            high = f"{self.max_open})"
        else:
            high = "+inf)"
        return f"{low}, {high}"


def _parse_list(value: str) -> list[str]:
    return value.split(",")  # no stripping: "rmse, mae" fails on " mae", as in the image


def _parse_literal(value: str) -> Any:
    """``(1,0,-1)`` or ``[[0, 1], [2, 3]]`` as Python literals; malformed ones do not parse."""
    try:
        parsed = ast.literal_eval(value)
    except SyntaxError as error:
        raise ValueError(value) from error
    if not isinstance(parsed, tuple | list):
        raise ValueError(value)
    return parsed


def _parse_nested_list(value: str) -> list:
    parsed = _parse_literal(value)
    if not all(isinstance(inner, tuple | list) for inner in parsed):
        raise ValueError(value)
    return parsed


Dependencies = Callable[[Any, dict[str, Any]], None]


def _elements(value: list) -> list:
    return list(value)


def _nested_elements(value: list) -> list:
    return [item for inner in value for item in inner]


@dataclass(frozen=True)
class Hyperparameter:
    """One hyperparameter: how its string parses, which values are in range, what it depends on.

    ``valid`` is an ``Interval`` or a collection of allowed values. For list-valued hyperparameters
    ``items`` yields the elements it applies to.
    """

    name: str
    parse: Callable[[str], Any]
    valid: Interval | tuple
    dependencies: Dependencies | None = None
    items: Callable[[Any], list] | None = None

    def check_range(self, value: Any) -> None:
        """Raise the image's range error; list-valued hyperparameters word it differently."""
        shown = list(self.valid) if isinstance(self.valid, tuple) else self.valid
        if self.items is None:
            if value not in self.valid:
                raise UserError(f"Hyperparameter {self.name}: {value} is not in {shown}")
        elif any([item not in self.valid for item in self.items(value)]):  # checks every item, as the image
            raise UserError(f"Hyperparameter {self.name}: value {value} not in range {shown}")


def _integer(name: str, valid: Interval) -> Hyperparameter:
    return Hyperparameter(name, int, valid)


def _continuous(name: str, valid: Interval) -> Hyperparameter:
    return Hyperparameter(name, float, valid)


def _categorical(name: str, valid: tuple, dependencies: Dependencies | None = None) -> Hyperparameter:
    return Hyperparameter(name, str, valid, dependencies)


def _check_updater(value: list[str], config: dict[str, Any]) -> None:
    if config.get("booster") == "gblinear":
        if not (len(value) == 1 and value[0] in _LINEAR_UPDATERS):
            raise UserError("Linear updater should be one of these options: 'shotgun', 'coord_descent'.")
    elif config.get("process_type") == "update":
        if not all(updater in ("refresh", "prune") for updater in value):
            raise UserError("process_type 'update' can only be used with updater 'refresh' and 'prune'")
    else:
        if not all(updater in _TREE_UPDATERS for updater in value):
            raise UserError(
                "Tree updater should be selected from these options: 'grow_colmaker', 'distcol', 'grow_histmaker', "
                "'grow_local_histmaker', 'grow_skmaker', 'grow_quantile_histmaker', 'sync', 'refresh', 'prune', "
                "'shortgun', 'coord_descent'."
            )
        if sum(updater in _TREE_GROW_UPDATERS for updater in value) > 1:
            raise UserError(
                "Only one tree grow plugin can be selected. Choose one from the"
                "following: 'grow_colmaker', 'distcol', 'grow_histmaker', "
                "'grow_local_histmaker', 'grow_skmaker'"
            )


def _check_objective(value: str, config: dict[str, Any]) -> None:
    if value in ("multi:softmax", "multi:softprob") and config.get("num_class") is None:
        raise UserError("Require input for parameter 'num_class' for multi-classification")


def _check_eval_metric(value: list[str], config: dict[str, Any]) -> None:
    objective = config.get("objective") or "reg:squarederror"
    if "auc" in value and not objective.startswith(("binary:", "rank:")):
        raise UserError("Metric 'auc' can only be applied for classification and ranking problems.")
    if "aft-nloglik" in value and objective != "survival:aft":
        raise UserError("Metric 'aft-nloglik' can only be applied for 'survival:aft' objective.")


def _check_monotone_constraints(value: Any, config: dict[str, Any]) -> None:
    if config.get("tree_method") not in ("exact", "hist"):
        raise UserError(
            "monotone_constraints can be used only when the tree_method parameter is set to either 'exact' or 'hist'."
        )


def _check_interaction_constraints(value: Any, config: dict[str, Any]) -> None:
    if config.get("tree_method") not in ("exact", "hist", "approx"):
        raise UserError(
            "interaction_constraints can be used only when the tree_method parameter is set to "
            "either 'exact', 'hist' or 'approx'."
        )


class _EvalMetrics(tuple):
    """The eval_metric range: the container's metrics, plus thresholded ``error@0.7`` / ``ndcg@3`` forms."""

    def __contains__(self, metric: object) -> bool:
        metric = str(metric)
        if "<function" in metric:
            raise UserError(f"User defined evaluation metric {metric} is not supported yet.")
        if "@" not in metric:
            return super().__contains__(metric)
        name, _, threshold = (part.strip() for part in metric.partition("@"))
        if name not in ("error", "ndcg", "map"):
            raise UserError(
                f"Metric '{metric}' is not supported. Parameter 'eval_metric' with customized threshold should "
                "be one of these options: 'error', 'ndcg', 'map'."
            )
        try:
            float(threshold)
        except ValueError:
            raise UserError(f"Threshold value 't' in '{name}@t' expects float input.") from None
        return True


_TRUE_FALSE = ("true", "false")

# Declaration order matters: range and dependency checks run in this order.
_HYPERPARAMETERS = (
    _integer("num_round", Interval(min_closed=1)),
    _integer("csv_weights", Interval(min_closed=0, max_closed=1)),
    _integer("early_stopping_rounds", Interval(min_closed=1)),
    _categorical("booster", ("gbtree", "gblinear", "dart")),
    _integer("silent", Interval(min_closed=0, max_closed=1)),
    _integer("verbosity", Interval(min_closed=0, max_closed=3)),
    _integer("nthread", Interval(min_closed=1)),
    _continuous("eta", Interval(min_closed=0, max_closed=1)),
    _continuous("gamma", Interval(min_closed=0)),
    _integer("max_depth", Interval(min_closed=0)),
    _continuous("min_child_weight", Interval(min_closed=0)),
    _continuous("max_delta_step", Interval(min_closed=0)),
    _continuous("subsample", Interval(min_open=0, max_closed=1)),
    _continuous("colsample_bytree", Interval(min_open=0, max_closed=1)),
    _continuous("colsample_bylevel", Interval(min_open=0, max_closed=1)),
    _continuous("colsample_bynode", Interval(min_open=0, max_closed=1)),
    _continuous("lambda", Interval(min_closed=0)),
    _continuous("alpha", Interval(min_closed=0)),
    _categorical("tree_method", ("auto", "exact", "approx", "hist", "gpu_hist")),
    _continuous("sketch_eps", Interval(min_open=0, max_open=1)),
    _continuous("scale_pos_weight", Interval(min_open=0)),
    Hyperparameter(
        "updater", _parse_list, _TREE_UPDATERS + _LINEAR_UPDATERS, _check_updater, items=_elements
    ),
    _categorical("dsplit", ("row", "col")),
    _integer("refresh_leaf", Interval(min_closed=0, max_closed=1)),
    _categorical("process_type", ("default", "update")),
    _categorical("grow_policy", ("depthwise", "lossguide")),
    _integer("max_leaves", Interval(min_closed=0)),
    _integer("max_bin", Interval(min_closed=0)),
    _categorical("predictor", ("auto", "cpu_predictor", "gpu_predictor")),
    Hyperparameter(
        "monotone_constraints", _parse_literal, (-1, 0, 1), _check_monotone_constraints, items=_elements
    ),
    Hyperparameter(
        "interaction_constraints",
        _parse_nested_list,
        Interval(min_closed=0),
        _check_interaction_constraints,
        items=_nested_elements,
    ),
    _categorical("sample_type", ("uniform", "weighted")),
    _categorical("normalize_type", ("tree", "forest")),
    _continuous("rate_drop", Interval(min_closed=0, max_closed=1)),
    _integer("one_drop", Interval(min_closed=0, max_closed=1)),
    _continuous("skip_drop", Interval(min_closed=0, max_closed=1)),
    _continuous("lambda_bias", Interval(min_closed=0, max_closed=1)),
    _continuous("tweedie_variance_power", Interval(min_open=1, max_open=2)),
    _categorical("objective", _OBJECTIVES, _check_objective),
    _integer("num_class", Interval(min_closed=2)),
    _continuous("base_score", Interval(min_closed=0)),
    _integer("_kfold", Interval(min_closed=2)),
    _integer("_num_cv_round", Interval(min_closed=1)),
    _categorical("_tuning_objective_metric", TUNING_OBJECTIVE_METRICS),
    Hyperparameter(
        "eval_metric",
        _parse_list,
        _EvalMetrics(MAXIMIZE_METRICS + MINIMIZE_METRICS),
        _check_eval_metric,
        items=_elements,
    ),
    _integer("seed", Interval(min_open=-(2**31), max_open=2**31 - 1)),
    _integer("num_parallel_tree", Interval(min_closed=1)),
    _categorical("save_model_on_termination", _TRUE_FALSE),
    _categorical("aft_loss_distribution", ("normal", "logistic", "extreme")),
    _continuous("aft_loss_distribution_scale", Interval(min_closed=0)),
    _categorical("single_precision_histogram", _TRUE_FALSE),
    _categorical("deterministic_histogram", _TRUE_FALSE),
    _categorical("sampling_method", ("uniform", "gradient_based")),
    _integer("prob_buffer_row", Interval(min_open=1.0)),
)


def _definitions(version: str) -> dict[str, Hyperparameter]:
    """The hyperparameters an image version accepts: ``silent`` went away after 1.0-1."""
    keep_silent = not version_at_least(version, "1.2-1")
    return {hp.name: hp for hp in _HYPERPARAMETERS if hp.name != "silent" or keep_silent}


def validate(raw: dict[str, str], version: str) -> dict[str, Any]:
    """Validate hyperparameters.json as the container does; returns parsed values under canonical names.

    Raises ``UserError`` with the container's message for the first problem found: aliases are
    resolved first, then the required check, then each key in the file's order is looked up and
    parsed, then ranges and dependencies are checked in that order too.
    """
    definitions = _definitions(version)
    strings = {ALIASES.get(key, key): value for key, value in raw.items()}
    if "num_round" not in strings:
        raise UserError("Missing required hyperparameter: num_round")
    parsed: dict[str, Any] = {}
    for name, value in strings.items():
        if name not in definitions:
            raise UserError(f"Extraneous hyperparameter found: {name}")
        try:
            parsed[name] = definitions[name].parse(str(value))
        except ValueError:
            raise UserError(f"Hyperparameter {name}: could not parse value") from None
    for name, value in parsed.items():
        definitions[name].check_range(value)
    for name, value in parsed.items():
        if definitions[name].dependencies is not None:
            definitions[name].dependencies(value, parsed)
    return parsed


# Parameters the installed xgboost no longer knows (it would warn about each), and values it renamed.
_DROPPED = frozenset({"silent", "predictor", "dsplit", "sketch_eps", "lambda_bias", "prob_buffer_row",
                      "single_precision_histogram", "deterministic_histogram"})  # fmt: skip
_RENAMED_UPDATERS = {
    "distcol": "grow_colmaker",
    "grow_local_histmaker": "grow_histmaker",
    "grow_skmaker": "grow_histmaker",
}
# Hyperparameters that steer the container itself rather than the booster.
CONTAINER_ONLY = frozenset({"num_round", "csv_weights", "early_stopping_rounds", "eval_metric", "_kfold",
                            "_num_cv_round", "_tuning_objective_metric", "save_model_on_termination"})  # fmt: skip
#: xgboost before 2.0 used "auto" -> exact greedy below this many rows on one node (approx across nodes).
_EXACT_GREEDY_MAX_ROWS = 2**22


def booster_params(
    config: dict[str, Any], version: str, num_train_rows: int, distributed: bool = False
) -> dict[str, Any]:
    """Translate validated hyperparameters into params for the installed xgboost, at ``version``'s defaults.

    Older images ran xgboost releases with other defaults: base_score 0.5 instead of one estimated
    from the labels, and "auto" tree construction meaning exact greedy on small data on one host
    (approx when ``distributed`` across hosts) instead of hist. Keeping those defaults keeps the printed metrics close to what the real image prints.
    """
    params = {
        key: value for key, value in config.items() if key not in CONTAINER_ONLY and key not in _DROPPED
    }
    params.setdefault("verbosity", 0)  # the installed xgboost warns about things the image's never did
    params.setdefault("nthread", os.cpu_count() or 1)
    if params.get("objective") == "reg:linear":
        params["objective"] = "reg:squarederror"
    if params.get("tree_method") == "gpu_hist":
        params["tree_method"] = "hist"
    if "updater" in params:
        updaters = [_RENAMED_UPDATERS.get(updater, updater) for updater in params["updater"]]
        params["updater"] = ",".join(dict.fromkeys(updaters))
    if "monotone_constraints" in params:
        params["monotone_constraints"] = "(" + ",".join(map(str, params["monotone_constraints"])) + ")"
    if "interaction_constraints" in params:
        params["interaction_constraints"] = json.dumps(
            [list(inner) for inner in params["interaction_constraints"]]
        )
    if not version_at_least(version, "3.0-5"):
        params.setdefault("base_score", 0.5)
        if params.get("tree_method", "auto") == "auto" and params.get("grow_policy") != "lossguide":
            exact = num_train_rows < _EXACT_GREEDY_MAX_ROWS and not distributed
            params["tree_method"] = "exact" if exact else "approx"
    return params
