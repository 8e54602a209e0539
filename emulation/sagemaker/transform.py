"""Batch transform, run as the service runs it: a serving container fed by a splitter.

Input objects are split (SplitType), packed into requests (BatchStrategy, MaxPayloadInMB), sent to
``POST /invocations`` with up to MaxConcurrentTransforms in flight, and the answers assembled
(AssembleWith) into ``<S3OutputPath>/<key relative to the input prefix>.out``; an object's output
is written only if all of it succeeded.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from emulation.moto_bridge import S3Location
from emulation.protocol import ValidationError
from emulation.sagemaker import instances
from emulation.sagemaker.hosting import ServingContainer, fetch_model, fetch_serving_code
from emulation.sagemaker.state import snapshot, utcnow

if TYPE_CHECKING:
    from emulation.sagemaker.backend import SageMakerBackend

LOG_GROUP = "/aws/sagemaker/TransformJobs"
_STRATEGY_ENV = {"MultiRecord": "MULTI_RECORD", "SingleRecord": "SINGLE_RECORD"}
_STRATEGY_API = {v: k for k, v in _STRATEGY_ENV.items()}


class TransformFailure(Exception):
    pass


def split_records(data: bytes, split_type: str) -> list[bytes]:
    if split_type == "Line":
        return [line for line in data.split(b"\n") if line.strip()]
    return [data] if data else []


def pack(records: list[bytes], strategy: str, max_bytes: int) -> list[bytes]:
    """Group records into request bodies: one each (SingleRecord) or as many as fit (MultiRecord)."""
    if any(len(r) > max_bytes for r in records):
        raise TransformFailure(f"A record is larger than MaxPayloadInMB ({max_bytes // (1024 * 1024)} MB).")
    if strategy != "MultiRecord":
        return records
    batches: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for record in records:
        if current and size + len(record) + 1 > max_bytes:
            batches.append(b"\n".join(current))
            current, size = [], 0
        current.append(record)
        size += len(record) + 1
    if current:
        batches.append(b"\n".join(current))
    return batches


class TransformRun:
    def __init__(self, backend: SageMakerBackend, request: dict[str, Any], arn: str, model: dict[str, Any]):
        self.backend = backend
        self.name = request["TransformJobName"]
        self.model = model
        self._stop = threading.Event()
        self._container: ServingContainer | None = None
        self.description: dict[str, Any] = {
            "TransformJobName": self.name,
            "TransformJobArn": arn,
            "TransformJobStatus": "InProgress",
            "ModelName": request["ModelName"],
            **{
                k: request[k]
                for k in ("MaxConcurrentTransforms", "MaxPayloadInMB", "BatchStrategy")
                if k in request
            },
            "Environment": dict(request.get("Environment") or {}),
            "TransformInput": {"SplitType": "None", "CompressionType": "None", **request["TransformInput"]},
            "TransformOutput": {"AssembleWith": "None", **request["TransformOutput"]},
            "TransformResources": request["TransformResources"],
            "CreationTime": utcnow(),
            **{k: request[k] for k in ("DataProcessing", "ModelClientConfig") if k in request},
        }
        self.work_dir = backend.config.data_dir / "transform" / f"{self.name}-{uuid.uuid4().hex[:8]}"
        self._thread = threading.Thread(target=self._run, name=f"transform-{self.name}", daemon=True)

    @property
    def status(self) -> str:
        return self.description["TransformJobStatus"]

    def describe(self) -> dict[str, Any]:
        with self.backend.lock:
            return snapshot(self.description)

    def _set(self, **fields: Any) -> None:
        with self.backend.lock:
            self.description.update(**fields)

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        with self.backend.lock:
            if self.status != "InProgress":
                raise ValidationError(
                    f"The request was rejected because the transform job is in status {self.status}."
                )
            self._set(TransformJobStatus="Stopping")
            self._stop.set()
        self.kill()

    def kill(self) -> None:
        self._stop.set()
        if self._container is not None:
            self._container.stop()

    def _run(self) -> None:
        instance = f"i-{uuid.uuid4().hex[:17]}-{int(time.time())}"
        logs = self.backend.moto.log_stream(self.backend.region, LOG_GROUP, f"{self.name}/{instance}")
        data_log = self.backend.moto.log_stream(
            self.backend.region, LOG_GROUP, f"{self.name}/{instance}/data-log"
        )
        if not self.backend.capacity.acquire(self._stop):  # waits, as for AWS capacity
            self._set(TransformJobStatus="Stopped", TransformEndTime=utcnow())
            return
        self._set(TransformStartTime=utcnow())
        try:
            image = fetch_model(self.backend, self.model, self.work_dir / "model")
            settings = self._settings()
            environment = {
                **(self.model["PrimaryContainer"].get("Environment") or {}),
                **self.description["Environment"],
                "SAGEMAKER_BATCH": "true",
                "SAGEMAKER_MAX_PAYLOAD_IN_MB": str(settings["MaxPayloadInMB"]),
                "SAGEMAKER_BATCH_STRATEGY": _STRATEGY_ENV[settings["BatchStrategy"]],
                "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": str(settings["MaxConcurrentTransforms"]),
            }
            fetch_serving_code(self.backend.moto, environment, self.work_dir)
            environment.update(self.backend.user_code_aws_environment())
            if self._stop.is_set():
                raise TransformFailure("stopped")
            # started outside the lock: a framework model's server may take seconds to load
            container = ServingContainer(
                self.backend.runner,
                self.work_dir,
                image,
                environment,
                logs,
                self._invocation_timeout(),
                instances.limits(self.description["TransformResources"].get("InstanceType")),
            )
            with self.backend.lock:
                self._container = container
            if self._stop.is_set():  # a stop that came while it started did not see it
                raise TransformFailure("stopped")
            self._apply_execution_parameters(settings)
            data_log.write(
                f"[sagemaker logs]: MaxConcurrentTransforms={self.description['MaxConcurrentTransforms']}, "
                f"MaxPayloadInMB={self.description['MaxPayloadInMB']}, "
                f"BatchStrategy={_STRATEGY_ENV[self.description['BatchStrategy']]}"
            )
            self._transform_all(data_log)
        except Exception as error:
            if self._stop.is_set():
                self._set(TransformJobStatus="Stopped", TransformEndTime=utcnow())
            else:
                reason = str(error) if isinstance(error, TransformFailure) else f"AlgorithmError: {error}"
                self._set(TransformJobStatus="Failed", FailureReason=reason[:1024], TransformEndTime=utcnow())
        else:
            self._set(TransformJobStatus="Completed", TransformEndTime=utcnow())
        finally:
            if self._container is not None:
                self._container.stop()
            self.backend.capacity.release()
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def _invocation_timeout(self) -> float:
        """ModelClientConfig.InvocationsTimeoutInSeconds, 600 s unless given, as the service does."""
        return float(self.description.get("ModelClientConfig", {}).get("InvocationsTimeoutInSeconds", 600))

    def _settings(self) -> dict[str, Any]:
        return {
            "MaxConcurrentTransforms": self.description.get("MaxConcurrentTransforms") or 1,
            "MaxPayloadInMB": self.description.get("MaxPayloadInMB", 6),
            "BatchStrategy": self.description.get("BatchStrategy") or "MultiRecord",
        }

    def _apply_execution_parameters(self, settings: dict[str, Any]) -> None:
        """Settings the request left out come from the container's /execution-parameters."""
        reply = self._container.request("GET", "/execution-parameters")
        advertised: dict[str, Any] = {}
        if reply.status == 200:
            parameters = json.loads(reply.body)
            advertised = {
                "MaxConcurrentTransforms": parameters.get("MaxConcurrentTransforms"),
                "MaxPayloadInMB": parameters.get("MaxPayloadInMB"),
                "BatchStrategy": _STRATEGY_API.get(parameters.get("BatchStrategy", "")),
            }
        self._set(**{k: self.description.get(k) or advertised.get(k) or v for k, v in settings.items()})

    def _transform_all(self, data_log) -> None:
        source = self.description["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
        location = S3Location.parse(source)
        output_prefix = self.description["TransformOutput"]["S3OutputPath"].rstrip("/")
        split_type = self.description["TransformInput"]["SplitType"]
        content_type = self.description["TransformInput"].get("ContentType")
        accept = self.description["TransformOutput"].get("Accept")
        joiner = b"\n" if self.description["TransformOutput"]["AssembleWith"] == "Line" else b""
        max_bytes = int(self.description["MaxPayloadInMB"] * 1024 * 1024)
        with ThreadPoolExecutor(self.description["MaxConcurrentTransforms"]) as pool:
            for key, data in self.backend.moto.list_objects(location):
                if self._stop.is_set():
                    raise TransformFailure("stopped")
                batches = pack(split_records(data, split_type), self.description["BatchStrategy"], max_bytes)
                replies = list(
                    pool.map(lambda body: self._container.invoke(body, content_type, accept), batches)
                )
                for reply in replies:
                    if reply.status != 200:
                        data_log.write(
                            f"[sagemaker logs]: {source}: Bad HTTP status received from algorithm: {reply.status}",
                            f"[sagemaker logs]: {source}: Message: {reply.body.decode('utf-8', 'replace')}",
                        )
                        raise TransformFailure("ClientError: See job logs for more information")
                parts = [r.body for r in replies]
                if joiner:
                    parts = [p if p.endswith(joiner) else p + joiner for p in parts]
                relative = location.relative(key)
                self.backend.moto.put_object(
                    S3Location.parse(f"{output_prefix}/{relative}.out"), b"".join(parts)
                )
