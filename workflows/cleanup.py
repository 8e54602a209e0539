"""Track every resource a run creates, whichever API created it, and remove them all at the end.

The tracker listens to botocore's ``after-call`` events on the run's boto3 session, so it sees the
SageMaker SDK's calls and plain boto3 calls alike and no workflow has to remember what it made.
It must be attached before any client of that session exists: a client copies the session's
handlers when it is made, so a client built earlier (``sagemaker.Session`` builds its clients at
once) would create resources the tracker never hears of.

What counts as the run's: SageMaker jobs, models, endpoint configs and endpoints; Lambda functions;
IAM roles and their policies; REST APIs; the S3 objects the run uploaded and those its jobs wrote
(objects under a job's output prefix written after the job was created); the CloudWatch log
streams of its jobs and the log groups of its endpoints and functions.

Cleanup runs in reverse creation order, also after a failure or Ctrl-C; a second Ctrl-C does not
cut it short. An endpoint still Creating cannot be deleted (SageMaker refuses), so cleanup waits for
it to settle first; jobs are stopped and waited for. "Already gone" counts as done. Anything that
could not be removed is returned (and :class:`LeftBehind` raised by the target) so that the run
ends loudly with a non-zero exit instead of a quiet "cleaned up".
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import botocore.exceptions


@dataclass(frozen=True)
class Resource:
    service: str  # boto3 client name
    kind: str  # e.g. "endpoint"
    name: str
    extra: tuple = ()

    def __str__(self) -> str:
        return " ".join([self.kind, self.name, *(e for e in self.extra if isinstance(e, str))])


class LeftBehind(RuntimeError):
    """Cleanup could not remove everything; ``problems`` says what is still there and why."""

    def __init__(self, problems: list[str]):
        super().__init__(f"{len(problems)} resource(s) could not be removed: " + "; ".join(problems))
        self.problems = problems


def _s3_prefix(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _job_outputs(uri: str, job_name: str, since: dt.datetime) -> Resource:
    """What a job writes under ``S3OutputPath``: ``<path>/<job name>...`` (model.tar.gz, output.tar.gz)."""
    bucket, key = _s3_prefix(uri)
    prefix = f"{key.rstrip('/')}/{job_name}" if key else job_name
    return Resource("s3", "job-outputs", bucket, (prefix, since))


def _training_job(p: dict, since: dt.datetime) -> list[Resource]:
    name = p["TrainingJobName"]
    return [
        _job_outputs(p["OutputDataConfig"]["S3OutputPath"], name, since),
        Resource("logs", "log-streams", "/aws/sagemaker/TrainingJobs", (f"{name}/",)),
        Resource("sagemaker", "training-job", name),
    ]


def _tuning_job(p: dict, since: dt.datetime) -> list[Resource]:
    # Child training jobs are named "<tuning job>-<NNN>-<id>"; their outputs and logs follow.
    name = p["HyperParameterTuningJobName"]
    definition = p.get("TrainingJobDefinition") or p["TrainingJobDefinitions"][0]
    return [
        _job_outputs(definition["OutputDataConfig"]["S3OutputPath"], f"{name}-", since),
        Resource("logs", "log-streams", "/aws/sagemaker/TrainingJobs", (f"{name}-",)),
        Resource("sagemaker", "tuning-job", name),
    ]


def _transform_job(p: dict, since: dt.datetime) -> list[Resource]:
    name = p["TransformJobName"]
    bucket, prefix = _s3_prefix(p["TransformOutput"]["S3OutputPath"])
    return [
        Resource("s3", "job-outputs", bucket, (prefix, since)),
        Resource("logs", "log-streams", "/aws/sagemaker/TransformJobs", (f"{name}/",)),
        Resource("sagemaker", "transform-job", name),
    ]


def _processing_job(p: dict, since: dt.datetime) -> list[Resource]:
    name = p["ProcessingJobName"]
    outputs = []
    for output in p.get("ProcessingOutputConfig", {}).get("Outputs", []):
        if "S3Output" in output:
            bucket, prefix = _s3_prefix(output["S3Output"]["S3Uri"])
            outputs.append(Resource("s3", "job-outputs", bucket, (prefix, since)))
    return [
        *outputs,
        Resource("logs", "log-streams", "/aws/sagemaker/ProcessingJobs", (f"{name}/",)),
        Resource("sagemaker", "processing-job", name),
    ]


#: (event service id, operation) -> the resources a successful call created, from the request
#: parameters, the parsed response and the server's time of the call.
_CREATES: dict[tuple[str, str], Callable[[dict, dict, dt.datetime], list[Resource]]] = {
    ("sagemaker", "CreateTrainingJob"): lambda p, r, t: _training_job(p, t),
    ("sagemaker", "CreateHyperParameterTuningJob"): lambda p, r, t: _tuning_job(p, t),
    ("sagemaker", "CreateTransformJob"): lambda p, r, t: _transform_job(p, t),
    ("sagemaker", "CreateProcessingJob"): lambda p, r, t: _processing_job(p, t),
    ("sagemaker", "CreateModel"): lambda p, r, t: [Resource("sagemaker", "model", p["ModelName"])],
    ("sagemaker", "CreateEndpointConfig"): lambda p, r, t: [
        Resource("sagemaker", "endpoint-config", p["EndpointConfigName"])
    ],
    ("sagemaker", "CreateEndpoint"): lambda p, r, t: [
        Resource("logs", "log-group", f"/aws/sagemaker/Endpoints/{p['EndpointName']}"),
        Resource("sagemaker", "endpoint", p["EndpointName"]),
    ],
    ("lambda", "CreateFunction"): lambda p, r, t: [
        Resource("logs", "log-group", f"/aws/lambda/{p['FunctionName']}"),
        Resource("lambda", "function", p["FunctionName"]),
    ],
    ("iam", "CreateRole"): lambda p, r, t: [Resource("iam", "role", p["RoleName"])],
    ("iam", "AttachRolePolicy"): lambda p, r, t: [
        Resource("iam", "role-policy", p["RoleName"], (p["PolicyArn"],))
    ],
    ("iam", "PutRolePolicy"): lambda p, r, t: [
        Resource("iam", "inline-policy", p["RoleName"], (p["PolicyName"],))
    ],
    ("api-gateway", "CreateRestApi"): lambda p, r, t: [Resource("apigateway", "rest-api", r["id"])],
    ("s3", "PutObject"): lambda p, r, t: [Resource("s3", "object", p["Bucket"], (p["Key"],))],
    ("s3", "CompleteMultipartUpload"): lambda p, r, t: [Resource("s3", "object", p["Bucket"], (p["Key"],))],
}

_GONE = (
    "Could not find",
    "not found",
    "NoSuchEntity",
    "NoSuchKey",
    "NoSuchBucket",
    "ResourceNotFound",
    "NotFoundException",
    "does not exist",
)
#: Endpoint states in which SageMaker refuses DeleteEndpoint ("Cannot update in-progress endpoint").
_ENDPOINT_IN_PROGRESS = ("Creating", "Updating", "SystemUpdating", "RollingBack", "UpdateRollbackFailed")
_JOB_RUNNING = ("InProgress", "Stopping")


class ResourceTracker:
    """Records what a boto3 session creates; removes it with :meth:`cleanup`.

    ``poll_seconds`` is how often cleanup re-reads a state it waits for, ``wait_seconds`` the most
    it waits for one resource (endpoints take minutes on AWS, milliseconds locally).
    """

    def __init__(self, boto_session, poll_seconds: float = 15.0, wait_seconds: float = 1800.0):
        self.boto_session = boto_session
        self.poll_seconds = poll_seconds
        self.wait_seconds = wait_seconds
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
        if reader is None:
            return
        resources = reader(
            (context or {}).get("sagelocal_params", {}), parsed or {}, _server_time(http_response)
        )
        with self._lock:
            self.created.extend(resources)

    def _client(self, service: str):
        if service not in self._clients:
            self._clients[service] = self.boto_session.client(service)
        return self._clients[service]

    def cleanup(self, log=print) -> list[str]:
        """Remove everything recorded, newest first; return what could not be removed."""
        with self._lock:
            pending, self.created = list(reversed(self.created)), []
        problems = []
        with _ctrl_c_deferred(lambda: log("cleanup: still removing resources; Ctrl-C will not stop it")):
            for resource in pending:
                try:
                    action = self._remove(resource)
                    if action:
                        log(f"cleanup: {action} {resource}")
                except Exception as error:  # a network error must not end cleanup either
                    message = f"{type(error).__name__}: {error}"
                    if not any(marker in message for marker in _GONE):
                        problems.append(f"{resource}: {message}")
                        log(f"cleanup: COULD NOT REMOVE {resource}: {message}")
        return problems

    # -- one resource ------------------------------------------------------------------------------
    def _remove(self, resource: Resource) -> str | None:
        """Remove (or stop) one resource; return what was done, None when nothing was left to do."""
        client = self._client(resource.service)
        kind, name = resource.kind, resource.name
        if kind in ("training-job", "tuning-job", "transform-job", "processing-job"):
            return self._stop_job(client, kind, name)
        if kind == "endpoint":
            delete_endpoint(client, name, self.poll_seconds, self.wait_seconds)
        elif kind == "model":
            client.delete_model(ModelName=name)
        elif kind == "endpoint-config":
            client.delete_endpoint_config(EndpointConfigName=name)
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
        elif kind == "object":
            client.delete_object(Bucket=name, Key=resource.extra[0])
        elif kind == "job-outputs":
            return self._delete_outputs(client, name, *resource.extra)
        elif kind == "log-group":
            client.delete_log_group(logGroupName=name)
        elif kind == "log-streams":
            return self._delete_log_streams(client, name, resource.extra[0])
        return "deleted"

    def _stop_job(self, client, kind: str, name: str) -> str | None:
        describe, stop, status_key, argument = {
            "training-job": (
                client.describe_training_job, client.stop_training_job, "TrainingJobStatus", "TrainingJobName"
            ),
            "tuning-job": (
                client.describe_hyper_parameter_tuning_job,
                client.stop_hyper_parameter_tuning_job,
                "HyperParameterTuningJobStatus",
                "HyperParameterTuningJobName",
            ),
            "transform-job": (
                client.describe_transform_job, client.stop_transform_job, "TransformJobStatus", "TransformJobName"
            ),
            "processing-job": (
                client.describe_processing_job, client.stop_processing_job, "ProcessingJobStatus", "ProcessingJobName"
            ),
        }[kind]  # fmt: skip
        status = lambda: describe(**{argument: name})[status_key]  # noqa: E731
        current = status()
        if current not in _JOB_RUNNING:
            return None
        if current == "InProgress":
            stop(**{argument: name})
        # Stopped jobs still upload what they have: wait, so their outputs are removed too.
        wait_until(
            f"{kind} {name}", lambda: status() not in _JOB_RUNNING, self.poll_seconds, self.wait_seconds
        )
        return "stopped"

    def _delete_outputs(self, client, bucket: str, prefix: str, since: dt.datetime) -> str | None:
        """Objects under the prefix written since the job was created: this run's, nobody else's."""
        keys = [
            obj["Key"]
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for obj in page.get("Contents", [])
            if obj["LastModified"] >= since
        ]
        for start in range(0, len(keys), 1000):
            answer = client.delete_objects(
                Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[start : start + 1000]]}
            )
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise RuntimeError(
                    f"{len(answer['Errors'])} object(s) not deleted, e.g. {first['Key']}: {first['Message']}"
                )
        return f"deleted {len(keys)} object(s) of" if keys else None

    @staticmethod
    def _delete_log_streams(client, group: str, prefix: str) -> str | None:
        streams = [
            stream["logStreamName"]
            for page in client.get_paginator("describe_log_streams").paginate(
                logGroupName=group, logStreamNamePrefix=prefix
            )
            for stream in page.get("logStreams", [])
        ]
        for stream in streams:
            client.delete_log_stream(logGroupName=group, logStreamName=stream)
        return f"deleted {len(streams)} log stream(s) of" if streams else None


def wait_until(what: str, settled: Callable[[], bool], poll_seconds: float, wait_seconds: float) -> None:
    deadline = time.monotonic() + wait_seconds
    while not settled():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not settle within {wait_seconds:.0f} s")
        time.sleep(poll_seconds)


def delete_endpoint(sagemaker, name: str, poll_seconds: float, wait_seconds: float) -> None:
    """Delete an endpoint the way SageMaker allows it: once it is no longer Creating or Updating
    (it refuses before), then wait until it is gone, so that nothing is left billing."""
    status = lambda: sagemaker.describe_endpoint(EndpointName=name)["EndpointStatus"]  # noqa: E731
    wait_until(f"endpoint {name}", lambda: status() not in _ENDPOINT_IN_PROGRESS, poll_seconds, wait_seconds)
    sagemaker.delete_endpoint(EndpointName=name)
    wait_until(f"deletion of endpoint {name}", lambda: _gone(status), poll_seconds, wait_seconds)


def _gone(read: Callable[[], object]) -> bool:
    try:
        read()
    except botocore.exceptions.ClientError as error:
        if any(marker in str(error) for marker in _GONE):
            return True
        raise
    return False


def _server_time(http_response) -> dt.datetime:
    """The service's clock at the call (its Date header, to the second), which S3 times compare to."""
    date = http_response.headers.get("Date")
    if date:
        return email.utils.parsedate_to_datetime(date)
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


@contextlib.contextmanager
def _ctrl_c_deferred(notice: Callable[[], None]) -> Iterator[None]:
    """While cleanup runs, Ctrl-C prints a notice instead of interrupting it (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda *_: notice())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
