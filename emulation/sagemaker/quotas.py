"""Account quotas: how many instances of each type training jobs, endpoints and transform jobs may use.

AWS refuses a Create call whose instances would exceed the account's quota for that instance type
and usage with ``ResourceLimitExceeded``, worded as below. A new account's defaults are low, and 0
for accelerated (GPU, Inferentia, Trainium) types: the first thing many users meet on AWS, so the
emulator meets it too. Quotas are per account, so they are set for the whole emulator
(``EmulatorConfig.instance_quotas``, or ``SAGELOCAL_INSTANCE_QUOTAS='{"ml.p3.2xlarge for training
job usage": 1}'``; the quota names are those of the Service Quotas console).
"""

from __future__ import annotations

from collections.abc import Mapping

from emulation.sagemaker.exceptions import ResourceLimitExceeded
from emulation.sagemaker.instances import is_accelerated

TRAINING = "training job usage"
ENDPOINT = "endpoint usage"
TRANSFORM = "transform job usage"
#: Default instances per CPU instance type and usage, and for accelerated types.
DEFAULT_CPU_INSTANCES = 20
DEFAULT_ACCELERATED_INSTANCES = 0


def quota_name(instance_type: str, usage: str) -> str:
    return f"{instance_type} for {usage}"


class InstanceQuotas:
    def __init__(self, overrides: Mapping[str, int] | None = None):
        self.overrides = dict(overrides or {})

    def limit(self, instance_type: str, usage: str) -> int:
        name = quota_name(instance_type, usage)
        if name in self.overrides:
            return int(self.overrides[name])
        return DEFAULT_ACCELERATED_INSTANCES if is_accelerated(instance_type) else DEFAULT_CPU_INSTANCES

    def check(self, instance_type: str, usage: str, in_use: int, requested: int) -> None:
        """Refuse ``requested`` more instances when ``in_use`` plus them would pass the quota."""
        limit = self.limit(instance_type, usage)
        if in_use + requested > limit:
            raise ResourceLimitExceeded(
                f"The account-level service limit '{quota_name(instance_type, usage)}' is {limit} Instances, "
                f"with current utilization of {in_use} Instances and a request delta of {requested} Instances. "
                "Please contact AWS support to request an increase for this limit."
            )
