"""The SageMaker Model Registry: model package groups and the versioned model packages in them.

A registered model is what CI/CD pipelines hand from training to deployment: ``Estimator.register``
creates a version in a group, someone approves it, and ``ModelPackage(...).deploy()`` creates a
model whose container names the package instead of an image. The package's inference container
(image and model data) is what then runs, so CreateModel resolves it here.
"""

from __future__ import annotations

import copy
from typing import Any

from emulation.protocol import AwsError, ValidationError
from emulation.sagemaker.state import utcnow

#: What the registry records on a version; a new version starts pending unless the caller decides.
DEFAULT_APPROVAL = "PendingManualApproval"
_SUMMARY_KEYS = (
    "ModelPackageName",
    "ModelPackageGroupName",
    "ModelPackageVersion",
    "ModelPackageArn",
    "ModelPackageDescription",
    "CreationTime",
    "ModelPackageStatus",
    "ModelApprovalStatus",
)
_COPIED_ON_CREATE = (
    "ModelPackageDescription",
    "InferenceSpecification",
    "ValidationSpecification",
    "SourceAlgorithmSpecification",
    "MetadataProperties",
    "ModelMetrics",
    "Domain",
    "Task",
    "SamplePayloadUrl",
    "CustomerMetadataProperties",
    "DriftCheckBaselines",
    "AdditionalInferenceSpecifications",
    "SkipModelValidation",
    "SourceUri",
)


class Conflict(AwsError):
    def __init__(self, message: str):
        super().__init__("ConflictException", message)


class ModelRegistry:
    """Groups and packages of one account and region, guarded by the SageMaker backend's lock."""

    def __init__(self, backend):
        self.backend = backend
        self.groups: dict[str, dict[str, Any]] = {}
        #: package ARN -> its description; versioned ones are also reachable by group + version.
        self.packages: dict[str, dict[str, Any]] = {}

    def _created_by(self) -> dict[str, Any]:
        return {"UserProfileName": "", "DomainId": ""}

    # -- groups --------------------------------------------------------------------------------
    def create_group(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["ModelPackageGroupName"]
        arn = self.backend.arn("model-package-group", name)
        with self.backend.lock:
            if name in self.groups:
                raise ValidationError(f"Model Package Group already exists: {arn}")
            self.groups[name] = {
                "ModelPackageGroupName": name,
                "ModelPackageGroupArn": arn,
                **{k: request[k] for k in ("ModelPackageGroupDescription",) if k in request},
                "CreationTime": utcnow(),
                "CreatedBy": self._created_by(),
                "ModelPackageGroupStatus": "Completed",
            }
            self.backend.remember_tags(arn, request.get("Tags"))
        return {"ModelPackageGroupArn": arn}

    def group(self, name_or_arn: str) -> dict[str, Any]:
        name = name_or_arn.rsplit("/", 1)[-1] if name_or_arn.startswith("arn:") else name_or_arn
        with self.backend.lock:
            group = self.groups.get(name)
        if group is None:
            raise ValidationError(
                f"ModelPackageGroup {self.backend.arn('model-package-group', name)} does not exist."
            )
        return group

    def delete_group(self, name: str) -> None:
        group = self.group(name)
        with self.backend.lock:
            if any(
                p.get("ModelPackageGroupName") == group["ModelPackageGroupName"]
                for p in self.packages.values()
            ):
                raise Conflict(
                    f"Model Package Group {group['ModelPackageGroupArn']} cannot be deleted because it "
                    "contains model packages. Delete the model packages first."
                )
            self.groups.pop(group["ModelPackageGroupName"], None)

    def group_summaries(self) -> list[dict[str, Any]]:
        with self.backend.lock:
            return [
                {
                    k: g[k]
                    for k in (
                        "ModelPackageGroupName",
                        "ModelPackageGroupArn",
                        "ModelPackageGroupDescription",
                        "CreationTime",
                        "ModelPackageGroupStatus",
                    )
                    if k in g
                }
                for g in self.groups.values()
            ]

    # -- packages ------------------------------------------------------------------------------
    def create_package(self, request: dict[str, Any]) -> dict[str, Any]:
        group_name = request.get("ModelPackageGroupName")
        if bool(group_name) == bool(request.get("ModelPackageName")):
            raise ValidationError(
                "Exactly one of ModelPackageName (an unversioned package) or ModelPackageGroupName "
                "(a versioned package) must be specified."
            )
        if "InferenceSpecification" not in request and "SourceAlgorithmSpecification" not in request:
            raise ValidationError("InferenceSpecification is required to create a model package.")
        for container in request.get("InferenceSpecification", {}).get("Containers", []):
            self.backend.resolve_image(container["Image"])
        now = utcnow()
        with self.backend.lock:
            if group_name:
                group = self.group(group_name)
                version = 1 + sum(
                    1 for p in self.packages.values() if p.get("ModelPackageGroupName") == group_name
                )
                name = group["ModelPackageGroupName"]
                arn = f"{self.backend.arn('model-package', name)}/{version}"
                versioned = {
                    "ModelPackageGroupName": name,
                    "ModelPackageVersion": version,
                    "ModelApprovalStatus": request.get("ModelApprovalStatus", DEFAULT_APPROVAL),
                }
            else:
                name = request["ModelPackageName"]
                arn = self.backend.arn("model-package", name)
                if arn in self.packages:
                    raise Conflict(f"Model Package already exists: {arn}")
                versioned = {}
            self.packages[arn] = {
                "ModelPackageName": name,
                **versioned,
                "ModelPackageArn": arn,
                **{k: copy.deepcopy(request[k]) for k in _COPIED_ON_CREATE if k in request},
                "CreationTime": now,
                "LastModifiedTime": now,
                "ModelPackageStatus": "Completed",
                "ModelPackageStatusDetails": {"ValidationStatuses": [], "ImageScanStatuses": []},
                "CertifyForMarketplace": request.get("CertifyForMarketplace", False),
                "CreatedBy": self._created_by(),
            }
            self.backend.remember_tags(arn, request.get("Tags"))
        return {"ModelPackageArn": arn}

    def package(self, name_or_arn: str) -> dict[str, Any]:
        """A package by ARN (versioned or not) or by an unversioned package's name."""
        arn = (
            name_or_arn if name_or_arn.startswith("arn:") else self.backend.arn("model-package", name_or_arn)
        )
        with self.backend.lock:
            package = self.packages.get(arn) or self.packages.get(arn.lower())
        if package is None:
            raise ValidationError(f"ModelPackage {arn} does not exist.")
        return package

    def update_package(self, request: dict[str, Any]) -> dict[str, Any]:
        package = self.package(request["ModelPackageArn"])
        with self.backend.lock:
            if "ModelApprovalStatus" in request:
                if "ModelPackageVersion" not in package:
                    raise ValidationError("ModelApprovalStatus can only be set on a versioned model package.")
                package["ModelApprovalStatus"] = request["ModelApprovalStatus"]
            if "ApprovalDescription" in request:
                package["ApprovalDescription"] = request["ApprovalDescription"]
            if "CustomerMetadataProperties" in request:
                package.setdefault("CustomerMetadataProperties", {}).update(
                    request["CustomerMetadataProperties"]
                )
            for key in request.get("CustomerMetadataPropertiesToRemove", []):
                package.get("CustomerMetadataProperties", {}).pop(key, None)
            if "InferenceSpecification" in request:
                package["InferenceSpecification"] = copy.deepcopy(request["InferenceSpecification"])
            package["LastModifiedTime"] = utcnow()
            package["LastModifiedBy"] = self._created_by()
        return {"ModelPackageArn": package["ModelPackageArn"]}

    def delete_package(self, name_or_arn: str) -> None:
        package = self.package(name_or_arn)
        with self.backend.lock:
            self.packages.pop(package["ModelPackageArn"], None)

    def package_summaries(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        wanted_type = params.get("ModelPackageType", "Both")
        with self.backend.lock:
            rows = []
            for package in self.packages.values():
                versioned = "ModelPackageVersion" in package
                if wanted_type == "Versioned" and not versioned or wanted_type == "Unversioned" and versioned:
                    continue
                if params.get("ModelPackageGroupName") not in (None, package.get("ModelPackageGroupName")):
                    continue
                if params.get("ModelApprovalStatus") not in (None, package.get("ModelApprovalStatus")):
                    continue
                rows.append({k: package[k] for k in _SUMMARY_KEYS if k in package})
            return rows

    def inference_container(self, container: dict[str, Any]) -> dict[str, Any]:
        """A model container that names a package, with the package's image and model data filled in.

        The model's own Environment wins over the package's, as when SageMaker starts the container.
        """
        package = self.package(container["ModelPackageName"])
        containers = package.get("InferenceSpecification", {}).get("Containers") or []
        if not containers:
            raise ValidationError(
                f"ModelPackage {package['ModelPackageArn']} has no inference container to deploy."
            )
        resolved = {**copy.deepcopy(containers[0]), **container}
        resolved["Environment"] = {
            **(containers[0].get("Environment") or {}),
            **(container.get("Environment") or {}),
        }
        return resolved
