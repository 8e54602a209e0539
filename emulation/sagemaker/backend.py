"""SageMaker's state: training jobs, models, endpoint configs, endpoints and transform jobs.

Each resource keeps the very dictionary that its Describe call returns, updated in place by the
thread that runs it, under one lock. Names, ARNs, state machines and errors follow the service.
"""

from __future__ import annotations

import copy
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from emulation.config import EmulatorConfig
from emulation.containers import images
from emulation.iam import RolePropagation
from emulation.moto_bridge import MotoServices, S3Location
from emulation.protocol import ValidationError
from emulation.runners import Runner
from emulation.runners.capacity import Capacity
from emulation.sagemaker import quotas
from emulation.sagemaker.exceptions import (
    ResourceInUse,
    ResourceNotFound,
    already_exists,
    could_not_find,
    no_s3_objects,
)
from emulation.sagemaker.hosting import EndpointHost, endpoint_instances
from emulation.sagemaker.processing import ProcessingRun, validate_request
from emulation.sagemaker.registry import ModelRegistry
from emulation.sagemaker.state import utcnow
from emulation.sagemaker.training import TrainingObserver, TrainingRun
from emulation.sagemaker.transform import TransformRun
from emulation.sagemaker.tuning import TuningRun, validate_config

MAX_TRANSFORM_PAYLOAD_PRODUCT_MB = 100


#: The longest a training job may run (28 days), as the service enforces it.
MAX_TRAINING_RUNTIME_SECONDS = 2419200


class SageMakerBackend:
    def __init__(
        self,
        config: EmulatorConfig,
        moto: MotoServices,
        runner: Runner,
        endpoint_url: Callable[[], str] | None = None,
    ):
        self.config = config
        self.moto = moto
        self.runner = runner
        self.capacity = Capacity(config.max_running_jobs)
        self.quotas = quotas.InstanceQuotas(config.instance_quotas)
        self._endpoint_url = endpoint_url
        self.lock = threading.RLock()
        self.training_jobs: dict[str, TrainingRun] = {}
        self.transform_jobs: dict[str, TransformRun] = {}
        self.models: dict[str, dict[str, Any]] = {}
        self.endpoint_configs: dict[str, dict[str, Any]] = {}
        self.endpoints: dict[str, EndpointHost] = {}
        self.tuning_jobs: dict[str, TuningRun] = {}
        self.processing_jobs: dict[str, ProcessingRun] = {}
        self.tags: dict[str, list[dict[str, str]]] = {}
        self.registry = ModelRegistry(self)
        self.roles = RolePropagation.from_config(config)

    @property
    def region(self) -> str:
        return self.config.region

    def user_code_aws_environment(self) -> dict[str, str]:
        """What boto3 inside a user's script needs to reach this emulator with the job's role."""
        environment = {
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.config.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.config.secret_access_key,
        }
        if self._endpoint_url is not None:
            environment["AWS_ENDPOINT_URL"] = self._endpoint_url()
        return environment

    def arn(self, kind: str, name: str) -> str:
        return f"arn:aws:sagemaker:{self.region}:{self.config.account_id}:{kind}/{name.lower()}"

    def shutdown(self) -> None:
        with self.lock:
            runs = [
                *self.tuning_jobs.values(),
                *self.training_jobs.values(),
                *self.transform_jobs.values(),
                *self.processing_jobs.values(),
            ]
            hosts = list(self.endpoints.values())
        for run in runs:
            run.kill()
        for host in hosts:
            host.stop()
        self.runner.shutdown()

    # -- tags ---------------------------------------------------------------------------------
    def remember_tags(self, arn: str, tags: list[dict[str, str]] | None) -> None:
        if tags:
            self.tags[arn] = list(tags)

    def add_tags(self, arn: str, tags: list[dict[str, str]]) -> list[dict[str, str]]:
        with self.lock:
            existing = {t["Key"]: t for t in self.tags.get(arn, [])}
            existing.update({t["Key"]: t for t in tags})
            self.tags[arn] = list(existing.values())
            return tags

    def delete_tags(self, arn: str, keys: Iterable[str]) -> None:
        with self.lock:
            self.tags[arn] = [t for t in self.tags.get(arn, []) if t["Key"] not in set(keys)]

    def list_tags(self, arn: str) -> list[dict[str, str]]:
        with self.lock:
            return list(self.tags.get(arn, []))

    def _launch(self, table: dict, name: str, arn: str, tags, make_run, duplicate: str, demand=None):
        """Register a new job under its unique name, within the account's quota (``demand``:
        usage and {instance type: count}, checked under the same lock), remember its tags, start it."""
        with self.lock:
            if name in table:
                raise ResourceInUse(duplicate)
            if demand is not None:
                self._check_quota(*demand)
            run = make_run()
            table[name] = run
            self.remember_tags(arn, tags)
        run.start()
        return run

    # -- account quotas -------------------------------------------------------------------------
    def _instances_in_use(self, usage: str) -> Counter:
        """Instances by type that running jobs (or live endpoints) of ``usage`` hold now."""
        in_use: Counter = Counter()
        if usage == quotas.ENDPOINT:
            for host in self.endpoints.values():
                if host.description["EndpointStatus"] not in ("Failed", "Deleting"):
                    in_use.update(host.instances)
            return in_use
        runs, resources = (
            (self.training_jobs, "ResourceConfig")
            if usage == quotas.TRAINING
            else (self.transform_jobs, "TransformResources")
        )
        for run in runs.values():
            if run.status in ("InProgress", "Stopping"):
                config = run.description[resources]
                in_use[config["InstanceType"]] += config["InstanceCount"]
        return in_use

    def _check_quota(self, usage: str, requested: dict[str, int]) -> None:
        in_use = self._instances_in_use(usage)
        for instance_type, count in requested.items():
            self.quotas.check(instance_type, usage, in_use[instance_type], count)

    # -- input checks shared by training and transform -----------------------------------------
    def require_s3_objects(self, uri: str, role_arn: str) -> None:
        if not self.moto.list_objects(S3Location.parse(uri)):
            raise no_s3_objects(uri, self.region, role_arn)

    @staticmethod
    def check_max_runtime(stopping_condition: dict[str, Any] | None, path: str) -> None:
        """A training job runs at most 28 days; the model gives no maximum, the service enforces one."""
        value = (stopping_condition or {}).get("MaxRuntimeInSeconds")
        if value is not None and value > MAX_TRAINING_RUNTIME_SECONDS:
            raise ValidationError(
                f"1 validation error detected: Value '{value}' at '{path}.maxRuntimeInSeconds' failed to satisfy "
                f"constraint: Member must have value less than or equal to {MAX_TRAINING_RUNTIME_SECONDS}"
            )

    def resolve_image(self, uri: str) -> images.ContainerImage:
        try:
            return images.resolve(uri, any_image=self.runner.runs_any_image)
        except images.UnsupportedImage as error:
            raise ValidationError(str(error)) from error

    # -- training jobs ------------------------------------------------------------------------
    def create_training_job(
        self,
        request: dict[str, Any],
        tuning_job_arn: str | None = None,
        observer: TrainingObserver | None = None,
    ) -> TrainingRun:
        name = request["TrainingJobName"]
        arn = self.arn("training-job", name)
        if tuning_job_arn is None:  # a tuning job's children use the role checked at its creation
            self.roles.require_for_sagemaker(request["RoleArn"])
        algorithm = request["AlgorithmSpecification"]
        self.check_max_runtime(request.get("StoppingCondition"), "stoppingCondition")
        if "TrainingImage" not in algorithm:
            raise ValidationError(
                "sagelocal runs training images only; AlgorithmName (marketplace algorithms) is not supported locally."
            )
        image = self.resolve_image(algorithm["TrainingImage"])
        validate_metric_definitions(algorithm.get("MetricDefinitions", []))
        for channel in request.get("InputDataConfig", []):
            source = channel["DataSource"].get("S3DataSource")
            if source is None:
                raise ValidationError(
                    f"Channel {channel['ChannelName']}: only S3DataSource can be read locally."
                )
            if source["S3DataType"] != "S3Prefix":
                raise ValidationError(
                    f"Channel {channel['ChannelName']}: S3DataType {source['S3DataType']} is not supported locally; use S3Prefix."
                )
            self.require_s3_objects(source["S3Uri"], request["RoleArn"])
        return self._launch(
            self.training_jobs,
            name,
            arn,
            request.get("Tags"),
            lambda: TrainingRun(self, request, arn, image, tuning_job_arn, observer),
            # a tuning job's children run within what the tuning job was granted
            demand=None if tuning_job_arn else (quotas.TRAINING, _instances(request["ResourceConfig"])),
            duplicate=(
                "Training job names must be unique within an AWS account and region, and a training job "
                f"with this name already exists ({arn})"
            ),
        )

    def training_job(self, name: str) -> TrainingRun:
        with self.lock:
            run = self.training_jobs.get(name)
        if run is None:
            raise ValidationError("Requested resource not found.")
        return run

    def stop_training_job(self, name: str) -> None:
        run = self.training_job(name)
        run.request_stop()

    # -- models -------------------------------------------------------------------------------
    def create_model(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["ModelName"]
        arn = self.arn("model", name)
        containers = (
            [request["PrimaryContainer"]] if "PrimaryContainer" in request else request.get("Containers", [])
        )
        if not containers:
            raise ValidationError("Either PrimaryContainer or Containers must be provided.")
        containers = [
            self.registry.inference_container(c) if c.get("ModelPackageName") else c for c in containers
        ]
        for container in containers:
            self.resolve_image(container.get("Image", ""))
        self.roles.require_for_sagemaker(request.get("ExecutionRoleArn"))
        with self.lock:
            if name in self.models:
                raise already_exists("model", arn)
            self.models[name] = {
                "ModelName": name,
                "ModelArn": arn,
                "PrimaryContainer": containers[0],
                **({"Containers": containers} if "Containers" in request else {}),
                "ExecutionRoleArn": request.get("ExecutionRoleArn"),
                "EnableNetworkIsolation": request.get("EnableNetworkIsolation", False),
                "CreationTime": utcnow(),
            }
            self.remember_tags(arn, request.get("Tags"))
        return {"ModelArn": arn}

    def model(self, name: str) -> dict[str, Any]:
        with self.lock:
            model = self.models.get(name)
        if model is None:
            raise could_not_find("model", self.arn("model", name))
        return model

    def delete_model(self, name: str) -> None:
        self.model(name)
        with self.lock:
            self.models.pop(name, None)

    # -- endpoint configs ---------------------------------------------------------------------
    def create_endpoint_config(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["EndpointConfigName"]
        arn = self.arn("endpoint-config", name)
        for variant in request["ProductionVariants"]:
            self.model(variant["ModelName"])
            if "InstanceType" not in variant and "ServerlessConfig" not in variant:
                raise ValidationError(
                    "Either InstanceType or ServerlessConfig must be provided for each production variant."
                )
        names = [v["VariantName"] for v in request["ProductionVariants"]]
        if len(set(names)) != len(names):
            raise ValidationError("Production variant names must be unique within an endpoint configuration.")
        with self.lock:
            if name in self.endpoint_configs:
                raise already_exists("endpoint configuration", arn)
            self.endpoint_configs[name] = {
                "EndpointConfigName": name,
                "EndpointConfigArn": arn,
                "ProductionVariants": [
                    {"InitialVariantWeight": 1.0, **v} for v in request["ProductionVariants"]
                ],
                "CreationTime": utcnow(),
                **{
                    k: request[k]
                    for k in ("DataCaptureConfig", "KmsKeyId", "AsyncInferenceConfig")
                    if k in request
                },
            }
            self.remember_tags(arn, request.get("Tags"))
        return {"EndpointConfigArn": arn}

    def endpoint_config(self, name: str) -> dict[str, Any]:
        with self.lock:
            config = self.endpoint_configs.get(name)
        if config is None:
            raise could_not_find("endpoint configuration", self.arn("endpoint-config", name))
        return config

    def delete_endpoint_config(self, name: str) -> None:
        self.endpoint_config(name)
        with self.lock:
            self.endpoint_configs.pop(name, None)

    # -- endpoints ----------------------------------------------------------------------------
    def create_endpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["EndpointName"]
        arn = self.arn("endpoint", name)
        config = self.endpoint_config(request["EndpointConfigName"])
        with self.lock:
            if name in self.endpoints:
                raise already_exists("endpoint", arn)
            self._check_quota(quotas.ENDPOINT, endpoint_instances(config))
            host = EndpointHost(self, name, arn)
            host.deploy(copy.deepcopy(config), creating=True)  # from now on its instances count
            self.endpoints[name] = host
            self.remember_tags(arn, request.get("Tags"))
        return {"EndpointArn": arn}

    def endpoint(self, name: str) -> EndpointHost:
        with self.lock:
            host = self.endpoints.get(name)
        if host is None:
            raise could_not_find("endpoint", self.arn("endpoint", name))
        return host

    def update_endpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        host = self.endpoint(request["EndpointName"])
        config = self.endpoint_config(request["EndpointConfigName"])
        status = host.description["EndpointStatus"]
        if status not in ("InService", "Failed"):
            raise ValidationError(
                f'Cannot update in-progress endpoint "{host.arn}".'
                if status in ("Creating", "Updating")
                else f"Endpoint {host.arn} is in status {status} and cannot be updated."
            )
        with self.lock:  # old and new instances run side by side until the new ones serve
            self._check_quota(quotas.ENDPOINT, endpoint_instances(config))
            host.deploy(copy.deepcopy(config), creating=False)
        return {"EndpointArn": host.arn}

    def delete_endpoint(self, name: str) -> None:
        host = self.endpoint(name)
        if self.config.refuse_deleting_endpoints_in_progress and host.describe()["EndpointStatus"] in (
            "Creating",
            "Updating",
        ):
            raise ValidationError(f'Cannot update in-progress endpoint "{host.arn}".')
        host.delete()
        with self.lock:
            self.endpoints.pop(name, None)

    # -- transform jobs -----------------------------------------------------------------------
    def create_transform_job(self, request: dict[str, Any]) -> TransformRun:
        name = request["TransformJobName"]
        arn = self.arn("transform-job", name)
        model = self.model(request["ModelName"])
        source = request["TransformInput"]["DataSource"]["S3DataSource"]
        if source["S3DataType"] != "S3Prefix":
            raise ValidationError(
                f"S3DataType {source['S3DataType']} is not supported locally; use S3Prefix."
            )
        concurrency = request.get("MaxConcurrentTransforms") or 1
        payload_mb = request.get("MaxPayloadInMB", 6)
        if concurrency * payload_mb > MAX_TRANSFORM_PAYLOAD_PRODUCT_MB:
            raise ValidationError(
                f"MaxConcurrentTransforms ({concurrency}) * MaxPayloadInMB ({payload_mb}) must not exceed "
                f"{MAX_TRANSFORM_PAYLOAD_PRODUCT_MB} MB."
            )
        self.require_s3_objects(source["S3Uri"], model.get("ExecutionRoleArn") or "")
        return self._launch(
            self.transform_jobs,
            name,
            arn,
            request.get("Tags"),
            lambda: TransformRun(self, request, arn, model),
            demand=(quotas.TRANSFORM, _instances(request["TransformResources"])),
            duplicate=(
                "Job name must be unique within an AWS account and region, and a job with this name "
                f"already exists ({arn})"
            ),
        )

    def transform_job(self, name: str) -> TransformRun:
        with self.lock:
            run = self.transform_jobs.get(name)
        if run is None:
            raise ValidationError(f"Could not find requested job with name {name}")
        return run

    # -- processing jobs ----------------------------------------------------------------------
    def create_processing_job(self, request: dict[str, Any]) -> ProcessingRun:
        name = request["ProcessingJobName"]
        arn = self.arn("processing-job", name)
        self.roles.require_for_sagemaker(request["RoleArn"])
        image = self.resolve_image(request["AppSpecification"]["ImageUri"])
        validate_request(request)
        for item in request.get("ProcessingInputs", []):
            self.require_s3_objects(item["S3Input"]["S3Uri"], request["RoleArn"])
        return self._launch(
            self.processing_jobs,
            name,
            arn,
            request.get("Tags"),
            lambda: ProcessingRun(self, request, arn, image),
            duplicate=(
                "Job name must be unique within an AWS account and region, and a job with this name "
                f"already exists ({arn})"
            ),
        )

    def processing_job(self, name: str) -> ProcessingRun:
        with self.lock:
            run = self.processing_jobs.get(name)
        if run is None:
            raise ValidationError(f"Could not find requested job with name {name}")
        return run

    # -- hyperparameter tuning jobs -----------------------------------------------------------
    def create_tuning_job(self, request: dict[str, Any]) -> TuningRun:
        name = request["HyperParameterTuningJobName"]
        definition = request.get("TrainingJobDefinition")
        if definition is None:
            raise ValidationError(
                "TrainingJobDefinition is required (TrainingJobDefinitions is not supported locally)."
            )
        self.roles.require_for_sagemaker(definition["RoleArn"])
        self.resolve_image(definition["AlgorithmSpecification"].get("TrainingImage", ""))
        validate_config(request["HyperParameterTuningJobConfig"], definition)
        self.check_max_runtime(definition.get("StoppingCondition"), "trainingJobDefinition.stoppingCondition")
        for channel in definition.get("InputDataConfig", []):
            self.require_s3_objects(channel["DataSource"]["S3DataSource"]["S3Uri"], definition["RoleArn"])
        arn = self.arn("hyper-parameter-tuning-job", name)
        return self._launch(
            self.tuning_jobs,
            name,
            arn,
            request.get("Tags"),
            lambda: TuningRun(self, request, arn),
            demand=(
                quotas.TRAINING,
                _instances(
                    definition.get("ResourceConfig") or definition["HyperParameterTuningResourceConfig"],
                    request["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxParallelTrainingJobs"],
                ),
            ),
            duplicate=(
                "Hyperparameter tuning job names must be unique within an AWS account and region, and a "
                f"hyperparameter tuning job with this name already exists ({arn})"
            ),
        )

    def tuning_job(self, name: str) -> TuningRun:
        with self.lock:
            run = self.tuning_jobs.get(name)
        if run is None:
            raise ResourceNotFound(f"Amazon SageMaker can't find a tuning job with name {name}")
        return run


def _instances(resources: dict[str, Any], jobs: int = 1) -> dict[str, int]:
    """Instances by type a job's resource configuration asks for (``jobs`` of them at once)."""
    if "InstanceType" not in resources:  # InstanceConfigs: several types, not run locally anyway
        return {}
    return {resources["InstanceType"]: resources.get("InstanceCount", 1) * jobs}


def validate_metric_definitions(definitions: list[dict[str, str]]) -> None:
    for definition in definitions:
        try:
            pattern = re.compile(definition["Regex"])
        except re.error as error:
            raise ValidationError(
                f"The regular expression of metric {definition['Name']} is not valid: {error}."
            ) from None
        if pattern.groups < 1:
            raise ValidationError(
                f"The regular expression of metric {definition['Name']} must capture the metric value in a group."
            )
