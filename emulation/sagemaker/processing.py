"""Processing jobs, run for real: inputs from S3 into /opt/ml/processing/..., the container's
entrypoint with its arguments and environment, outputs back to S3 at the end.

ProcessingJobStatus follows the service (InProgress -> Completed | Failed, Stopping -> Stopped).
The job directory plays /opt/ml: ``config/processingjobconfig.json`` holds the request, as in the
container, and the runner runs its entrypoint (see ``emulation.containers.scriptmode.runtime``).
The container's output goes to CloudWatch Logs under /aws/sagemaker/ProcessingJobs, where
``wait(logs=True)`` reads it.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emulation.containers.images import ContainerImage
from emulation.containment import EscapeError
from emulation.moto_bridge import S3Location
from emulation.protocol import ValidationError
from emulation.runners import Container
from emulation.sagemaker.state import snapshot, utcnow
from emulation.sagemaker.training import download_prefix, resource_config

if TYPE_CHECKING:
    from emulation.sagemaker.backend import SageMakerBackend

LOG_GROUP = "/aws/sagemaker/ProcessingJobs"
PROCESSING_ROOT = "/opt/ml/processing/"
FAILED_WITHOUT_MESSAGE = "AlgorithmError: See job logs for more information"


def validate_request(request: dict[str, Any]) -> None:
    """The service's checks on paths and names, before anything starts."""
    if not request["AppSpecification"].get("ContainerEntrypoint"):
        raise ValidationError(
            "AppSpecification.ContainerEntrypoint is required locally: the image's own entrypoint is not known."
        )
    names = [i["InputName"] for i in request.get("ProcessingInputs", [])]
    outputs = request.get("ProcessingOutputConfig", {}).get("Outputs", [])
    names += [o["OutputName"] for o in outputs]
    if len(set(names)) != len(names):
        raise ValidationError("ProcessingInput and ProcessingOutput names must be unique.")
    for item in request.get("ProcessingInputs", []):
        source = item.get("S3Input")
        if source is None:
            raise ValidationError(
                f"Input {item['InputName']}: only S3Input can be read locally (DatasetDefinition is not supported)."
            )
        if not source["LocalPath"].startswith(PROCESSING_ROOT):
            raise ValidationError(f"LocalPath {source['LocalPath']} must be under {PROCESSING_ROOT}.")
        if source.get("S3DataType", "S3Prefix") != "S3Prefix":
            raise ValidationError(
                f"Input {item['InputName']}: S3DataType {source['S3DataType']} is not supported locally; use S3Prefix."
            )
    for item in outputs:
        target = item.get("S3Output")
        if target is None:
            raise ValidationError(f"Output {item['OutputName']}: only S3Output can be written locally.")
        if not target["LocalPath"].startswith(PROCESSING_ROOT):
            raise ValidationError(f"LocalPath {target['LocalPath']} must be under {PROCESSING_ROOT}.")


class ProcessingRun:
    def __init__(self, backend: SageMakerBackend, request: dict[str, Any], arn: str, image: ContainerImage):
        self.backend = backend
        self.name = request["ProcessingJobName"]
        self.image = image
        self._stop = threading.Event()
        self._stop_reason: str | None = None
        self._container: Container | None = None
        created = utcnow()
        self.description: dict[str, Any] = {
            "ProcessingJobName": self.name,
            "ProcessingJobArn": arn,
            "ProcessingInputs": request.get("ProcessingInputs", []),
            **(
                {"ProcessingOutputConfig": request["ProcessingOutputConfig"]}
                if "ProcessingOutputConfig" in request
                else {}
            ),
            "ProcessingResources": request["ProcessingResources"],
            "StoppingCondition": request.get("StoppingCondition", {"MaxRuntimeInSeconds": 86400}),
            "AppSpecification": request["AppSpecification"],
            "Environment": dict(request.get("Environment") or {}),
            **{k: request[k] for k in ("NetworkConfig", "ExperimentConfig") if k in request},
            "RoleArn": request["RoleArn"],
            "ProcessingJobStatus": "InProgress",
            "CreationTime": created,
            "LastModifiedTime": created,
        }
        self.prefix = backend.config.data_dir / "processing" / f"{self.name}-{uuid.uuid4().hex[:8]}"
        self._thread = threading.Thread(target=self._run, name=f"processing-{self.name}", daemon=True)

    @property
    def status(self) -> str:
        return self.description["ProcessingJobStatus"]

    def describe(self) -> dict[str, Any]:
        with self.backend.lock:
            return snapshot(self.description)

    def _set(self, **fields: Any) -> None:
        with self.backend.lock:
            self.description.update(LastModifiedTime=utcnow(), **fields)

    def start(self) -> None:
        self._thread.start()

    def request_stop(self, reason: str = "Stopping") -> None:
        with self.backend.lock:
            if self.status != "InProgress":
                raise ValidationError(
                    f"The request was rejected because the processing job is in status {self.status}."
                )
            self._stop_reason = reason
            self._stop.set()
            self._set(ProcessingJobStatus="Stopping")
            container = self._container
        if container is not None:
            container.kill()

    def kill(self) -> None:
        self._stop.set()
        if self._container is not None:
            self._container.kill()

    # -- the job -----------------------------------------------------------------------------
    def _run(self) -> None:
        stream = self.backend.moto.log_stream(
            self.backend.region, LOG_GROUP, f"{self.name}/algo-1-{int(time.time())}"
        )
        try:
            self._prepare()
            self._set(ProcessingStartTime=utcnow())
            exit_code = self._process(stream)
            if self._stop.is_set():
                self._set(ProcessingJobStatus="Stopped", ProcessingEndTime=utcnow())
                return
            if exit_code != 0:
                self._fail()
                return
            self._upload_outputs()
            self._set(ProcessingJobStatus="Completed", ProcessingEndTime=utcnow())
        except Exception as error:  # the emulator's own failure ends the job, never the emulator
            if self._stop.is_set():
                self._set(ProcessingJobStatus="Stopped", ProcessingEndTime=utcnow())
            else:
                reason = (
                    f"ClientError: {error}"
                    if isinstance(error, EscapeError)
                    else f"InternalServerError: {error}"
                )
                self._set(
                    ProcessingJobStatus="Failed", FailureReason=reason[:1024], ProcessingEndTime=utcnow()
                )
        finally:
            shutil.rmtree(self.prefix, ignore_errors=True)

    def _prepare(self) -> None:
        config = self.prefix / "config"
        config.mkdir(parents=True)
        (self.prefix / "output").mkdir()
        request = {
            k: v
            for k, v in self.description.items()
            if k not in ("ProcessingJobStatus", "LastModifiedTime", "CreationTime")
        }
        (config / "processingjobconfig.json").write_text(json.dumps(request, default=str))
        cluster = self.description["ProcessingResources"]["ClusterConfig"]
        (config / "resourceconfig.json").write_text(json.dumps(resource_config(cluster)))
        for item in self.description["ProcessingInputs"]:
            source = item["S3Input"]
            download_prefix(
                self.backend.moto,
                source["S3Uri"],
                self._host_path(source["LocalPath"]),
                shown_as=source["LocalPath"],
            )
        for item in self.description.get("ProcessingOutputConfig", {}).get("Outputs", []):
            self._host_path(item["S3Output"]["LocalPath"]).mkdir(parents=True, exist_ok=True)

    def _host_path(self, container_path: str) -> Path:
        return self.prefix / container_path.removeprefix("/opt/ml/")

    def _process(self, stream) -> int | None:
        """Run the container; its exit code as Docker reports it."""
        environment = {**self.description["Environment"], **self.backend.user_code_aws_environment()}
        limit = self.description["StoppingCondition"].get("MaxRuntimeInSeconds", 86400)
        timer = threading.Timer(limit, self._exceed_runtime)
        timer.daemon = True
        with self.backend.lock:
            if self._stop.is_set():
                return None
            self._container = self.backend.runner.start(self.image, "process", self.prefix, environment)
        timer.start()
        try:
            for line in self._container.logs():
                stream.write(line.replace("\t", "#011"))
            return self._container.wait().docker_code
        finally:
            timer.cancel()

    def _exceed_runtime(self) -> None:
        try:
            self.request_stop("MaxRuntimeExceeded")
        except ValidationError:
            pass

    def _fail(self) -> None:
        """As on AWS: a generic FailureReason; ExitMessage is what the container wrote to
        /opt/ml/output/message, if anything (its logs hold the rest)."""
        message_file = self.prefix / "output" / "message"
        exit_message = message_file.read_text()[:1024] if message_file.is_file() else None
        self._set(
            ProcessingJobStatus="Failed",
            FailureReason=FAILED_WITHOUT_MESSAGE,
            ProcessingEndTime=utcnow(),
            **({"ExitMessage": exit_message} if exit_message else {}),
        )

    def _upload_outputs(self) -> None:
        for item in self.description.get("ProcessingOutputConfig", {}).get("Outputs", []):
            target = item["S3Output"]
            local = self._host_path(target["LocalPath"])
            destination = target["S3Uri"].rstrip("/")
            for path in sorted(p for p in local.rglob("*") if p.is_file()):
                key = f"{destination}/{path.relative_to(local).as_posix()}"
                self.backend.moto.put_object(S3Location.parse(key), path.read_bytes())
