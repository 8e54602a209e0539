"""The SageMaker built-in XGBoost algorithm container, reimplemented as plain Python.

SageMaker runs the algorithm in a Docker image whose behaviour (hyperparameter checks, data
loading, the log lines that metric regexes scrape, the model format and the serving protocol)
changes from one image version to the next. This package reproduces that behaviour on top of
whatever xgboost is installed, so a job that fails or succeeds on AWS does the same here.

The errors live here rather than in ``training`` because the data and hyperparameter modules
raise them too, and serving maps the same content-type errors to HTTP statuses.
"""

from __future__ import annotations

#: Image tags the emulator recognises, oldest first ("1" is the legacy ``xgboost:1`` image).
SUPPORTED_VERSIONS = ("1", "0.90-1", "0.90-2", "1.0-1", "1.2-1", "1.2-2", "1.3-1", "1.5-1", "1.7-1", "3.0-5")


class AlgorithmError(Exception):
    """A failure the container reports for a training job (its str is the FailureReason text).

    Every error the container raises is an ``AlgorithmError`` so that callers need catch only one
    class; ``UserError`` narrows it down to failures the customer caused.
    """


class UserError(AlgorithmError):
    """A customer-caused failure: bad hyperparameters, channels, content types or data."""


def _version_key(version: str) -> tuple[int, ...]:
    """Order image tags; the legacy "1" image predates every "<xgboost>-<build>" tag."""
    if version == "1":
        return (-1,)
    release, _, build = version.partition("-")
    try:
        return (*(int(part) for part in release.split(".")), int(build or 0))
    except ValueError:
        raise ValueError(f"Unknown XGBoost container version: {version!r}") from None


def version_at_least(version: str, minimum: str) -> bool:
    """Whether image ``version`` is ``minimum`` or newer (e.g. ``version_at_least("1.3-1", "1.2-2")``)."""
    return _version_key(version) >= _version_key(minimum)
