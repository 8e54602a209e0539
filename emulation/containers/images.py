"""Recognise the image URIs that sagelocal can run, by repository name (never by account).

Image URIs are never pulled: ``<acct>.dkr.ecr.<region>.amazonaws.com/sagemaker-xgboost:1.7-1``
selects our XGBoost implementation, at that version's behaviour. The framework images
(Scikit-learn, PyTorch, and XGBoost given an entry point) run the user's own script on this
machine's Python, with the framework versions installed here (see ``FRAMEWORK_PACKAGES``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from emulation.containers.xgboost import SUPPORTED_VERSIONS

_IMAGE = re.compile(
    r"^(?:(?P<registry>[^/]+)/)?(?P<repository>[a-z0-9._/-]+?)(?::(?P<tag>[A-Za-z0-9._-]+))?(?:@sha256:[0-9a-f]+)?$"
)
#: Framework image repositories -> the framework whose script-mode container they are.
FRAMEWORK_REPOSITORIES = {
    "sagemaker-scikit-learn": "sklearn",
    "pytorch-training": "pytorch",
    "pytorch-inference": "pytorch",
}
#: The package each framework's script imports; its locally installed version is the one that runs.
FRAMEWORK_PACKAGES = {"xgboost": "xgboost", "sklearn": "scikit-learn", "pytorch": "torch"}


@dataclass(frozen=True)
class ContainerImage:
    uri: str
    #: xgboost, sklearn or pytorch; custom for any other image (the Docker runner runs it as it is)
    framework: str
    version: str

    @property
    def always_script_mode(self) -> bool:
        """Framework images always run a user script; the XGBoost image only when given one; a
        bring-your-own image (framework ``custom``, Docker runner only) runs its own ``train``."""
        return self.framework not in ("xgboost", "custom")


class UnsupportedImage(ValueError):
    pass


def resolve(uri: str, *, any_image: bool = False) -> ContainerImage:
    """The implementation ``uri`` names. ``any_image``: a runner that runs images themselves (Docker)
    accepts every other URI as a bring-your-own image (algorithm ``custom``)."""
    match = _IMAGE.match(uri or "")
    repository = match["repository"].rsplit("/", 1)[-1] if match else ""
    tag = (match["tag"] if match else None) or "latest"
    if repository == "xgboost" and tag in ("1", "latest"):
        return ContainerImage(uri, "xgboost", "1")
    if repository == "sagemaker-xgboost":
        version = tag.split("-cpu")[0].split("-gpu")[0]
        if version in SUPPORTED_VERSIONS:
            return ContainerImage(uri, "xgboost", version)
    if repository in FRAMEWORK_REPOSITORIES:
        return ContainerImage(uri, FRAMEWORK_REPOSITORIES[repository], tag.split("-")[0])
    if any_image and match:
        return ContainerImage(uri, "custom", tag)
    raise UnsupportedImage(
        f"The image '{uri}' cannot run locally: sagelocal runs the built-in XGBoost algorithm "
        f"(repository sagemaker-xgboost, versions {', '.join(SUPPORTED_VERSIONS[1:])}, or legacy xgboost:1) "
        "and script mode on the framework images sagemaker-xgboost, sagemaker-scikit-learn, "
        "pytorch-training and pytorch-inference."
    )
