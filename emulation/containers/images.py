"""Recognise the image URIs that sagelocal can run, by repository name (never by account).

Image URIs are never pulled: ``<acct>.dkr.ecr.<region>.amazonaws.com/sagemaker-xgboost:1.7-1``
selects our XGBoost implementation, at that version's behaviour.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from emulation.containers.xgboost import SUPPORTED_VERSIONS

_IMAGE = re.compile(
    r"^(?:(?P<registry>[^/]+)/)?(?P<repository>[a-z0-9._/-]+?)(?::(?P<tag>[A-Za-z0-9._-]+))?(?:@sha256:[0-9a-f]+)?$"
)


@dataclass(frozen=True)
class ContainerImage:
    uri: str
    algorithm: str
    version: str


class UnsupportedImage(ValueError):
    pass


def resolve(uri: str) -> ContainerImage:
    match = _IMAGE.match(uri or "")
    repository = match["repository"].rsplit("/", 1)[-1] if match else ""
    tag = (match["tag"] if match else None) or "latest"
    if repository == "xgboost" and tag in ("1", "latest"):
        return ContainerImage(uri, "xgboost", "1")
    if repository == "sagemaker-xgboost":
        version = tag.split("-cpu")[0].split("-gpu")[0]
        if version in SUPPORTED_VERSIONS:
            return ContainerImage(uri, "xgboost", version)
    raise UnsupportedImage(
        f"The image '{uri}' cannot run locally: sagelocal runs the built-in XGBoost algorithm "
        f"(repository sagemaker-xgboost, versions {', '.join(SUPPORTED_VERSIONS[1:])}, or legacy xgboost:1)."
    )
