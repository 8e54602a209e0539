"""SageMaker's JSON 1.1 API: one handler per operation, requests validated by botocore's model."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from botocore.model import OperationNotFoundError
from werkzeug.wrappers import Request, Response

from emulation.protocol import AwsError, error_response, operation_model, snake_case, to_json, validate_input
from emulation.sagemaker import search
from emulation.sagemaker.backend import SageMakerBackend

CONTENT_TYPE = "application/x-amz-json-1.1"


def json_response(data: Any, status: int = 200) -> Response:
    return Response(to_json(data), status=status, content_type=CONTENT_TYPE)


def json_error(error: AwsError) -> Response:
    return error_response(error, content_type=CONTENT_TYPE)


def paginate(
    items: Iterable[dict[str, Any]],
    params: dict[str, Any],
    *,
    name_key: str,
    status_key: str | None = None,
    sort_keys: dict[str, str] | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """The List* conventions: NameContains, StatusEquals, CreationTime filters, SortBy/SortOrder, paging."""
    rows = list(items)
    if params.get("NameContains"):
        rows = [r for r in rows if params["NameContains"] in r[name_key]]
    if status_key and params.get("StatusEquals"):
        rows = [r for r in rows if r.get(status_key) == params["StatusEquals"]]
    for field, keep in (
        ("CreationTimeAfter", lambda t, v: t > v),
        ("CreationTimeBefore", lambda t, v: t < v),
    ):
        if field in params:
            rows = [r for r in rows if keep(r["CreationTime"].timestamp(), float(params[field]))]
    sort_keys = sort_keys or {
        "Name": name_key,
        "CreationTime": "CreationTime",
        "Status": status_key or name_key,
    }
    sort_by = sort_keys.get(params.get("SortBy", "CreationTime"), "CreationTime")
    if sort_by is not None:  # None: keep the caller's order
        descending = params.get("SortOrder", "Descending") == "Descending"
        rows.sort(key=lambda r: r.get(sort_by) or "", reverse=descending)
    start = int(params.get("NextToken") or 0)
    size = int(params.get("MaxResults") or 10)
    page = rows[start : start + size]
    more = start + size < len(rows)
    return page, (str(start + size) if more else None)


class SageMakerProvider:
    def __init__(self, backend: SageMakerBackend):
        self.backend = backend

    def handle(self, request: Request) -> Response:
        operation = request.headers["X-Amz-Target"].split(".", 1)[1]
        try:
            model = operation_model("sagemaker", operation)
        except OperationNotFoundError:
            return json_error(AwsError("UnknownOperationException", f"Unknown operation {operation}"))
        handler = getattr(self, snake_case(operation), None)
        if handler is None:
            return json_error(
                AwsError(
                    "NotImplemented", f"The operation {operation} is not supported by sagelocal.", status=501
                )
            )
        try:
            params = json.loads(request.get_data() or b"{}")
        except ValueError:
            return json_error(
                AwsError("SerializationException", "Start of structure or map found where not expected.")
            )
        try:
            validate_input(model, params)
            return json_response(handler(params) or {})
        except AwsError as error:
            return json_error(error)

    # -- training jobs ------------------------------------------------------------------------
    def create_training_job(self, params):
        return {"TrainingJobArn": self.backend.create_training_job(params).description["TrainingJobArn"]}

    def describe_training_job(self, params):
        return self.backend.training_job(params["TrainingJobName"]).describe()

    def stop_training_job(self, params):
        self.backend.stop_training_job(params["TrainingJobName"])

    def list_training_jobs(self, params):
        with self.backend.lock:
            jobs = [run.describe() for run in self.backend.training_jobs.values()]
        summaries = (
            {k: d[k] for k in ("TrainingJobName", "TrainingJobArn", "CreationTime", "TrainingEndTime",
                               "LastModifiedTime", "TrainingJobStatus", "SecondaryStatus") if k in d}
            for d in jobs
        )  # fmt: skip
        page, token = paginate(summaries, params, name_key="TrainingJobName", status_key="TrainingJobStatus")
        return {"TrainingJobSummaries": page, **({"NextToken": token} if token else {})}

    # -- models -------------------------------------------------------------------------------
    def create_model(self, params):
        return self.backend.create_model(params)

    def describe_model(self, params):
        return self.backend.model(params["ModelName"])

    def delete_model(self, params):
        self.backend.delete_model(params["ModelName"])

    def list_models(self, params):
        with self.backend.lock:
            models = [
                {k: m[k] for k in ("ModelName", "ModelArn", "CreationTime")}
                for m in self.backend.models.values()
            ]
        page, token = paginate(models, params, name_key="ModelName")
        return {"Models": page, **({"NextToken": token} if token else {})}

    # -- endpoint configs ---------------------------------------------------------------------
    def create_endpoint_config(self, params):
        return self.backend.create_endpoint_config(params)

    def describe_endpoint_config(self, params):
        return self.backend.endpoint_config(params["EndpointConfigName"])

    def delete_endpoint_config(self, params):
        self.backend.delete_endpoint_config(params["EndpointConfigName"])

    def list_endpoint_configs(self, params):
        with self.backend.lock:
            configs = [
                {k: c[k] for k in ("EndpointConfigName", "EndpointConfigArn", "CreationTime")}
                for c in self.backend.endpoint_configs.values()
            ]
        page, token = paginate(configs, params, name_key="EndpointConfigName")
        return {"EndpointConfigs": page, **({"NextToken": token} if token else {})}

    # -- endpoints ----------------------------------------------------------------------------
    def create_endpoint(self, params):
        return self.backend.create_endpoint(params)

    def describe_endpoint(self, params):
        return self.backend.endpoint(params["EndpointName"]).describe()

    def update_endpoint(self, params):
        return self.backend.update_endpoint(params)

    def delete_endpoint(self, params):
        self.backend.delete_endpoint(params["EndpointName"])

    def list_endpoints(self, params):
        with self.backend.lock:
            endpoints = [host.describe() for host in self.backend.endpoints.values()]
        summaries = (
            {
                k: e[k]
                for k in ("EndpointName", "EndpointArn", "CreationTime", "LastModifiedTime", "EndpointStatus")
            }
            for e in endpoints
        )
        page, token = paginate(summaries, params, name_key="EndpointName", status_key="EndpointStatus")
        return {"Endpoints": page, **({"NextToken": token} if token else {})}

    # -- transform jobs -----------------------------------------------------------------------
    def create_transform_job(self, params):
        return {"TransformJobArn": self.backend.create_transform_job(params).description["TransformJobArn"]}

    def describe_transform_job(self, params):
        return self.backend.transform_job(params["TransformJobName"]).describe()

    def stop_transform_job(self, params):
        self.backend.transform_job(params["TransformJobName"]).request_stop()

    def list_transform_jobs(self, params):
        with self.backend.lock:
            jobs = [run.describe() for run in self.backend.transform_jobs.values()]
        summaries = (
            {k: d[k] for k in ("TransformJobName", "TransformJobArn", "CreationTime", "TransformEndTime",
                               "LastModifiedTime", "TransformJobStatus", "FailureReason") if k in d}
            for d in jobs
        )  # fmt: skip
        page, token = paginate(
            summaries, params, name_key="TransformJobName", status_key="TransformJobStatus"
        )
        return {"TransformJobSummaries": page, **({"NextToken": token} if token else {})}

    # -- processing jobs ----------------------------------------------------------------------
    def create_processing_job(self, params):
        return {
            "ProcessingJobArn": self.backend.create_processing_job(params).description["ProcessingJobArn"]
        }

    def describe_processing_job(self, params):
        return self.backend.processing_job(params["ProcessingJobName"]).describe()

    def stop_processing_job(self, params):
        self.backend.processing_job(params["ProcessingJobName"]).request_stop()

    def list_processing_jobs(self, params):
        with self.backend.lock:
            jobs = [run.describe() for run in self.backend.processing_jobs.values()]
        summaries = (
            {k: d[k] for k in ("ProcessingJobName", "ProcessingJobArn", "CreationTime", "ProcessingEndTime",
                               "LastModifiedTime", "ProcessingJobStatus", "FailureReason", "ExitMessage") if k in d}
            for d in jobs
        )  # fmt: skip
        page, token = paginate(
            summaries, params, name_key="ProcessingJobName", status_key="ProcessingJobStatus"
        )
        return {"ProcessingJobSummaries": page, **({"NextToken": token} if token else {})}

    # -- hyperparameter tuning jobs -----------------------------------------------------------
    def create_hyper_parameter_tuning_job(self, params):
        run = self.backend.create_tuning_job(params)
        return {"HyperParameterTuningJobArn": run.description["HyperParameterTuningJobArn"]}

    def describe_hyper_parameter_tuning_job(self, params):
        return self.backend.tuning_job(params["HyperParameterTuningJobName"]).describe()

    def stop_hyper_parameter_tuning_job(self, params):
        self.backend.tuning_job(params["HyperParameterTuningJobName"]).request_stop()

    def list_hyper_parameter_tuning_jobs(self, params):
        with self.backend.lock:
            runs = list(self.backend.tuning_jobs.values())
        summaries = []
        for run in runs:
            described = run.describe()
            config = described["HyperParameterTuningJobConfig"]
            summaries.append(
                {
                    "HyperParameterTuningJobName": run.name,
                    "HyperParameterTuningJobArn": described["HyperParameterTuningJobArn"],
                    "HyperParameterTuningJobStatus": described["HyperParameterTuningJobStatus"],
                    "Strategy": config["Strategy"],
                    "CreationTime": described["CreationTime"],
                    "LastModifiedTime": described["LastModifiedTime"],
                    "TrainingJobStatusCounters": described["TrainingJobStatusCounters"],
                    "ObjectiveStatusCounters": described["ObjectiveStatusCounters"],
                    "ResourceLimits": config["ResourceLimits"],
                    **{k: described[k] for k in ("HyperParameterTuningEndTime",) if k in described},
                }
            )
        page, token = paginate(
            summaries,
            params,
            name_key="HyperParameterTuningJobName",
            status_key="HyperParameterTuningJobStatus",
        )
        return {"HyperParameterTuningJobSummaries": page, **({"NextToken": token} if token else {})}

    def list_training_jobs_for_hyper_parameter_tuning_job(self, params):
        run = self.backend.tuning_job(params["HyperParameterTuningJobName"])
        summaries = [run.child_summary(child) for child in list(run.children)]
        if params.get("SortBy") == "FinalObjectiveMetricValue":
            scored = [s for s in summaries if "FinalHyperParameterTuningJobObjectiveMetric" in s]
            scored.sort(
                key=lambda s: s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"],
                reverse=params.get("SortOrder", "Descending") == "Descending",
            )
            params = {**params, "SortBy": "None"}
            summaries = scored
        page, token = paginate(
            summaries,
            params,
            name_key="TrainingJobName",
            status_key="TrainingJobStatus",
            sort_keys={
                "Name": "TrainingJobName",
                "CreationTime": "CreationTime",
                "Status": "TrainingJobStatus",
                "None": None,
            },
        )
        return {"TrainingJobSummaries": page, **({"NextToken": token} if token else {})}

    # -- tags ---------------------------------------------------------------------------------
    def add_tags(self, params):
        return {"Tags": self.backend.add_tags(params["ResourceArn"], params["Tags"])}

    def delete_tags(self, params):
        self.backend.delete_tags(params["ResourceArn"], params["TagKeys"])

    def list_tags(self, params):
        return {"Tags": self.backend.list_tags(params["ResourceArn"])}

    # -- model registry -----------------------------------------------------------------------
    def create_model_package_group(self, params):
        return self.backend.registry.create_group(params)

    def describe_model_package_group(self, params):
        return self.backend.registry.group(params["ModelPackageGroupName"])

    def delete_model_package_group(self, params):
        self.backend.registry.delete_group(params["ModelPackageGroupName"])

    def list_model_package_groups(self, params):
        page, token = paginate(
            self.backend.registry.group_summaries(), params, name_key="ModelPackageGroupName"
        )
        return {"ModelPackageGroupSummaryList": page, **({"NextToken": token} if token else {})}

    def create_model_package(self, params):
        return self.backend.registry.create_package(params)

    def describe_model_package(self, params):
        return self.backend.registry.package(params["ModelPackageName"])

    def update_model_package(self, params):
        return self.backend.registry.update_package(params)

    def delete_model_package(self, params):
        self.backend.registry.delete_package(params["ModelPackageName"])

    def list_model_packages(self, params):
        page, token = paginate(
            self.backend.registry.package_summaries(params), params, name_key="ModelPackageName"
        )
        return {"ModelPackageSummaryList": page, **({"NextToken": token} if token else {})}

    # -- what the SDK lists while cleaning up ---------------------------------------------------
    def list_monitoring_schedules(self, params):
        """Model Monitor schedules are not run locally, so an endpoint never has one; the SDK's
        ``Predictor.list_monitors()`` and its cleanup helpers read this empty list."""
        return {"MonitoringScheduleSummaries": []}

    def list_inference_components(self, params):
        """Endpoints here host models through production variants only, never inference components."""
        return {"InferenceComponents": []}

    def search(self, params):
        resource = params["Resource"]
        backend = self.backend
        with backend.lock:
            if resource == "TrainingJob":
                records = [run.describe() for run in backend.training_jobs.values()]
                arn_key = "TrainingJobArn"
            elif resource == "Endpoint":
                records = [host.describe() for host in backend.endpoints.values()]
                arn_key = "EndpointArn"
            elif resource == "ModelPackage":
                records = [dict(p) for p in backend.registry.packages.values()]
                arn_key = "ModelPackageArn"
            elif resource == "ModelPackageGroup":
                records = [dict(g) for g in backend.registry.groups.values()]
                arn_key = "ModelPackageGroupArn"
            else:
                raise search.unsupported(resource)
            for record in records:
                record["Tags"] = backend.list_tags(record[arn_key])
        return search.search(records, resource, params)
