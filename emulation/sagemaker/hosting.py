"""Endpoints, run for real: each production variant is a serving container process.

EndpointStatus follows the service (Creating -> InService | Failed, Updating -> InService,
Deleting). A container that dies takes down only its own variant; the emulator keeps serving.
"""

from __future__ import annotations

import datetime as dt
import http.client
import io
import logging
import queue
import random
import shutil
import tarfile
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emulation.containers import images
from emulation.containment import EscapeError, extract_tar
from emulation.moto_bridge import S3Location
from emulation.protocol import AwsError
from emulation.runners import Limits, Runner
from emulation.sagemaker import instances
from emulation.sagemaker.state import snapshot, utcnow
from emulation.sagemaker.training import SourceNotFound, extract_source

if TYPE_CHECKING:
    from emulation.sagemaker.backend import SageMakerBackend

#: The service's limit for an answer to GET /ping, and how many missed ones make an instance be replaced.
PING_TIMEOUT_SECONDS = 2
FAILED_PINGS_BEFORE_REPLACEMENT = 3
_logger = logging.getLogger("sagelocal.sagemaker.hosting")


@dataclass(frozen=True)
class ContainerReply:
    status: int
    body: bytes
    content_type: str


class ModelDataError(Exception):
    pass


def endpoint_instances(config: dict[str, Any]) -> Counter:
    """Instances by type an endpoint configuration asks for (serverless variants hold none)."""
    demand: Counter = Counter()
    for variant in config["ProductionVariants"]:
        if "InstanceType" in variant:
            demand[variant["InstanceType"]] += variant.get("InitialInstanceCount", 1)
    return demand


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


class ContainerTimeout(Exception):
    """The container did not answer within the container timeout (it hangs, or is too slow)."""


class NoHealthyInstance(Exception):
    """Every instance of the variant is down or being replaced."""


class ServingContainer:
    """One serving container (``serve`` mode on a job directory with ``model/``) and a pool of
    keep-alive connections to it. ``healthy`` says whether requests may be routed to it."""

    def __init__(
        self,
        runner: Runner,
        job_dir: Path,
        image: images.ContainerImage,
        environment: dict[str, str],
        log_stream,
        timeout: float,
        limits: Limits,
    ):
        self.container = runner.start(image, "serve", job_dir, environment, limits)
        self.port = self.container.address[1]
        self.timeout = timeout
        self.healthy = True
        self.failed_pings = 0
        self._pool: queue.LifoQueue[http.client.HTTPConnection] = queue.LifoQueue()
        self._log_thread = threading.Thread(target=self._forward_logs, args=(log_stream,), daemon=True)
        self._log_thread.start()

    def _forward_logs(self, log_stream) -> None:
        for line in self.container.logs():
            log_stream.write(line)

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> ContainerReply:
        """One HTTP exchange; raises ContainerTimeout past ``timeout``, OSError if it cannot be reached."""
        try:
            connection = self._pool.get_nowait()
        except queue.Empty:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            reply = ContainerReply(response.status, response.read(), response.getheader("Content-Type", ""))
        except TimeoutError:
            connection.close()
            raise ContainerTimeout from None
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

    def ping(self) -> bool:
        return self.container.health(PING_TIMEOUT_SECONDS)

    def stop(self) -> None:
        self.container.kill()
        while not self._pool.empty():
            self._pool.get_nowait().close()


@dataclass
class Variant:
    """A production variant: its instances, and how to start one more like them."""

    name: str
    weight: float
    work_dir: Path
    image_uri: str
    start_instance: Callable[[], ServingContainer]
    containers: list[ServingContainer] = field(default_factory=list)
    deployed_at: dt.datetime = field(default_factory=utcnow)

    def invoke(self, body: bytes, content_type: str | None, accept: str | None) -> ContainerReply:
        """Send to a healthy instance at random; one that cannot be reached is marked unhealthy and
        the next one tried, so a dead instance costs no request while another one serves."""
        tried: list[ServingContainer] = []
        while True:
            candidates = [c for c in self.containers if c.healthy and c not in tried]
            if not candidates:
                raise NoHealthyInstance
            container = random.choice(candidates)
            try:
                return container.invoke(body, content_type, accept)
            except ContainerTimeout:
                raise
            except (OSError, http.client.HTTPException):  # refused, reset, or cut off mid-answer
                container.healthy = False  # the health monitor replaces it
                tried.append(container)

    @property
    def healthy_count(self) -> int:
        return sum(c.healthy for c in self.containers)

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
        #: The configuration an update is deploying, until it serves or fails.
        self._next_config: dict[str, Any] | None = None
        self._closed = threading.Event()
        self._monitor: threading.Thread | None = None
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

    @property
    def instances(self) -> Counter:
        """Instances by type it holds against the account's quota: while updating, old and new ones."""
        held: Counter = Counter()
        for config in (self.config, self._next_config):
            if config is not None:
                held += endpoint_instances(config)
        return held

    def deploy(self, config: dict[str, Any], creating: bool) -> None:
        if creating:
            self.config = config
        else:
            self._next_config = config
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
            with self.backend.lock:
                self._next_config = None
            self._set(EndpointStatus="Failed" if creating else "InService", FailureReason=reason)
            return
        with self.backend.lock:
            self._next_config = None
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
        if not deleted and self._monitor is None:
            self._monitor = threading.Thread(
                target=self._watch_health, name=f"health-{self.name}", daemon=True
            )
            self._monitor.start()

    def _start_variant(self, spec: dict[str, Any]) -> Variant:
        model = self.backend.model(spec["ModelName"])
        work_dir = (
            self.backend.config.data_dir
            / "endpoints"
            / f"{self.name}-{spec['VariantName']}-{uuid.uuid4().hex[:8]}"
        )
        environment = dict(model["PrimaryContainer"].get("Environment") or {})
        try:
            image = fetch_model(self.backend, model, work_dir / "model")
            fetch_serving_code(self.backend.moto, environment, work_dir)
        except BaseException:
            shutil.rmtree(work_dir, ignore_errors=True)
            raise
        environment.update(self.backend.user_code_aws_environment())

        def start_instance() -> ServingContainer:
            stream = self.backend.moto.log_stream(
                self.backend.region, self.log_group, f"{spec['VariantName']}/i-{uuid.uuid4().hex[:17]}"
            )
            container = ServingContainer(
                self.backend.runner,
                work_dir,
                image,
                environment,
                stream,
                self.backend.config.container_timeout_seconds,
                instances.limits(spec.get("InstanceType")),
            )
            reply = container.request("GET", "/ping")
            if reply.status != 200:
                container.stop()
                raise RuntimeError(f"/ping answered {reply.status}")
            return container

        variant = Variant(
            spec["VariantName"],
            float(spec.get("InitialVariantWeight", 1.0)),
            work_dir,
            model["PrimaryContainer"]["Image"],
            start_instance,
        )
        try:
            for _ in range(int(spec.get("InitialInstanceCount", 1))):
                variant.containers.append(start_instance())
        except BaseException:
            variant.stop()
            raise
        return variant

    @staticmethod
    def _variant_summary(variant: Variant) -> dict[str, Any]:
        image = variant.image_uri
        return {
            "VariantName": variant.name,
            "DeployedImages": [
                {"SpecifiedImage": image, "ResolvedImage": image, "ResolutionTime": variant.deployed_at}
            ],
            "CurrentWeight": variant.weight,
            "DesiredWeight": variant.weight,
            "CurrentInstanceCount": variant.healthy_count,
            "DesiredInstanceCount": len(variant.containers),
        }

    # -- health: instances are pinged, and replaced when they fail, as the service does -------------
    def _watch_health(self) -> None:
        interval = self.backend.config.health_check_interval_seconds
        while not self._closed.wait(interval):
            with self.backend.lock:
                variants = list(self.variants)
            for variant in variants:
                for container in list(variant.containers):
                    if self._closed.is_set():
                        return
                    self._check(variant, container)

    def _check(self, variant: Variant, container: ServingContainer) -> None:
        if container.ping():
            container.failed_pings = 0
            if not container.healthy:  # it answered again (a request had failed on it by chance)
                container.healthy = True
                self._publish_instance_counts()
            return
        container.failed_pings += 1
        if (
            container.container.exit_status is None
            and container.failed_pings < FAILED_PINGS_BEFORE_REPLACEMENT
        ):
            return
        if container.healthy:
            container.healthy = False
            self._publish_instance_counts()
        try:
            replacement = variant.start_instance()
        except Exception as error:  # tried again at the next check
            _logger.warning("endpoint %s: replacing an instance failed: %s", self.name, error)
            return
        with self.backend.lock:
            current = variant in self.variants and container in variant.containers
            if current:
                variant.containers[variant.containers.index(container)] = replacement
        (container if current else replacement).stop()
        self._publish_instance_counts()

    def _publish_instance_counts(self) -> None:
        """DescribeEndpoint tells the truth: CurrentInstanceCount counts the instances that serve."""
        with self.backend.lock:
            if self.description.get("EndpointStatus") != "InService":
                return
            self.description["ProductionVariants"] = [self._variant_summary(v) for v in self.variants]

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
        self._closed.set()
        with self.backend.lock:
            variants, self.variants = self.variants, []
        for variant in variants:
            variant.stop()
