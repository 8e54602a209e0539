"""What each built-in XGBoost image version ships: one table, the only place versions are decided.

``image`` records what AWS's image pins (read from sagemaker-xgboost-container's Dockerfiles and
requirements.txt at each version's branch). ``packages`` is what sagelocal installs to play that
image, on the Python it has (3.10+): the image's own XGBoost release, always exactly; numpy and
scipy at the image's pin where that release installs on a current Python, else the oldest release
that does (the images of 2019-2022 ran Python 3.6-3.9). The Docker images that
``sagelocal build-image`` makes and the isolated environments of the process runner are both built
from ``packages``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class XGBoostRuntime:
    version: str  # the image tag's version, e.g. "1.7-1"
    xgboost: str  # the XGBoost release the image ships
    image: dict[str, str]  # what the real image pins (python, numpy, scipy, pandas)
    packages: tuple[str, ...] = field(default=())  # pip requirements that play it here

    @property
    def repository(self) -> str:
        return "sagemaker-xgboost"


def _runtime(version: str, xgboost: str, image: dict[str, str], numpy: str, scipy: str) -> XGBoostRuntime:
    return XGBoostRuntime(
        version, xgboost, image, (f"xgboost=={xgboost}", f"numpy=={numpy}", f"scipy=={scipy}")
    )


RUNTIMES: dict[str, XGBoostRuntime] = {
    runtime.version: runtime
    for runtime in (
        _runtime("0.90-1", "0.90", {"python": "3.7.10", "numpy": "1.18.1", "scipy": "1.2.2", "pandas": "0.25.3"}, "1.23.5", "1.9.3"),
        _runtime("0.90-2", "0.90", {"python": "3.6.13", "numpy": "1.18.4", "scipy": "1.2.2", "pandas": "1.0.4"}, "1.23.5", "1.9.3"),
        _runtime("1.0-1", "1.0.0", {"python": "3.7.10", "scipy": "1.2.2", "pandas": "1.1.3"}, "1.23.5", "1.9.3"),
        _runtime("1.2-1", "1.2.0", {"python": "3.7.10", "numpy": "1.21.6", "scipy": "1.5.3", "pandas": "1.1.3"}, "1.23.5", "1.9.3"),
        _runtime("1.2-2", "1.2.0", {"python": "3.7.10", "numpy": "1.21.6", "scipy": "1.5.3", "pandas": "1.1.3"}, "1.23.5", "1.9.3"),
        _runtime("1.3-1", "1.3.3", {"python": "3.7.10", "numpy": "1.21.6", "scipy": "1.6.2", "pandas": "1.2.4"}, "1.23.5", "1.9.3"),
        _runtime("1.5-1", "1.5.2", {"python": "3.8.13", "numpy": "1.24.4", "scipy": "1.8.0", "pandas": "1.5.3"}, "1.24.4", "1.9.3"),
        _runtime("1.7-1", "1.7.4", {"python": "3.9", "numpy": "1.24.1", "scipy": "1.8.0", "pandas": "1.2.4"}, "1.24.1", "1.9.3"),
        _runtime("3.0-5", "3.0.5", {"python": "3.10", "numpy": "2.1.0", "scipy": "1.15.0", "pandas": "2.2.3"}, "2.1.0", "1.15.0"),
    )
}  # fmt: skip


def runtime_for(version: str) -> XGBoostRuntime:
    try:
        return RUNTIMES[version]
    except KeyError:
        raise KeyError(f"no runtime for sagemaker-xgboost:{version}; known: {', '.join(RUNTIMES)}") from None
