"""Hyperparameter tuning jobs with real search strategies and real parallelism.

A tuning job is a controller thread that asks an optuna study for the next hyperparameters and
launches ordinary training jobs (visible to DescribeTrainingJob, named ``<tuning-job>-NNN-<8 hex>``,
with ``_tuning_objective_metric`` added), never more than MaxParallelTrainingJobs at a time.
Strategies map to optuna: Bayesian -> TPE (a model-based optimizer), Random -> random sampling,
Grid -> the full grid, Hyperband -> Hyperband pruning on the per-round metric the job prints.
TrainingJobEarlyStoppingType Auto stops children whose objective lags the median of earlier ones.
"""

from __future__ import annotations

import copy
import itertools
import math
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

import optuna

from emulation.protocol import ValidationError
from emulation.sagemaker.state import snapshot, utcnow
from emulation.sagemaker.training import XGBOOST_METRICS, TrainingRun, xgboost_metric_definitions

if TYPE_CHECKING:
    from emulation.sagemaker.backend import SageMakerBackend

optuna.logging.set_verbosity(optuna.logging.WARNING)

#: Metrics for which a larger value is better; every other XGBoost metric is minimised.
MAXIMIZED_METRICS = frozenset(
    "accuracy auc aucpr balanced_accuracy f1 f1_binary f1_macro map ndcg precision r2 recall "
    "precision_macro precision_micro recall_macro recall_micro".split()
)
TUNING_OBJECTIVE_KEY = "_tuning_objective_metric"
_RANGE_KINDS = ("IntegerParameterRanges", "ContinuousParameterRanges", "CategoricalParameterRanges")


def _number(value: str, kind: str, name: str, field: str) -> float:
    try:
        return int(value) if kind == "IntegerParameterRanges" else float(value)
    except ValueError:
        raise ValidationError(
            f"The {field} [{value}] of hyperparameter [{name}] is not a valid {kind[:-15].lower()} value."
        ) from None


def validate_config(config: dict[str, Any], definition: dict[str, Any]) -> None:
    """The checks the service makes before a tuning job starts, with its style of message."""
    objective = config.get("HyperParameterTuningJobObjective") or definition.get("TuningObjective")
    if not objective:
        raise ValidationError(
            "HyperParameterTuningJobObjective is required for the built-in XGBoost algorithm."
        )
    metric = objective["MetricName"]
    channel, _, name = metric.partition(":")
    defined = [d["Name"] for d in definition["AlgorithmSpecification"].get("MetricDefinitions") or []]
    if defined and metric not in defined:
        raise ValidationError(
            f"The objective metric for the hyperparameter tuning job, [{metric}], isn't valid: it is not one of the "
            f"metrics defined in the algorithm's MetricDefinitions ({', '.join(defined)})."
        )
    if not defined and (channel != "validation" or name not in XGBOOST_METRICS):
        raise ValidationError(
            f"The objective metric for the hyperparameter tuning job, [{metric}], isn't valid for the "
            "[sagemaker-xgboost] algorithm. Choose a valid objective metric: validation:<metric> with <metric> one "
            f"of {', '.join(XGBOOST_METRICS)}."
        )
    strategy = config["Strategy"]
    if strategy == "Hyperband" and config.get("TrainingJobEarlyStoppingType", "Off") != "Off":
        raise ValidationError("When using the Hyperband strategy, TrainingJobEarlyStoppingType must be Off.")
    ranges = config.get("ParameterRanges") or {}
    if ranges.get("AutoParameters"):
        raise ValidationError("AutoParameters are not supported locally; give explicit parameter ranges.")
    seen: set[str] = set()
    for kind in _RANGE_KINDS:
        for spec in ranges.get(kind, []):
            name = spec["Name"]
            if name in seen:
                raise ValidationError(
                    f"The hyperparameter [{name}] appears in more than one parameter range."
                )
            seen.add(name)
            if name in (definition.get("StaticHyperParameters") or {}):
                raise ValidationError(
                    f"The hyperparameter [{name}] is specified both in StaticHyperParameters and in ParameterRanges."
                )
            if kind == "CategoricalParameterRanges":
                if not spec["Values"]:
                    raise ValidationError(f"The categorical range of hyperparameter [{name}] has no values.")
                continue
            if strategy == "Grid" and kind == "ContinuousParameterRanges":
                raise ValidationError(
                    f"The Grid strategy does not support continuous parameter ranges (hyperparameter [{name}]); "
                    "use categorical or integer ranges."
                )
            low = _number(spec["MinValue"], kind, name, "MinValue")
            high = _number(spec["MaxValue"], kind, name, "MaxValue")
            if low > high:
                raise ValidationError(
                    f"The MinValue [{spec['MinValue']}] of hyperparameter [{name}] must be less than or equal to "
                    f"its MaxValue [{spec['MaxValue']}]."
                )
            scaling = spec.get("ScalingType", "Auto")
            if scaling == "Logarithmic" and low <= 0:
                raise ValidationError(
                    f"The Logarithmic scaling type requires MinValue > 0 (hyperparameter [{name}], MinValue [{spec['MinValue']}])."
                )
            if scaling == "ReverseLogarithmic" and (
                kind != "ContinuousParameterRanges" or low < 0 or high >= 1
            ):
                raise ValidationError(
                    "The ReverseLogarithmic scaling type requires a continuous range within 0 <= MinValue <= MaxValue < 1 "
                    f"(hyperparameter [{name}])."
                )
    if not seen:
        raise ValidationError("ParameterRanges must contain at least one range.")
    limits = config["ResourceLimits"]
    if strategy != "Grid" and not limits.get("MaxNumberOfTrainingJobs"):
        raise ValidationError(
            "ResourceLimits.MaxNumberOfTrainingJobs is required for the strategy " + strategy + "."
        )


def _sampler(config: dict[str, Any]) -> optuna.samplers.BaseSampler:
    seed = config.get("RandomSeed")
    strategy = config["Strategy"]
    if strategy == "Bayesian":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=5)
    return optuna.samplers.RandomSampler(seed=seed)  # Grid: every point is enqueued up front


def _grid(ranges: dict[str, Any]) -> dict[str, list]:
    grid: dict[str, list] = {}
    for spec in ranges.get("CategoricalParameterRanges", []):
        grid[spec["Name"]] = list(spec["Values"])
    for spec in ranges.get("IntegerParameterRanges", []):
        grid[spec["Name"]] = [str(v) for v in range(int(spec["MinValue"]), int(spec["MaxValue"]) + 1)]
    return grid


def _pruner(config: dict[str, Any], definition: dict[str, Any]) -> optuna.pruners.BasePruner:
    if config["Strategy"] == "Hyperband":
        rounds = int((definition.get("StaticHyperParameters") or {}).get("num_round", "100"))
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(rounds, 3), reduction_factor=3)
    if config.get("TrainingJobEarlyStoppingType") == "Auto":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=5)
    return optuna.pruners.NopPruner()


def suggest(trial: optuna.Trial, ranges: dict[str, Any], grid: bool) -> dict[str, str]:
    """Hyperparameters for one child job, as the strings a training job receives."""
    chosen: dict[str, str] = {}
    for spec in ranges.get("CategoricalParameterRanges", []):
        chosen[spec["Name"]] = str(trial.suggest_categorical(spec["Name"], list(spec["Values"])))
    for spec in ranges.get("IntegerParameterRanges", []):
        name = spec["Name"]
        if grid:
            chosen[name] = trial.suggest_categorical(name, _grid({"IntegerParameterRanges": [spec]})[name])
            continue
        log = spec.get("ScalingType") == "Logarithmic"
        chosen[name] = str(trial.suggest_int(name, int(spec["MinValue"]), int(spec["MaxValue"]), log=log))
    for spec in ranges.get("ContinuousParameterRanges", []):
        name, low, high = spec["Name"], float(spec["MinValue"]), float(spec["MaxValue"])
        scaling = spec.get("ScalingType", "Auto")
        if scaling == "ReverseLogarithmic":
            # Dense sampling near 1: sample 1 - x on a log scale.
            value = 1.0 - trial.suggest_float(f"{name}__one_minus", 1.0 - high, 1.0 - low, log=True)
        else:
            value = trial.suggest_float(name, low, high, log=scaling == "Logarithmic")
        chosen[name] = repr(value)
    return chosen


class TuningRun:
    """One tuning job: its description, its optuna study and the controller thread."""

    def __init__(self, backend: SageMakerBackend, request: dict[str, Any], arn: str):
        self.backend = backend
        self.name = request["HyperParameterTuningJobName"]
        config = copy.deepcopy(request["HyperParameterTuningJobConfig"])
        definition = copy.deepcopy(request["TrainingJobDefinition"])
        objective = config.setdefault("HyperParameterTuningJobObjective", definition.get("TuningObjective"))
        for kind in ("IntegerParameterRanges", "ContinuousParameterRanges"):
            for spec in config.setdefault("ParameterRanges", {}).setdefault(kind, []):
                spec.setdefault("ScalingType", "Auto")
        config["ParameterRanges"].setdefault("CategoricalParameterRanges", [])
        config.setdefault("TrainingJobEarlyStoppingType", "Off")
        definition["StaticHyperParameters"] = {
            **(definition.get("StaticHyperParameters") or {}),
            TUNING_OBJECTIVE_KEY: objective["MetricName"],
        }
        # The SDK sends HyperParameterTuningResourceConfig but reads ResourceConfig back (attach()).
        definition.setdefault("ResourceConfig", definition.get("HyperParameterTuningResourceConfig"))
        definition.setdefault("OutputDataConfig", {}).setdefault("KmsKeyId", "")
        # The service adds the algorithm's metric definitions (unless the definition brings its own,
        # as a script-mode estimator does), plus ObjectiveMetric for the objective.
        algorithm = definition["AlgorithmSpecification"]
        definitions = [dict(d) for d in algorithm.get("MetricDefinitions") or xgboost_metric_definitions()]
        objective_regex = next(d["Regex"] for d in definitions if d["Name"] == objective["MetricName"])
        algorithm["MetricDefinitions"] = [*definitions, {"Name": "ObjectiveMetric", "Regex": objective_regex}]
        self.objective_metric = objective["MetricName"]
        self.maximize = objective["Type"] == "Maximize"
        created = utcnow()
        self.description: dict[str, Any] = {
            "HyperParameterTuningJobName": self.name,
            "HyperParameterTuningJobArn": arn,
            "HyperParameterTuningJobConfig": config,
            "TrainingJobDefinition": definition,
            "HyperParameterTuningJobStatus": "InProgress",
            "CreationTime": created,
            "LastModifiedTime": created,
        }
        limits = config["ResourceLimits"]
        grid_size = (
            math.prod(len(v) for v in _grid(config["ParameterRanges"]).values())
            if config["Strategy"] == "Grid"
            else None
        )
        self.max_jobs = min(filter(None, (limits.get("MaxNumberOfTrainingJobs"), grid_size)))
        self.max_parallel = limits["MaxParallelTrainingJobs"]
        self.max_runtime = limits.get("MaxRuntimeInSeconds")
        self.study = optuna.create_study(
            direction="maximize" if self.maximize else "minimize",
            sampler=_sampler(config),
            pruner=_pruner(config, definition),
        )
        if config["Strategy"] == "Grid":
            grid = _grid(config["ParameterRanges"])
            for point in itertools.product(*grid.values()):
                self.study.enqueue_trial(dict(zip(grid, point, strict=True)))
        self.children: list[TrainingRun] = []
        self._trials: dict[str, optuna.Trial] = {}
        self._tuned: dict[str, dict[str, str]] = {}
        self._pruned: set[str] = set()
        self._running = 0
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=f"tuning-{self.name}", daemon=True)

    # -- the controller ----------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        started = time.monotonic()
        failure = None
        try:
            while not self._stop.is_set() and len(self.children) < self.max_jobs:
                with self._changed:
                    while self._running >= self.max_parallel and not self._stop.is_set():
                        self._changed.wait(0.5)
                        if self.max_runtime and time.monotonic() - started > self.max_runtime:
                            self._stop.set()
                if self._stop.is_set() or (
                    self.max_runtime and time.monotonic() - started > self.max_runtime
                ):
                    break
                self._launch(len(self.children) + 1)
        except Exception as error:  # a child that cannot even be created fails the tuning job
            failure = str(error)
        if self._stop.is_set():
            self._stop_children()
        with self._changed:
            while self._running:
                self._changed.wait(0.5)
        self._conclude(failure)

    def _launch(self, number: int) -> None:
        config = self.description["HyperParameterTuningJobConfig"]
        definition = self.description["TrainingJobDefinition"]
        trial = self.study.ask()
        tuned = suggest(trial, config["ParameterRanges"], grid=config["Strategy"] == "Grid")
        name = f"{self.name}-{number:03d}-{uuid.uuid4().hex[:8]}"
        request = {
            "TrainingJobName": name,
            "HyperParameters": {**definition["StaticHyperParameters"], **tuned},
            **{k: definition[k] for k in ("AlgorithmSpecification", "RoleArn", "OutputDataConfig", "StoppingCondition",
                                            "ResourceConfig", "InputDataConfig", "EnableNetworkIsolation",
                                            "EnableInterContainerTrafficEncryption", "EnableManagedSpotTraining",
                                            "Environment", "VpcConfig") if definition.get(k) is not None},
        }  # fmt: skip
        with self._changed:
            self._running += 1
            self._trials[name] = trial
            self._tuned[name] = tuned
        try:
            run = self.backend.create_training_job(
                request, tuning_job_arn=self.description["HyperParameterTuningJobArn"], observer=self
            )
        except Exception:
            with self._changed:
                self._running -= 1
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        with self._changed:
            self.children.append(run)
        with self.backend.lock:
            self.description["LastModifiedTime"] = utcnow()

    # -- TrainingObserver --------------------------------------------------------------------
    def on_metric(self, run: TrainingRun, name: str, value: float, step: int) -> None:
        if name != self.objective_metric:
            return
        trial = self._trials.get(run.name)
        if trial is None or isinstance(self.study.pruner, optuna.pruners.NopPruner):
            return
        trial.report(value, step)
        if trial.should_prune() and run.name not in self._pruned:
            self._pruned.add(run.name)
            try:
                run.request_stop("EarlyStopped")
            except ValidationError:
                pass  # it finished in the meantime

    def on_finish(self, run: TrainingRun) -> None:
        trial = self._trials.get(run.name)
        value = run.final_metrics.get(self.objective_metric)
        try:
            if trial is not None:
                if run.status == "Completed" and value is not None:
                    self.study.tell(trial, value)
                elif run.name in self._pruned:
                    self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                else:
                    self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        finally:
            with self._changed:
                self._running -= 1
                self._changed.notify_all()

    # -- stopping and the end ----------------------------------------------------------------
    def request_stop(self) -> None:
        with self.backend.lock:
            status = self.description["HyperParameterTuningJobStatus"]
            if status != "InProgress":
                raise ValidationError(
                    f"The request was rejected because the tuning job is in status {status}."
                )
            self.description.update(HyperParameterTuningJobStatus="Stopping", LastModifiedTime=utcnow())
        self._stop.set()
        self._stop_children()
        with self._changed:
            self._changed.notify_all()

    def kill(self) -> None:
        self._stop.set()

    def _stop_children(self) -> None:
        for child in list(self.children):
            if child.status == "InProgress":
                try:
                    child.request_stop()
                except ValidationError:
                    pass

    def _conclude(self, failure: str | None) -> None:
        with self.backend.lock:
            stopping = self.description["HyperParameterTuningJobStatus"] == "Stopping"
            if failure:
                status = "Failed"
                self.description["FailureReason"] = failure[:1024]
            elif stopping:
                status = "Stopped"
            elif self.children and all(c.status == "Failed" for c in self.children):
                status = "Failed"
                self.description["FailureReason"] = (
                    "All training jobs failed. See their FailureReason for details."
                )
            else:
                status = "Completed"
            end = utcnow()
            self.description.update(
                HyperParameterTuningJobStatus=status, HyperParameterTuningEndTime=end, LastModifiedTime=end
            )

    # -- what Describe and List return -------------------------------------------------------
    def objective_value(self, run: TrainingRun) -> float | None:
        return run.final_metrics.get(self.objective_metric)

    def child_summary(self, run: TrainingRun) -> dict[str, Any]:
        described = run.describe()
        value = self.objective_value(run)
        summary = {
            "TrainingJobName": run.name,
            "TrainingJobArn": described["TrainingJobArn"],
            "TuningJobName": self.name,
            "CreationTime": described["CreationTime"],
            "TrainingJobStatus": described["TrainingJobStatus"],
            "TunedHyperParameters": dict(self._tuned.get(run.name, {})),
            **{
                k: described[k]
                for k in ("TrainingStartTime", "TrainingEndTime", "FailureReason")
                if k in described
            },
        }
        if value is not None:
            summary["FinalHyperParameterTuningJobObjectiveMetric"] = {
                "MetricName": self.objective_metric,
                "Value": value,
            }
        if described["TrainingJobStatus"] in ("Completed", "Stopped"):
            summary["ObjectiveStatus"] = "Succeeded" if value is not None else "Failed"
        elif described["TrainingJobStatus"] == "Failed":
            summary["ObjectiveStatus"] = "Failed"
        else:
            summary["ObjectiveStatus"] = "Pending"
        return summary

    def best(self) -> dict[str, Any] | None:
        scored = [(self.objective_value(c), c) for c in self.children if c.status == "Completed"]
        scored = [(v, c) for v, c in scored if v is not None]
        if not scored:
            return None
        _, run = (max if self.maximize else min)(scored, key=lambda pair: pair[0])
        return self.child_summary(run)

    def counters(self) -> tuple[dict[str, int], dict[str, int]]:
        statuses = [c.status for c in self.children]
        training = {
            "Completed": statuses.count("Completed"),
            "InProgress": statuses.count("InProgress") + statuses.count("Stopping"),
            "RetryableError": 0,
            "NonRetryableError": statuses.count("Failed"),
            "Stopped": statuses.count("Stopped"),
        }
        objective_statuses = [self.child_summary(c)["ObjectiveStatus"] for c in self.children]
        objective = {s: objective_statuses.count(s) for s in ("Succeeded", "Pending", "Failed")}
        return training, objective

    def describe(self) -> dict[str, Any]:
        training, objective = self.counters()
        best = self.best()
        with self.backend.lock:
            described = snapshot(self.description)
        described["TrainingJobStatusCounters"] = training
        described["ObjectiveStatusCounters"] = objective
        if best is not None:
            described["BestTrainingJob"] = best
        end = described.get("HyperParameterTuningEndTime") or utcnow()
        described["ConsumedResources"] = {
            "RuntimeInSeconds": int((end - described["CreationTime"]).total_seconds())
        }
        return described
