"""sagelocal's local AWS: one HTTP port that speaks the AWS wire protocols.

moto serves what it really implements (S3, IAM, STS, CloudWatch Logs and the Lambda and
API Gateway control planes); the folders beside this file hold what moto only pretends to do:
SageMaker (control plane, runtime, jobs in child processes), Lambda invocation and API
Gateway's execute-api data plane.
"""

from emulation.config import EmulatorConfig

__all__ = ["Emulator", "EmulatorConfig"]


def __getattr__(name: str):
    # Imported on first use: container processes import parts of this package and need none of
    # the server's (moto, werkzeug) weight.
    if name == "Emulator":
        from emulation.server import Emulator

        return Emulator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
