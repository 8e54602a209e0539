"""A training job, run for real: download the channels, run the container, upload model.tar.gz.

The state machine is the service's (TrainingJobStatus InProgress -> Completed | Failed | Stopping ->
Stopped, SecondaryStatus Starting -> Downloading -> Training -> Uploading -> Completed), so boto3
waiters, ``wait_for_job`` and ``fit(logs=True)`` work unchanged. The container's output goes to
CloudWatch Logs as the real log driver writes it (a tab shows as ``#011``), and metrics are parsed
from those lines with the service's own metric definitions.
"""

from __future__ import annotations

import io
import json
import math
import re
import shutil
import tarfile
import threading
import time
import uuid
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from emulation.containers import HOST_ADDRESSES_VARIABLE
from emulation.containers.images import ContainerImage
from emulation.containers.scriptmode.training import decode_hyperparameters, runs_user_script
from emulation.containment import EscapeError, contained, extract_tar
from emulation.moto_bridge import S3Location
from emulation.protocol import ValidationError
from emulation.runners import Container, algorithm_error
from emulation.sagemaker import instances
from emulation.sagemaker.state import snapshot, utcnow

if TYPE_CHECKING:
    from emulation.sagemaker.backend import SageMakerBackend

LOG_GROUP = CLOUDWATCH_NAMESPACE = "/aws/sagemaker/TrainingJobs"
_NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
#: The metrics the built-in XGBoost container can print; the service defines train: and validation:
#: metric definitions for each of them.
XGBOOST_METRICS = (
    "accuracy", "auc", "aucpr", "balanced_accuracy", "cox-nloglik", "error", "f1", "f1_binary", "f1_macro",
    "gamma-deviance", "gamma-nloglik", "logloss", "mae", "map", "mape", "merror", "mlogloss", "mse", "ndcg",
    "poisson-nloglik", "precision", "precision_macro", "precision_micro", "r2", "recall", "recall_macro",
    "recall_micro", "rmse", "rmsle", "tweedie-nloglik",
)  # fmt: skip
_ROUND = re.compile(r"^\[([0-9]+)\]")


@lru_cache(maxsize=1)
def xgboost_metric_definitions() -> tuple[dict[str, str], ...]:
    return tuple(
        {
            "Name": f"{channel}:{metric}",
            "Regex": f".*\\[[0-9]+\\].*#011{channel}-{re.escape(metric)}:{_NUMBER}.*",
        }
        for metric in XGBOOST_METRICS
        for channel in ("train", "validation")
    )


def metric_patterns(definitions: list[dict[str, str]]) -> tuple[tuple[str, re.Pattern], ...]:
    """Compiled MetricDefinitions (``re`` caches the compiled patterns between jobs); a bad regex
    was already refused when the job was created."""
    return tuple((d["Name"], re.compile(d["Regex"])) for d in definitions)


class TrainingObserver(Protocol):
    """Who watches a job as it runs (the tuning service): per-round metrics and the end."""

    def on_metric(self, run: TrainingRun, name: str, value: float, step: int) -> None: ...

    def on_finish(self, run: TrainingRun) -> None: ...


class TrainingRun:
    def __init__(
        self,
        backend: SageMakerBackend,
        request: dict[str, Any],
        arn: str,
        image: ContainerImage,
        tuning_job_arn: str | None = None,
        observer: TrainingObserver | None = None,
    ):
        self.backend = backend
        self.observer = observer
        self.name = request["TrainingJobName"]
        self.image = image
        self._stop = threading.Event()
        self._stop_reason: str | None = None
        self._containers: list[Container] = []
        self._metrics_lock = threading.Lock()  # every host's log is read on its own thread
        self.final_metrics: dict[str, float] = {}
        self._metric_points: list[dict[str, Any]] = []  # for CloudWatch, as the service publishes them
        created = utcnow()
        algorithm = {
            "TrainingInputMode": "File",
            "EnableSageMakerMetricsTimeSeries": False,
            **request["AlgorithmSpecification"],
        }
        if image.framework == "xgboost":
            algorithm.setdefault("MetricDefinitions", [dict(d) for d in xgboost_metric_definitions()])
        self.script_mode = runs_user_script(image, request.get("HyperParameters", {}))
        self._patterns = metric_patterns(algorithm.get("MetricDefinitions", []))
        self._metric_counts: dict[str, int] = {}
        self.description: dict[str, Any] = {
            "TrainingJobName": self.name,
            "TrainingJobArn": arn,
            **({"TuningJobArn": tuning_job_arn} if tuning_job_arn else {}),
            "ModelArtifacts": {"S3ModelArtifacts": ""},
            "TrainingJobStatus": "InProgress",
            "SecondaryStatus": "Starting",
            "HyperParameters": dict(request.get("HyperParameters", {})),
            "AlgorithmSpecification": algorithm,
            "RoleArn": request["RoleArn"],
            "InputDataConfig": request.get("InputDataConfig", []),
            "OutputDataConfig": {"KmsKeyId": "", **request["OutputDataConfig"]},
            "ResourceConfig": request["ResourceConfig"],
            "StoppingCondition": request["StoppingCondition"],
            "CreationTime": created,
            "LastModifiedTime": created,
            "SecondaryStatusTransitions": [
                {"Status": "Starting", "StartTime": created, "StatusMessage": "Starting the training job"}
            ],
            "EnableNetworkIsolation": request.get("EnableNetworkIsolation", False),
            "EnableInterContainerTrafficEncryption": request.get(
                "EnableInterContainerTrafficEncryption", False
            ),
            "EnableManagedSpotTraining": request.get("EnableManagedSpotTraining", False),
            **{
                k: request[k]
                for k in ("DebugHookConfig", "ProfilerConfig", "Environment", "VpcConfig")
                if k in request
            },
        }
        self.prefix = backend.config.data_dir / "training" / f"{self.name}-{uuid.uuid4().hex[:8]}"
        #: The job's hosts (algo-1 ... algo-N) with their addresses; one host where the runner cannot
        #: run several side by side. Each host's /opt/ml is its own directory under ``prefix``.
        self.hosts, self._host_addresses = ["algo-1"], None
        count = int(request["ResourceConfig"].get("InstanceCount", 1))
        if count > 1:
            names = [f"algo-{number}" for number in range(1, count + 1)]
            self._host_addresses = backend.runner.host_addresses(names)
            if self._host_addresses is not None:
                self.hosts = names
        self._thread = threading.Thread(target=self._run, name=f"training-{self.name}", daemon=True)

    # -- state -------------------------------------------------------------------------------
    @property
    def status(self) -> str:
        return self.description["TrainingJobStatus"]

    def describe(self) -> dict[str, Any]:
        with self.backend.lock:
            return snapshot(self.description)

    def _transition(self, secondary: str, message: str, **fields: Any) -> None:
        at = utcnow()
        with self.backend.lock:
            transitions = self.description["SecondaryStatusTransitions"]
            if transitions and "EndTime" not in transitions[-1]:
                transitions[-1]["EndTime"] = at
            transitions.append({"Status": secondary, "StartTime": at, "StatusMessage": message})
            self.description.update(SecondaryStatus=secondary, LastModifiedTime=at, **fields)

    def _finish(self, status: str, secondary: str, message: str, **fields: Any) -> None:
        self._transition(secondary, message, TrainingJobStatus=status, **fields)
        with self.backend.lock:
            transitions = self.description["SecondaryStatusTransitions"]
            transitions[-1]["EndTime"] = transitions[-1]["StartTime"]
            start = self.description.get("TrainingStartTime")
            if start is not None:
                end = self.description.setdefault("TrainingEndTime", utcnow())
                seconds = max(1, math.ceil((end - start).total_seconds()))
                self.description["TrainingTimeInSeconds"] = seconds
                self.description["BillableTimeInSeconds"] = seconds
        if self.observer is not None:
            self.observer.on_finish(self)

    # -- control -----------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def request_stop(self, reason: str = "Stopping") -> None:
        with self.backend.lock:
            if self.status != "InProgress":
                raise ValidationError(
                    f"The request was rejected because the training job is in status {self.status}."
                )
            self._stop_reason = reason
            self._stop.set()
            self._transition("Stopping", "Stopping the training job", TrainingJobStatus="Stopping")
            containers = list(self._containers)
        for container in containers:
            container.stop()

    def kill(self) -> None:
        self._stop.set()
        for container in list(self._containers):
            container.kill()

    def host_dir(self, host: str) -> Path:
        """The directory that is ``host``'s /opt/ml."""
        return self.prefix / host

    # -- the job -----------------------------------------------------------------------------
    def _run(self) -> None:
        if not self.backend.capacity.acquire(self._stop):  # waits in Starting, as for AWS capacity
            self._stopped()
            return
        try:
            self._prepare_config()
            if self._stopped():
                return
            self._transition("Downloading", "Downloading input data")
            self._download_channels()
            if self._stopped():
                return
            self._transition(
                "Training",
                "Training image download completed. Training in progress.",
                TrainingStartTime=utcnow(),
            )
            failure = self._train()
            self._publish_metrics()
            with self.backend.lock:
                self.description["TrainingEndTime"] = utcnow()
                self.description["FinalMetricDataList"] = [
                    {"MetricName": name, "Value": value, "Timestamp": self.description["TrainingEndTime"]}
                    for name, value in self.final_metrics.items()
                ]
            if self._stopped():
                return
            if failure is not None:
                self._finish(
                    "Failed", "Failed", f"Training job failed. Reason: {failure}", FailureReason=failure
                )
                return
            self._transition("Uploading", "Uploading generated training model")
            artifact = self._upload_model()
            self._finish(
                "Completed",
                "Completed",
                "Training job completed",
                ModelArtifacts={"S3ModelArtifacts": artifact},
            )
        except (EscapeError, SourceNotFound) as error:
            self._finish("Failed", "Failed", "Training job failed", FailureReason=f"ClientError: {error}")
        except Exception as error:  # the emulator's own failure still ends the job, never the emulator
            self._finish(
                "Failed", "Failed", "Training job failed", FailureReason=f"InternalServerError: {error}"
            )
        finally:
            self.backend.capacity.release()
            shutil.rmtree(self.prefix, ignore_errors=True)

    def _stopped(self) -> bool:
        if not self._stop.is_set():
            return False
        if self._stop_reason == "MaxRuntimeExceeded":
            self._finish(
                "Stopped",
                "MaxRuntimeExceeded",
                "Training job runtime exceeded MaxRuntimeInSeconds provided",
            )
        else:
            self._finish("Stopped", "Stopped", "Training job stopped")
        return True

    def _prepare_config(self) -> None:
        channels = {
            c["ChannelName"]: {
                "TrainingInputMode": c.get("InputMode", "File"),
                "S3DistributionType": c["DataSource"]["S3DataSource"].get(
                    "S3DataDistributionType", "FullyReplicated"
                ),
                "RecordWrapperType": c.get("RecordWrapperType", "None"),
                **({"ContentType": c["ContentType"]} if "ContentType" in c else {}),
            }
            for c in self.description["InputDataConfig"]
        }
        for host in self.hosts:
            config = self.host_dir(host) / "input" / "config"
            config.mkdir(parents=True)
            (self.host_dir(host) / "model").mkdir()
            (self.host_dir(host) / "output" / "data").mkdir(parents=True)
            (config / "hyperparameters.json").write_text(json.dumps(self.description["HyperParameters"]))
            (config / "inputdataconfig.json").write_text(json.dumps(channels))
            (config / "resourceconfig.json").write_text(
                json.dumps(resource_config(self.description["ResourceConfig"], host, self.hosts))
            )

    def _download_channels(self) -> None:
        """Each host's channels: all the objects (FullyReplicated), or its share of them
        (ShardedByS3Key: the keys in S3's order, dealt out to algo-1 ... algo-N in turn)."""
        for channel in self.description["InputDataConfig"]:
            source = channel["DataSource"]["S3DataSource"]
            name = channel["ChannelName"]
            sharded = source.get("S3DataDistributionType") == "ShardedByS3Key"
            for index, host in enumerate(self.hosts):
                download_prefix(
                    self.backend.moto,
                    source["S3Uri"],
                    self.host_dir(host) / "input" / "data" / name,
                    shown_as=f"/opt/ml/input/data/{name}",
                    shard=(index, len(self.hosts)) if sharded else None,
                )
        if self.script_mode:
            submitted = decode_hyperparameters(self.description["HyperParameters"]).get(
                "sagemaker_submit_directory"
            )
            if isinstance(submitted, str) and submitted.startswith("s3://"):
                for host in self.hosts:
                    extract_source(self.backend.moto, submitted, self.host_dir(host) / "code")

    def _train(self) -> str | None:
        """Run one container per host; return the FailureReason of the first host that failed (the
        others are then stopped), or None when every host succeeded."""
        epoch = int(time.time())
        streams = {
            host: self.backend.moto.log_stream(self.backend.region, LOG_GROUP, f"{self.name}/{host}-{epoch}")
            for host in self.hosts
        }
        count = int(self.description["ResourceConfig"].get("InstanceCount", 1))
        if count > len(self.hosts):
            streams["algo-1"].write(
                f"sagelocal: this runner cannot run {count} hosts side by side; algo-1 trains alone on all the data."
            )
        limit = self.description["StoppingCondition"].get("MaxRuntimeInSeconds", 86400)
        timer = threading.Timer(limit, self._exceed_runtime)
        timer.daemon = True
        environment = dict(self.description.get("Environment") or {})
        if self.script_mode:  # as the platform sets them; the user's code may call AWS with the job's role
            environment.update(
                self.backend.user_code_aws_environment(),
                TRAINING_JOB_NAME=self.name,
                TRAINING_JOB_ARN=self.description["TrainingJobArn"],
            )
        if self._host_addresses is not None:
            environment[HOST_ADDRESSES_VARIABLE] = json.dumps(self._host_addresses)
        with self.backend.lock:
            if self._stop.is_set():
                return None
            try:
                for host in self.hosts:
                    self._containers.append(
                        self.backend.runner.start(
                            self.image,
                            "train",
                            self.host_dir(host),
                            environment,
                            instances.limits(self.description["ResourceConfig"].get("InstanceType")),
                        )
                    )
            except BaseException:
                for container in self._containers:
                    container.kill()
                raise
        failures: list[str] = []  # the first is the job's
        failures_lock = threading.Lock()

        def watch(host: str, container: Container) -> None:
            for line in container.logs():
                shown = line.replace("\t", "#011")
                streams[host].write(shown)
                with self._metrics_lock:
                    self._record_metrics(shown)
            status = container.wait()
            if status.succeeded:
                return
            with failures_lock:
                if failures or self._stop.is_set():
                    return  # stopped because another host failed, or by the user
                failure_file = self.host_dir(host) / "output" / "failure"
                if failure_file.exists():
                    failures.append(failure_file.read_text()[:1024])
                else:
                    streams[host].write(f"The training process {status.describe()}.")
                    failures.append(algorithm_error(status))
            for other in self._containers:
                if other is not container:
                    other.stop()

        watchers = [
            threading.Thread(target=watch, args=(host, container), name=f"training-{self.name}-{host}")
            for host, container in zip(self.hosts, self._containers, strict=True)
        ]
        timer.start()
        try:
            for watcher in watchers:
                watcher.start()
            for watcher in watchers:
                watcher.join()
        finally:
            timer.cancel()
        return failures[0] if failures else None

    def _exceed_runtime(self) -> None:
        try:
            self.request_stop("MaxRuntimeExceeded")
        except ValidationError:
            pass  # finished in the meantime

    def _record_metrics(self, line: str) -> None:
        """MetricDefinitions applied to a log line, as the service does; the step is XGBoost's round
        number where the line has one, else how often the metric was seen."""
        round_number = _ROUND.match(line)
        if round_number is None and not self.script_mode:
            return  # the built-in algorithm prints metrics only on its round lines
        for name, pattern in self._patterns:
            match = pattern.search(line)
            if match:
                try:
                    value = float(match.group(1))
                except (IndexError, ValueError):
                    continue
                step = self._metric_counts.get(name, 0)
                self._metric_counts[name] = step + 1
                self.final_metrics[name] = value
                # moto compares CloudWatch timestamps as naive UTC datetimes
                self._metric_points.append(
                    {"MetricName": name, "Value": value, "Timestamp": utcnow().replace(tzinfo=None)}
                )
                if self.observer is not None:
                    self.observer.on_metric(
                        self, name, value, int(round_number.group(1)) if round_number else step
                    )

    def _publish_metrics(self) -> None:
        """Metrics to CloudWatch (namespace /aws/sagemaker/TrainingJobs), where the SDK's
        TrainingJobAnalytics reads them with GetMetricStatistics."""
        cloudwatch = self.backend.moto.backend("cloudwatch", self.backend.region)
        dimensions = [{"Name": "TrainingJobName", "Value": self.name}]
        points = [{**point, "Dimensions": dimensions} for point in self._metric_points]
        for start in range(0, len(points), 1000):
            cloudwatch.put_metric_data(CLOUDWATCH_NAMESPACE, points[start : start + 1000])
        self.backend.moto.changed("cloudwatch")

    def _upload_model(self) -> str:
        buffer = io.BytesIO()
        model = self.host_dir("algo-1") / "model"  # the other hosts' are not uploaded, as on SageMaker
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            for path in sorted(model.rglob("*")):
                archive.add(path, arcname=str(path.relative_to(model)), recursive=False)
        output = self.description["OutputDataConfig"]["S3OutputPath"].rstrip("/")
        uri = f"{output}/{self.name}/output/model.tar.gz"
        self.backend.moto.put_object(S3Location.parse(uri), buffer.getvalue())
        return uri


def resource_config(
    resources: dict[str, Any], current_host: str = "algo-1", hosts: list[str] | None = None
) -> dict[str, Any]:
    """/opt/ml/input/config/resourceconfig.json for ``current_host`` of a job on ``hosts``, as AWS writes it."""
    instance_type = resources.get("InstanceType", "local")
    hosts = hosts or [current_host]
    return {
        "current_host": current_host,
        "current_instance_type": instance_type,
        "current_group_name": "homogeneousCluster",
        "hosts": list(hosts),
        "instance_groups": [
            {
                "instance_group_name": "homogeneousCluster",
                "instance_type": instance_type,
                "hosts": list(hosts),
            }
        ],
        "network_interface_name": "eth0",
    }


class SourceNotFound(Exception):
    """The sourcedir.tar.gz a script-mode job or model names is not in S3."""


def extract_source(moto, uri: str, destination: Path) -> None:
    """Unpack the SDK's ``sourcedir.tar.gz`` (sagemaker_submit_directory, SAGEMAKER_SUBMIT_DIRECTORY)
    into ``destination``, the container's /opt/ml/code. On AWS the framework container fetches it
    itself; here the platform does, as it does the channels."""
    location = S3Location.parse(uri)
    data = moto.get_object(location)
    if data is None:
        raise SourceNotFound(f"The source directory {uri} does not exist.")
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
        extract_tar(archive, destination, what=f"The source directory {uri}", shown_as="/opt/ml/code")


def download_prefix(
    moto, uri: str, destination: Path, shown_as: str | None = None, shard: tuple[int, int] | None = None
) -> list[Path]:
    """Copy every object under an S3 prefix into a directory, as the S3Prefix data source does;
    with ``shard`` (index, count), only every count-th object from the index-th, in key order.

    Every key must land inside the directory (containment.EscapeError otherwise), checked for all
    keys before any is written."""
    location = S3Location.parse(uri)
    destination.mkdir(parents=True, exist_ok=True)
    objects = moto.list_objects(location)
    if shard is not None:
        objects = objects[shard[0] :: shard[1]]
    paths = [
        contained(
            destination,
            location.relative(key),
            what=f"The S3 key s3://{location.bucket}/{key}",
            shown_as=shown_as,
        )
        for key, _ in objects
    ]
    for path, (_, data) in zip(paths, objects, strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return paths
