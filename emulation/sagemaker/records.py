"""SageMaker's resources as plain records for the state store, and back.

A record is what Describe returns plus what Describe is computed from (final metrics, a tuning job's
children), so a restarted emulator answers as before. Nothing runs across a restart: a job that was
running ends Failed (Stopped if it was being stopped) with a reason that says why, and an endpoint
that was up is deployed again from its endpoint configuration, as the service replaces instances.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from emulation.containers import images
from emulation.sagemaker.hosting import EndpointHost
from emulation.sagemaker.processing import ProcessingRun
from emulation.sagemaker.state import snapshot, utcnow
from emulation.sagemaker.training import TrainingRun
from emulation.sagemaker.transform import TransformRun
from emulation.sagemaker.tuning import TuningRun

if TYPE_CHECKING:
    from emulation.sagemaker.backend import SageMakerBackend

INTERRUPTED = (
    "InternalServerError: the emulator stopped while this job was running (sagelocal was restarted)."
)

INTERRUPTED_ENDPOINT = "The emulator stopped while this endpoint was being created (sagelocal was restarted)."


def capture(backend: SageMakerBackend) -> dict[str, Any]:
    with backend.lock:
        return snapshot(
            {
                "models": backend.models,
                "endpoint_configs": backend.endpoint_configs,
                "tags": backend.tags,
                "model_package_groups": backend.registry.groups,
                "model_packages": backend.registry.packages,
                "training_jobs": {
                    name: {"description": run.description, "final_metrics": run.final_metrics}
                    for name, run in backend.training_jobs.items()
                },
                "transform_jobs": {name: run.description for name, run in backend.transform_jobs.items()},
                "processing_jobs": {name: run.description for name, run in backend.processing_jobs.items()},
                "tuning_jobs": {
                    name: {
                        "description": run.description,
                        "children": [child.name for child in run.children],
                        "tuned": run._tuned,
                    }
                    for name, run in backend.tuning_jobs.items()
                },
                "endpoints": {
                    name: {"description": host.description, "config": host.config}
                    for name, host in backend.endpoints.items()
                    if host.description["EndpointStatus"] != "Deleting"
                },
            }
        )


def restore(backend: SageMakerBackend, record: dict[str, Any]) -> None:
    """Put ``record`` (from ``capture``) back into a fresh backend and redeploy its endpoints."""
    with backend.lock:
        backend.models.update(record["models"])
        backend.endpoint_configs.update(record["endpoint_configs"])
        backend.tags.update(record["tags"])
        backend.registry.groups.update(record["model_package_groups"])
        backend.registry.packages.update(record["model_packages"])
        for name, saved in record["training_jobs"].items():
            backend.training_jobs[name] = _training_run(backend, saved)
        for name, description in record["transform_jobs"].items():
            backend.transform_jobs[name] = _transform_run(backend, description)
        for name, saved in record["tuning_jobs"].items():
            backend.tuning_jobs[name] = _tuning_run(backend, saved)
        for name, description in record.get("processing_jobs", {}).items():
            backend.processing_jobs[name] = _processing_run(backend, description)
        hosts = []
        for name, saved in record["endpoints"].items():
            host = EndpointHost(backend, name, saved["description"]["EndpointArn"])
            host.description = saved["description"]
            backend.endpoints[name] = host
            if host.description["EndpointStatus"] == "Failed":
                continue
            if saved["config"] is None:  # killed between CreateEndpoint's two steps
                host.description.update(EndpointStatus="Failed", FailureReason=INTERRUPTED_ENDPOINT)
                continue
            hosts.append((host, saved["config"]))
    for host, config in hosts:
        host.deploy(copy.deepcopy(config), creating=True)


def _interrupted(description: dict[str, Any], status_key: str) -> bool:
    """Whether the job was still running; if so, end its description as the restart ended it."""
    status = description[status_key]
    if status not in ("InProgress", "Stopping"):
        return False
    description[status_key] = "Stopped" if status == "Stopping" else "Failed"
    if status == "InProgress":
        description["FailureReason"] = INTERRUPTED
    description["LastModifiedTime"] = utcnow()
    return True


def _training_run(backend: SageMakerBackend, saved: dict[str, Any]) -> TrainingRun:
    description = saved["description"]
    # The description holds every field of the request it was made from; the run is never started.
    run = TrainingRun(
        backend,
        description,
        description["TrainingJobArn"],
        images.resolve(description["AlgorithmSpecification"]["TrainingImage"]),
        description.get("TuningJobArn"),
    )
    if _interrupted(description, "TrainingJobStatus"):
        at = description["LastModifiedTime"]
        transitions = description["SecondaryStatusTransitions"]
        if transitions and "EndTime" not in transitions[-1]:
            transitions[-1]["EndTime"] = at
        secondary = description["TrainingJobStatus"]
        message = "Training job failed" if secondary == "Failed" else "Training job stopped"
        transitions.append({"Status": secondary, "StartTime": at, "EndTime": at, "StatusMessage": message})
        description["SecondaryStatus"] = secondary
    run.description = description
    run.final_metrics = saved["final_metrics"]
    return run


def _transform_run(backend: SageMakerBackend, description: dict[str, Any]) -> TransformRun:
    model = backend.models.get(description["ModelName"], {})
    run = TransformRun(backend, description, description["TransformJobArn"], model)
    if _interrupted(description, "TransformJobStatus"):
        description["TransformEndTime"] = description.pop("LastModifiedTime")
    run.description = description
    return run


def _processing_run(backend: SageMakerBackend, description: dict[str, Any]) -> ProcessingRun:
    image = images.resolve(description["AppSpecification"]["ImageUri"])
    run = ProcessingRun(backend, description, description["ProcessingJobArn"], image)
    if _interrupted(description, "ProcessingJobStatus"):
        description["ProcessingEndTime"] = description["LastModifiedTime"]
    run.description = description
    return run


def _tuning_run(backend: SageMakerBackend, saved: dict[str, Any]) -> TuningRun:
    description = saved["description"]
    run = TuningRun(backend, description, description["HyperParameterTuningJobArn"])
    if _interrupted(description, "HyperParameterTuningJobStatus"):
        description["HyperParameterTuningEndTime"] = description["LastModifiedTime"]
    run.description = description
    run.children = [
        backend.training_jobs[name] for name in saved["children"] if name in backend.training_jobs
    ]
    run._tuned = saved["tuned"]
    return run
