"""Run a workflow on the aws target against moto's in-process AWS, and list what is left after it.

``python tests/moto_aws.py <workflow> <output dir>`` prints one line ``REPORT <json>``. It runs in
its own process because ``mock_aws`` replaces moto's global backends (the test session's emulator
uses them). The workflow's real code runs unchanged: ``open_target`` on the aws target, the
SageMaker SDK, boto3, the tracker and its cleanup; only the network is moto.

moto keeps SageMaker's records but runs no jobs, so this file gives its "AWS" the effects a real
account has and the workflow reads or cleanup must remove (it adds to moto, it stubs nothing in
the workflow):
- a training job writes ``model.tar.gz`` under its output path and a log stream;
- a transform job writes ``<input>.out`` (one prediction per input line) and a log stream;
- a processing job runs its own command (the user's script) on this machine, with its S3 inputs
  downloaded and its outputs uploaded as the container's /opt/ml/processing would be, and a log
  stream;
- an endpoint gets its log group; InvokeEndpoint answers one prediction per input line (CSV, or
  ``{"predictions": [...]}`` when JSON is asked for, as the script-mode inference.py answers);
- a tuning job runs three child training jobs (named as SageMaker names them), the first best;
  ListTrainingJobsForHyperParameterTuningJob lists them (moto lacks it);
- Service Quotas knows the account's SageMaker instance quotas (moto knows only VPC's);
- the public execute-api URL is served by running the deployed package's handler, with the
  proxy event API Gateway would send, after checking the API, stage, integration and permission.
Predictions are constant (0.5): these runs check what is created and removed, not the models.

Scenarios, each followed by a listing of everything in the account:
- ``clean``: the run succeeds;
- ``fail@N``: the N-th creating call raises (N = 1 .. number of creating calls);
- ``ctrl-c@N``: Ctrl-C (KeyboardInterrupt) at the N-th creating call, and a real SIGINT sent to
  the process during the cleanup that follows (the second Ctrl-C);
- ``quota``: the account's endpoint (or training) quota for the instance type is 0: the run is
  refused before anything is created.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import traceback
import urllib.error
import urllib.parse
import uuid
import zipfile
from email.message import Message
from pathlib import Path

os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_EC2_METADATA_DISABLED="true",
    SAGEMAKER_SUPPRESS_V2_WARNING="1",
)

import boto3  # noqa: E402
import botocore.loaders  # noqa: E402
from moto import mock_aws  # noqa: E402
from moto.core.responses import ActionResult  # noqa: E402

ACCOUNT = "123456789012"
REGION = "eu-west-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/SageMakerRole"
PREDICTION = "0.5"
#: One botocore loader for every session here: a fresh session would re-read the service models
#: (SageMaker's is large) for each run; sharing the cache changes nothing else.
LOADER = botocore.loaders.create_loader()


def _session() -> boto3.Session:
    session = boto3.Session(region_name=REGION)
    session._session.register_component("data_loader", LOADER)
    return session


# -- what moto's "AWS" does beyond its records --------------------------------------------------


def _s3():
    from moto.s3.models import s3_backends

    return s3_backends[ACCOUNT]["aws"]


def _sagemaker():
    from moto.sagemaker.models import sagemaker_backends

    return sagemaker_backends[ACCOUNT][REGION]


def _log(group: str, stream: str) -> None:
    from moto.logs.models import logs_backends

    logs = logs_backends[ACCOUNT][REGION]
    if group not in logs.groups:
        logs.create_log_group(group, {})
    logs.ensure_log_stream(group, stream)
    logs.put_log_events(group, stream, [{"timestamp": 0, "message": "started"}])


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _write_training_outputs(job_name: str) -> None:
    artifacts = _sagemaker().training_jobs[job_name].model_artifacts["S3ModelArtifacts"]
    bucket, key = _split(artifacts)
    _s3().put_object(bucket, key, b"model.tar.gz of " + job_name.encode())
    _log("/aws/sagemaker/TrainingJobs", f"{job_name}/algo-1-{uuid.uuid4().hex[:10]}")


def _objects(uri: str):
    """(relative path, bytes) of every object under an S3 prefix (one object: its file name)."""
    bucket, prefix = _split(uri)
    for key, obj in list(_s3().get_bucket(bucket).keys.items()):
        if key.startswith(prefix) and obj is not None:
            yield key[len(prefix) :].lstrip("/") or key.rsplit("/", 1)[-1], obj.value


def _transform(params: dict) -> None:
    out_bucket, out_prefix = _split(params["TransformOutput"]["S3OutputPath"])
    for relative, body in _objects(params["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]):
        _s3().put_object(
            out_bucket,
            f"{out_prefix.rstrip('/')}/{relative}.out",
            ("\n".join(PREDICTION for _ in body.decode().splitlines()) + "\n").encode(),
        )
    _log("/aws/sagemaker/TransformJobs", f"{params['TransformJobName']}/i-{uuid.uuid4().hex[:17]}")


PROCESSING_ROOT = "/opt/ml/processing"


def _process(params: dict) -> None:
    """The job's container command, run here with its /opt/ml/processing in a temporary directory."""
    outputs = [o["S3Output"] for o in params.get("ProcessingOutputConfig", {}).get("Outputs", [])]
    with tempfile.TemporaryDirectory(prefix="processing-") as directory:
        root = Path(directory)

        def local(path: str) -> Path:
            return root / Path(path).relative_to(PROCESSING_ROOT)

        for item in params.get("ProcessingInputs", []):
            for relative, body in _objects(item["S3Input"]["S3Uri"]) if "S3Input" in item else ():
                destination = local(item["S3Input"]["LocalPath"]) / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                destination.write_bytes(body)
        for output in outputs:
            local(output["LocalPath"]).mkdir(parents=True, exist_ok=True)
        app = params["AppSpecification"]
        command = [
            argument.replace(PROCESSING_ROOT, directory)
            for argument in [*app.get("ContainerEntrypoint", []), *app.get("ContainerArguments", [])]
        ]
        if command and command[0] in ("python", "python3"):
            command[0] = sys.executable
        ran = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=600)
        assert ran.returncode == 0, f"processing command {command} failed: {ran.stderr[-2000:]}"
        for output in outputs:
            bucket, prefix = _split(output["S3Uri"])
            written = local(output["LocalPath"])
            for path in sorted(p for p in written.rglob("*") if p.is_file()):
                key = f"{prefix.rstrip('/')}/{path.relative_to(written)}"
                _s3().put_object(bucket, key, path.read_bytes())
    _log("/aws/sagemaker/ProcessingJobs", f"{params['ProcessingJobName']}/algo-1-{uuid.uuid4().hex[:10]}")


def _tune(params: dict) -> None:
    """Three child training jobs, named as SageMaker names them; the first is the best."""
    name = params["HyperParameterTuningJobName"]
    definition = params["TrainingJobDefinition"]
    children = []
    for number in range(1, 4):
        child = f"{name}-{number:03d}-{uuid.uuid4().hex[:8]}"
        _sagemaker().create_training_job(
            training_job_name=child,
            hyper_parameters=definition.get("StaticHyperParameters", {}),
            algorithm_specification=definition["AlgorithmSpecification"],
            role_arn=definition["RoleArn"],
            input_data_config=definition["InputDataConfig"],
            output_data_config={
                "KmsKeyId": "",
                **definition["OutputDataConfig"],
            },  # as SageMaker describes it
            resource_config=definition.get("ResourceConfig")
            or definition.get("HyperParameterTuningResourceConfig"),
            vpc_config=None,
            stopping_condition=definition["StoppingCondition"],
            tags=[],
            enable_network_isolation=False,
            enable_inter_container_traffic_encryption=False,
            enable_managed_spot_training=False,
            checkpoint_config=None,
            debug_hook_config=None,
            debug_rule_configurations=None,
            tensor_board_output_config=None,
            experiment_config=None,
        )
        _write_training_outputs(child)
        children.append(child)
    job = _sagemaker().hyper_parameter_tuning_jobs[name]
    job.children = children
    metric = {"Type": "Minimize", "MetricName": "validation:rmse", "Value": 3.0}
    job.best_training_job = {
        **job.best_training_job,
        "TrainingJobName": children[0],
        "TrainingJobArn": _sagemaker().training_jobs[children[0]].arn,
        "TuningJobName": name,
        "FinalHyperParameterTuningJobObjectiveMetric": metric,
    }


def _list_children(self) -> ActionResult:
    name = json.loads(self.body)["HyperParameterTuningJobName"]
    job = _sagemaker().hyper_parameter_tuning_jobs[name]
    summaries = []
    for index, child in enumerate(getattr(job, "children", [])):
        training = _sagemaker().training_jobs[child]
        summaries.append(
            {
                "TrainingJobName": child,
                "TrainingJobArn": training.arn,
                "TuningJobName": name,
                "CreationTime": training.creation_time,
                "TrainingJobStatus": "Completed",
                "TunedHyperParameters": {"eta": "0.1"},
                "FinalHyperParameterTuningJobObjectiveMetric": {
                    "MetricName": "validation:rmse",
                    "Value": 3.0 + index,
                },
                "ObjectiveStatus": "Succeeded",
            }
        )
    return ActionResult({"TrainingJobSummaries": summaries})


QUOTAS: dict[str, float] = {}


def _list_quotas(self) -> str:
    quotas = [
        {"ServiceCode": "sagemaker", "QuotaName": name, "QuotaCode": f"L-{index:08d}", "Value": value}
        for index, (name, value) in enumerate(sorted(QUOTAS.items()))
    ]
    return json.dumps({"Quotas": quotas})


def _after(response_class, operation: str, effect) -> None:
    original = getattr(response_class, operation)

    def wrapped(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        effect(json.loads(self.body))
        return result

    setattr(response_class, operation, wrapped)


def _invoke_endpoint(self):
    """One prediction per CSV line, from an endpoint that exists and is InService."""
    name = urllib.parse.unquote(self.path.split("/")[2])
    status = _sagemaker().endpoints[name].endpoint_status  # KeyError: no such endpoint
    assert status == "InService", status
    body = self.body.decode() if isinstance(self.body, bytes) else self.body
    lines = body.splitlines() or [""]
    if "application/json" in self.headers.get("Accept", ""):
        answer = {"predictions": [float(PREDICTION) for _ in lines]}
        return 200, {"Content-Type": "application/json"}, json.dumps(answer)
    return 200, {"Content-Type": "text/csv"}, "\n".join(PREDICTION for _ in lines)


def give_moto_the_effects_of_aws() -> None:
    from moto.sagemaker.responses import SageMakerResponse
    from moto.sagemakerruntime.responses import SageMakerRuntimeResponse
    from moto.servicequotas.responses import ServiceQuotasResponse

    _after(SageMakerResponse, "create_training_job", lambda p: _write_training_outputs(p["TrainingJobName"]))
    _after(SageMakerResponse, "create_transform_job", _transform)
    _after(SageMakerResponse, "create_hyper_parameter_tuning_job", _tune)
    _after(SageMakerResponse, "create_processing_job", _process)
    _after(
        SageMakerResponse,
        "create_endpoint",
        lambda p: _log(
            f"/aws/sagemaker/Endpoints/{p['EndpointName']}", f"AllTraffic/i-{uuid.uuid4().hex[:17]}"
        ),
    )
    SageMakerResponse.list_training_jobs_for_hyper_parameter_tuning_job = _list_children
    ServiceQuotasResponse.list_service_quotas = _list_quotas
    SageMakerRuntimeResponse.invoke_endpoint = _invoke_endpoint


# -- the public URL: API Gateway -> Lambda (the deployed package's handler, run here) -------------


class _Reply(io.BytesIO):
    def __init__(self, status: int, body: bytes, headers: dict[str, str]):
        super().__init__(body)
        self.status = status
        self.headers = Message()
        for name, value in headers.items():
            self.headers[name] = value


def _serve_public_request(request, timeout=None):
    url = urllib.parse.urlsplit(request.full_url)
    api_id, _, rest = url.netloc.partition(".execute-api.")
    assert rest == f"{REGION}.amazonaws.com", url.netloc
    stage, _, path = url.path.lstrip("/").partition("/")
    api = CLIENTS.get("apigateway")
    api.get_stage(restApiId=api_id, stageName=stage)
    root = next(r for r in api.get_resources(restApiId=api_id)["items"] if r["path"] == "/" + path)
    integration = api.get_integration(
        restApiId=api_id, resourceId=root["id"], httpMethod=request.get_method()
    )
    function_arn = integration["uri"].split("/functions/", 1)[1].removesuffix("/invocations")
    lam = CLIENTS.get("lambda")
    policy = json.loads(lam.get_policy(FunctionName=function_arn)["Policy"])
    assert any(s["Principal"]["Service"] == "apigateway.amazonaws.com" for s in policy["Statement"]), policy
    function = lam.get_function(FunctionName=function_arn)
    assert function["Configuration"]["State"] == "Active"
    package = _deployed_package(lam, function_arn)
    event = {
        "resource": "/" + path,
        "path": "/" + path,
        "httpMethod": request.get_method(),
        "headers": dict(request.header_items()),
        "body": base64.b64encode(request.data).decode(),
        "isBase64Encoded": True,
        "requestContext": {"stage": stage, "apiId": api_id},
    }
    answer = _run_handler(package, function["Configuration"], event)
    body = answer.get("body") or ""
    data = base64.b64decode(body) if answer.get("isBase64Encoded") else body.encode()
    if answer.get("statusCode", 200) >= 400:
        raise urllib.error.HTTPError(
            request.full_url, answer["statusCode"], "error", Message(), io.BytesIO(data)
        )
    return _Reply(answer.get("statusCode", 200), data, answer.get("headers") or {})


def _deployed_package(lam, function_arn: str) -> bytes:
    from moto.awslambda.models import lambda_backends

    function = lambda_backends[ACCOUNT][REGION].get_function(function_arn)
    return function.code_bytes


def _run_handler(package: bytes, configuration: dict, event: dict) -> dict:
    directory = tempfile.mkdtemp(prefix="lambda-package-")
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        archive.extractall(directory)
        modes = {info.filename: (info.external_attr >> 16) & 0o777 for info in archive.infolist()}
    unreadable = sorted(name for name, mode in modes.items() if not mode & 0o004)
    assert not unreadable, f"Lambda could not read {unreadable[:3]}"
    module_name, handler_name = configuration["Handler"].rsplit(".", 1)
    saved_path, saved_env = list(sys.path), dict(os.environ)
    sys.path.insert(0, directory)
    # What the Lambda runtime sets, then the function's own variables.
    os.environ.update(AWS_REGION=REGION, AWS_DEFAULT_REGION=REGION, LAMBDA_TASK_ROOT=directory)
    os.environ.update(configuration.get("Environment", {}).get("Variables", {}))
    try:
        import importlib

        module = importlib.import_module(module_name)
        try:
            return getattr(module, handler_name)(event, None)
        finally:
            sys.modules.pop(module_name, None)
    finally:
        sys.path[:] = saved_path
        os.environ.clear()
        os.environ.update(saved_env)


# -- listing everything ------------------------------------------------------------------------


class _Clients(dict):
    def get(self, service: str):
        if service not in self:
            self[service] = _session().client(service)
        return self[service]


CLIENTS = _Clients()


SHARED_LOG_GROUPS = {
    "/aws/sagemaker/TrainingJobs",
    "/aws/sagemaker/TransformJobs",
    "/aws/sagemaker/ProcessingJobs",
}


def everything() -> dict[str, list[str]]:
    """Every resource of the kinds the workflows create, as the account's APIs list them."""
    sagemaker, s3, logs = CLIENTS.get("sagemaker"), CLIENTS.get("s3"), CLIENTS.get("logs")

    def running(kind: str, name: str) -> list[str]:
        summaries = getattr(sagemaker, f"list_{kind}s")()[f"{name}Summaries"]
        return [j[f"{name}Name"] for j in summaries if j[f"{name}Status"] in ("InProgress", "Stopping")]

    return {
        "endpoints": [e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]],
        "endpoint_configs": [
            c["EndpointConfigName"] for c in sagemaker.list_endpoint_configs()["EndpointConfigs"]
        ],
        "models": [m["ModelName"] for m in sagemaker.list_models()["Models"]],
        "running_training_jobs": running("training_job", "TrainingJob"),
        "running_tuning_jobs": running("hyper_parameter_tuning_job", "HyperParameterTuningJob"),
        "running_transform_jobs": running("transform_job", "TransformJob"),
        "running_processing_jobs": running("processing_job", "ProcessingJob"),
        "functions": [f["FunctionName"] for f in CLIENTS.get("lambda").list_functions()["Functions"]],
        "roles": [r["RoleName"] for r in CLIENTS.get("iam").list_roles()["Roles"]],
        "rest_apis": [a["name"] for a in CLIENTS.get("apigateway").get_rest_apis()["items"]],
        "s3_objects": [
            f"{b['Name']}/{o['Key']}"
            for b in s3.list_buckets()["Buckets"]
            for o in s3.list_objects_v2(Bucket=b["Name"]).get("Contents", [])
        ],
        # The jobs' groups are the account's, shared by every run: only their streams are a run's.
        "log_groups": [
            f"{g['logGroupName']} ({len(logs.describe_log_streams(logGroupName=g['logGroupName'])['logStreams'])} streams)"
            for g in logs.describe_log_groups()["logGroups"]
            if logs.describe_log_streams(logGroupName=g["logGroupName"])["logStreams"]
            or g["logGroupName"] not in SHARED_LOG_GROUPS
        ],
    }


# -- injecting failures --------------------------------------------------------------------------


class InjectedFailure(RuntimeError):
    pass


class Injector:
    """Counts the creating calls of every session the target builds; raises at the chosen one."""

    def __init__(self, creating: set[tuple[str, str]]):
        self.creating = creating
        self.at: int | None = None
        self.interrupt = False
        self.calls: list[str] = []
        self.second_ctrl_c_sent = False

    def before_call(self, model=None, **kwargs) -> None:
        key = (model.service_model.service_id.hyphenize(), model.name)
        if key in self.creating:
            self.calls.append(model.name)
            if self.at is not None and len(self.calls) == self.at:
                if self.interrupt:  # Ctrl-C just before the call is sent: SIGINT, as a terminal sends it
                    os.kill(os.getpid(), signal.SIGINT)
                    return
                raise InjectedFailure(f"injected failure at creating call {self.at} ({model.name})")
        elif (
            self.interrupt
            and self.at is not None
            and len(self.calls) >= self.at
            and model.name.startswith("Delete")
        ):
            if not self.second_ctrl_c_sent:  # cleanup is running: the second Ctrl-C, a real SIGINT
                self.second_ctrl_c_sent = True
                os.kill(os.getpid(), signal.SIGINT)


def _compute_once() -> None:
    """Local work that gives the same result every scenario is done once: the IMDB reviews'
    bag of words and the Lambda package built from it, and the SDK's endpoint-data parse (it
    re-reads botocore's endpoints.json on every call). What reaches AWS is unchanged."""
    import dataclasses
    import functools

    import sagemaker.utils

    from workflows import imdb_web_app, lambda_package

    sagemaker.utils._botocore_resolver = functools.cache(sagemaker.utils._botocore_resolver)
    prepared: dict = {}
    prepare = imdb_web_app.prepare

    def prepare_once(source, directory, log=print):
        if source not in prepared:
            prepared[source] = prepare(source, directory, log)
        return dataclasses.replace(prepared[source], timings={}, test_scores=None)

    imdb_web_app.prepare = prepare_once
    packages: dict[str, bytes] = {}
    build = lambda_package.build

    def build_once(vocabulary):
        key = json.dumps(vocabulary, sort_keys=True)
        if key not in packages:
            packages[key] = build(vocabulary)
        return packages[key]

    lambda_package.build = build_once


def main(workflow: str, output: Path) -> dict:
    from workflows import cli, registry
    from workflows import target as target_module
    from workflows.cleanup import _CREATES, LeftBehind
    from workflows.plan import DEFAULT_INSTANCE_TYPE, needed_quotas
    from workflows.sdk_hooks import VirtualClock
    from workflows.target import TargetSettings, open_target

    module = registry.load(workflow)
    injector = Injector(set(_CREATES))

    class InjectingSession(boto3.Session):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._session.register_component("data_loader", LOADER)
            self.events.register("before-call", injector.before_call)

    target_module.boto3.Session = InjectingSession
    import sagemaker.session as sdk_session

    sdk_session.time = VirtualClock()  # the SDK's fixed sleeps, at moto's speed
    import urllib.request

    urllib.request.urlopen = _serve_public_request
    give_moto_the_effects_of_aws()
    _compute_once()

    items = module.plan(DEFAULT_INSTANCE_TYPE)
    settings = TargetSettings(name="aws", region=REGION, role_arn=ROLE)
    report: dict = {"scenarios": {}}

    def scenario(label: str, at: int | None = None, interrupt: bool = False) -> dict:
        injector.at, injector.interrupt, injector.calls, injector.second_ctrl_c_sent = (
            at,
            interrupt,
            [],
            False,
        )
        logged: list[str] = []
        outcome = "completed"
        try:
            with open_target(settings, log=logged.append, plan=items) as target:
                module.run(target, output / label, log=logged.append)
        except InjectedFailure:
            outcome = "injected failure"
        except KeyboardInterrupt:
            outcome = "interrupted"
        except LeftBehind as error:
            outcome = f"left behind: {error.problems}"
        except Exception as error:
            outcome = f"{type(error).__name__}: {error}\n{traceback.format_exc()[-1500:]}"
        return {
            "outcome": outcome,
            "creating_calls": list(injector.calls),
            "second_ctrl_c_sent": injector.second_ctrl_c_sent,
            "left": {kind: names for kind, names in everything().items() if names},
            "cleanup_log": [line for line in logged if line.startswith("cleanup")],
        }

    with mock_aws():
        QUOTAS.clear()
        QUOTAS.update({name: float(count) for name, count in needed_quotas(items).items()})
        plan_output = io.StringIO()
        with contextlib.redirect_stdout(plan_output):
            cli._plan(workflow, settings)
        report["plan"] = plan_output.getvalue()
        report["scenarios"]["clean"] = first = scenario("clean")
        steps = len(first["creating_calls"])
        for at in range(1, steps + 1):
            report["scenarios"][f"fail@{at}"] = scenario(f"fail-{at}", at)
        for at in range(1, steps + 1):
            report["scenarios"][f"ctrl-c@{at}"] = scenario(f"ctrl-c-{at}", at, interrupt=True)
        # A new account's typical gap: 0 endpoints (else 0 training instances) of this type.
        short = max(
            QUOTAS,
            key=lambda name: (name.endswith("for endpoint usage"), name.endswith("training job usage")),
        )
        QUOTAS[short] = 0.0
        report["scenarios"]["quota"] = scenario("quota")
    return report


if __name__ == "__main__":
    with contextlib.redirect_stdout(sys.stderr):
        result = main(sys.argv[1], Path(sys.argv[2]))
    print("REPORT " + json.dumps(result, default=str))
