"""IAM's behaviour beyond moto's records: a new role becomes usable only after a while."""

from emulation.iam.propagation import RolePropagation

__all__ = ["RolePropagation"]
