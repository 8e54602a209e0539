"""sagelocal's local AWS: one HTTP port that speaks the AWS wire protocols.

moto serves what it really implements (S3, IAM, STS, CloudWatch Logs and the Lambda and
API Gateway control planes); the folders beside this file hold what moto only pretends to do:
SageMaker (control plane, runtime, jobs in child processes), Lambda invocation and API
Gateway's execute-api data plane.
"""

from emulation.config import EmulatorConfig
from emulation.server import Emulator

__all__ = ["Emulator", "EmulatorConfig"]
