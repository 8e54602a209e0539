"""Endpoints, run for real: each production variant is a serving container process.

EndpointStatus follows the service (Creating -> InService | Failed, Updating -> InService,
Deleting). A container that dies takes down only its own variant; the emulator keeps serving.
"""

from __future__ import annotations

import http.client
import io
import queue
import random
import shutil
import tarfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emulation.containers import images
from emulation.containment import EscapeError, extract_tar
from emulation.moto_bridge import S3Location
from emulation.protocol import AwsError
from emulation.runners import Runner
from emulation.sagemaker.state import snapshot, utcnow
from emulation.sagemaker.training import SourceNotFound, extract_source

if TYPE_CHECKING:
    from emulation.sagemaker.backend import SageMakerBackend

CONTAINER_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class ContainerReply:
    status: int
    body: bytes
    content_type: str


class ModelDataError(Exception):
    pass


def fetch_model(backend, model: dict[str, Any], destination: Path) -> images.ContainerImage:
    """Unpack a model's ``model.tar.gz`` into ``destination`` (the container's /opt/ml/model)."""
    container = model["PrimaryContainer"]
    image = backend.resolve_image(container["Image"])
    destination.mkdir(parents=True, exist_ok=True)
    url = container.get("ModelDataUrl")
    if url:
        location = S3Location.parse(url)
        data = backend.moto.get_object(location)
        if data is None:
            raise ModelDataError(
                f"Failed to download model data(bucket: {location.bucket}, key: {location.key}). Please ensure that "
                "there is an object located at the URL and that the role passed to CreateModel has permissions to "
                "download the object."
            )
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
            try:
                extract_tar(archive, destination, what=f"The model data {url}", shown_as="/opt/ml/model")
            except EscapeError as error:
                raise ModelDataError(str(error)) from None
    return image


def fetch_serving_code(moto, environment: dict[str, str], job_dir: Path) -> None:
    """A framework model whose SAGEMAKER_SUBMIT_DIRECTORY is an S3 ``sourcedir.tar.gz`` (the SDK's
    SKLearnModel does that; PyTorchModel packs ``code/`` into the model instead): unpack it into
    ``job_dir/code``, where the framework container would download it."""
    submitted = environment.get("SAGEMAKER_SUBMIT_DIRECTORY", "")
    if submitted.startswith("s3://"):
        extract_source(moto, submitted, job_dir / "code")


class ServingContainer:
    """One serving container (``serve`` mode on a job directory with ``model/``) and a pool of
    keep-alive connections to it."""

    def __init__(
        self,
        runner: Runner,
        job_dir: Path,
        image: images.ContainerImage,
        environment: dict[str, str],
        log_stream,
    ):
        self.container = runner.start(image, "serve", job_dir, environment)
        self.port = self.container.address[1]
        self._pool: queue.LifoQueue[http.client.HTTPConnection] = queue.LifoQueue()
        self._log_thread = threading.Thread(target=self._forward_logs, args=(log_stream,), daemon=True)
        self._log_thread.start()

    def _forward_logs(self, log_stream) -> None:
        for line in self.container.logs():
            log_stream.write(line)

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> ContainerReply:
        try:
            connection = self._pool.get_nowait()
        except queue.Empty:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=CONTAINER_TIMEOUT_SECONDS)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            reply = ContainerReply(response.status, response.read(), response.getheader("Content-Type", ""))
        except Exception:
            connection.close()
            raise
        self._pool.put(connection)
        return reply

    def invoke(self, body: bytes, content_type: str | None, accept: str | None) -> ContainerReply:
        headers = {}
        if content_type:
            headers["Content-Type"] = content_type
        if accept:
            headers["Accept"] = accept
        return self.request("POST", "/invocations", body, headers)

    def stop(self) -> None:
        self.container.kill()
        while not self._pool.empty():
            self._pool.get_nowait().close()


@dataclass
class Variant:
    name: str
    weight: float
    containers: list[ServingContainer]
    work_dir: Path
    image_uri: str

    def pick(self) -> ServingContainer:
        return random.choice(self.containers)

    def stop(self) -> None:
        for container in self.containers:
            container.stop()
        shutil.rmtree(self.work_dir, ignore_errors=True)


class EndpointHost:
    LOG_GROUP_PREFIX = "/aws/sagemaker/Endpoints/"

    def __init__(self, backend: SageMakerBackend, name: str, arn: str):
        self.backend = backend
        self.name = name
        self.arn = arn
        self.variants: list[Variant] = []
        #: The endpoint configuration it runs (or is being created with), to redeploy it after a restart.
        self.config: dict[str, Any] | None = None
        created = utcnow()
        self.description: dict[str, Any] = {
            "EndpointName": name,
            "EndpointArn": arn,
            "EndpointStatus": "Creating",
            "CreationTime": created,
            "LastModifiedTime": created,
        }

    @property
    def log_group(self) -> str:
        return self.LOG_GROUP_PREFIX + self.name

    def describe(self) -> dict[str, Any]:
        with self.backend.lock:
            return snapshot(self.description)

    def _set(self, **fields: Any) -> None:
        with self.backend.lock:
            self.description.update(LastModifiedTime=utcnow(), **fields)

    def deploy(self, config: dict[str, Any], creating: bool) -> None:
        if creating:
            self.config = config
        self._set(
            EndpointStatus="Creating" if creating else "Updating",
            **({"EndpointConfigName": config["EndpointConfigName"]} if creating else {}),
        )
        threading.Thread(
            target=self._deploy, args=(config, creating), name=f"endpoint-{self.name}", daemon=True
        ).start()

    def _deploy(self, config: dict[str, Any], creating: bool) -> None:
        started: list[Variant] = []
        try:
            for spec in config["ProductionVariants"]:
                started.append(self._start_variant(spec))
        except Exception as error:
            for variant in started:
                variant.stop()
            reason = (
                str(error)
                if isinstance(
                    error, (ModelDataError, images.UnsupportedImage, AwsError, SourceNotFound, EscapeError)
                )
                else (
                    f"The primary container for production variant {spec['VariantName']} did not pass the ping health "
                    f"check. Please check CloudWatch logs for this endpoint. ({error})"
                )
            )
            self._set(EndpointStatus="Failed" if creating else "InService", FailureReason=reason)
            return
        with self.backend.lock:
            deleted = self.description.get("EndpointStatus") == "Deleting"
            old, self.variants = (started, []) if deleted else (self.variants, started)
            if not deleted:
                self.config = config
                self.description.pop("FailureReason", None)
                self.description.update(
                    EndpointStatus="InService",
                    EndpointConfigName=config["EndpointConfigName"],
                    ProductionVariants=[self._variant_summary(v) for v in started],
                    LastModifiedTime=utcnow(),
                )
        for variant in old:
            variant.stop()

    def _start_variant(self, spec: dict[str, Any]) -> Variant:
        model = self.backend.model(spec["ModelName"])
        work_dir = (
            self.backend.config.data_dir
            / "endpoints"
            / f"{self.name}-{uuid.uuid4().hex[:8]}"
            / spec["VariantName"]
        )
        image = fetch_model(self.backend, model, work_dir / "model")
        environment = dict(model["PrimaryContainer"].get("Environment") or {})
        fetch_serving_code(self.backend.moto, environment, work_dir)
        environment.update(self.backend.user_code_aws_environment())
        containers = []
        for _ in range(int(spec.get("InitialInstanceCount", 1))):
            stream = self.backend.moto.log_stream(
                self.backend.region, self.log_group, f"{spec['VariantName']}/i-{uuid.uuid4().hex[:17]}"
            )
            containers.append(ServingContainer(self.backend.runner, work_dir, image, environment, stream))
        for container in containers:
            reply = container.request("GET", "/ping")
            if reply.status != 200:
                raise RuntimeError(f"/ping answered {reply.status}")
        weight = float(spec.get("InitialVariantWeight", 1.0))
        return Variant(spec["VariantName"], weight, containers, work_dir, model["PrimaryContainer"]["Image"])

    @staticmethod
    def _variant_summary(variant: Variant) -> dict[str, Any]:
        image = variant.image_uri
        count = len(variant.containers)
        return {
            "VariantName": variant.name,
            "DeployedImages": [{"SpecifiedImage": image, "ResolvedImage": image, "ResolutionTime": utcnow()}],
            "CurrentWeight": variant.weight,
            "DesiredWeight": variant.weight,
            "CurrentInstanceCount": count,
            "DesiredInstanceCount": count,
        }

    def choose_variant(self, target: str | None = None) -> Variant | None:
        """The variant to serve a request: the one asked for, else weighted at random like the service."""
        with self.backend.lock:
            variants = list(self.variants)
        if target is not None:
            return next((v for v in variants if v.name == target), None)
        total = sum(v.weight for v in variants)
        if not variants or total <= 0:
            return variants[0] if variants else None
        point = random.uniform(0, total)
        for variant in variants:
            point -= variant.weight
            if point <= 0:
                return variant
        return variants[-1]

    def delete(self) -> None:
        self._set(EndpointStatus="Deleting")
        self.stop()

    def stop(self) -> None:
        with self.backend.lock:
            variants, self.variants = self.variants, []
        for variant in variants:
            variant.stop()
