"""Track every resource a run creates, whichever API created it, and remove them all at the end.

The tracker listens to botocore's ``after-call`` events on the run's boto3 session, so it sees the
SageMaker SDK's calls and plain boto3 calls alike and no workflow has to remember what it made.
Cleanup runs in reverse creation order, also after a failure or Ctrl-C, and treats "already gone"
as done (a workflow may have deleted its endpoint itself).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import botocore.exceptions


@dataclass(frozen=True)
class Resource:
    service: str  # boto3 client name
    kind: str  # e.g. "endpoint"
    name: str
    extra: tuple = ()


#: (event service id, operation) -> how to read the created resource from request and response.
_CREATES: dict[tuple[str, str], Callable[[dict, dict], Resource]] = {
    ("sagemaker", "CreateTrainingJob"): lambda p, r: Resource(
        "sagemaker", "training-job", p["TrainingJobName"]
    ),
    ("sagemaker", "CreateHyperParameterTuningJob"): lambda p, r: Resource(
        "sagemaker", "tuning-job", p["HyperParameterTuningJobName"]
    ),
    ("sagemaker", "CreateTransformJob"): lambda p, r: Resource(
        "sagemaker", "transform-job", p["TransformJobName"]
    ),
    ("sagemaker", "CreateProcessingJob"): lambda p, r: Resource(
        "sagemaker", "processing-job", p["ProcessingJobName"]
    ),
    ("sagemaker", "CreateModel"): lambda p, r: Resource("sagemaker", "model", p["ModelName"]),
    ("sagemaker", "CreateEndpointConfig"): lambda p, r: Resource(
        "sagemaker", "endpoint-config", p["EndpointConfigName"]
    ),
    ("sagemaker", "CreateEndpoint"): lambda p, r: Resource("sagemaker", "endpoint", p["EndpointName"]),
    ("lambda", "CreateFunction"): lambda p, r: Resource("lambda", "function", p["FunctionName"]),
    ("iam", "CreateRole"): lambda p, r: Resource("iam", "role", p["RoleName"]),
    ("iam", "AttachRolePolicy"): lambda p, r: Resource(
        "iam", "role-policy", p["RoleName"], (p["PolicyArn"],)
    ),
    ("iam", "PutRolePolicy"): lambda p, r: Resource(
        "iam", "inline-policy", p["RoleName"], (p["PolicyName"],)
    ),
    ("api-gateway", "CreateRestApi"): lambda p, r: Resource("apigateway", "rest-api", r["id"]),
}

_GONE = (
    "Could not find",
    "not found",
    "NoSuchEntity",
    "ResourceNotFound",
    "NotFoundException",
    "does not exist",
)


class ResourceTracker:
    def __init__(self, boto_session):
        self.boto_session = boto_session
        self.created: list[Resource] = []
        self._lock = threading.Lock()
        self._clients: dict[str, object] = {}
        boto_session.events.register("before-parameter-build", self._remember_params)
        boto_session.events.register("after-call", self._after_call)

    @staticmethod
    def _remember_params(params=None, model=None, context=None, **kwargs) -> None:
        # after-call sees the serialized request, not the API parameters: keep them for it.
        if context is not None and params is not None:
            context["sagelocal_params"] = dict(params)

    def _after_call(self, http_response=None, parsed=None, model=None, context=None, **kwargs) -> None:
        if model is None or http_response is None or http_response.status_code >= 300:
            return
        reader = _CREATES.get((model.service_model.service_id.hyphenize(), model.name))
        if reader is not None:
            with self._lock:
                self.created.append(reader((context or {}).get("sagelocal_params", {}), parsed or {}))

    def _client(self, service: str):
        if service not in self._clients:
            self._clients[service] = self.boto_session.client(service)
        return self._clients[service]

    def cleanup(self, log=print) -> list[str]:
        """Remove everything recorded, newest first; return what could not be removed."""
        with self._lock:
            pending, self.created = list(reversed(self.created)), []
        problems = []
        for resource in pending:
            try:
                action = self._remove(resource)
                if action:
                    log(
                        f"cleanup: {action} {resource.kind} {resource.name}{' ' + resource.extra[0] if resource.extra else ''}"
                    )
            except botocore.exceptions.ClientError as error:
                message = str(error)
                if not any(marker in message for marker in _GONE):
                    problems.append(f"{resource.kind} {resource.name}: {message}")
                    log(f"could not clean up {resource.kind} {resource.name}: {message}")
        return problems

    def _remove(self, resource: Resource) -> str | None:
        """Remove (or stop) one resource; return what was done, None when nothing was left to do."""
        client = self._client(resource.service)
        kind, name = resource.kind, resource.name
        if kind == "training-job":
            if client.describe_training_job(TrainingJobName=name)["TrainingJobStatus"] != "InProgress":
                return None
            client.stop_training_job(TrainingJobName=name)
            return "stopped"
        if kind == "tuning-job":
            status = client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
            if status["HyperParameterTuningJobStatus"] != "InProgress":
                return None
            client.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
            return "stopped"
        if kind == "transform-job":
            if client.describe_transform_job(TransformJobName=name)["TransformJobStatus"] != "InProgress":
                return None
            client.stop_transform_job(TransformJobName=name)
            return "stopped"
        if kind == "processing-job":
            if client.describe_processing_job(ProcessingJobName=name)["ProcessingJobStatus"] != "InProgress":
                return None
            client.stop_processing_job(ProcessingJobName=name)
            return "stopped"
        if kind == "model":
            client.delete_model(ModelName=name)
        elif kind == "endpoint-config":
            client.delete_endpoint_config(EndpointConfigName=name)
        elif kind == "endpoint":
            client.delete_endpoint(EndpointName=name)
        elif kind == "function":
            client.delete_function(FunctionName=name)
        elif kind == "role-policy":
            client.detach_role_policy(RoleName=name, PolicyArn=resource.extra[0])
            return "detached"
        elif kind == "inline-policy":
            client.delete_role_policy(RoleName=name, PolicyName=resource.extra[0])
        elif kind == "role":
            client.delete_role(RoleName=name)
        elif kind == "rest-api":
            client.delete_rest_api(restApiId=name)
        return "deleted"
