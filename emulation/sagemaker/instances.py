"""What an ML instance type name says: its vCPUs, and whether it is accelerated (GPU and the like).

``ml.<family>.<size>``: the size gives the vCPUs for nearly every family (medium and large 2,
xlarge 4, Nxlarge 4N), so no table of hundreds of rows is needed.
"""

from __future__ import annotations

import os
import re

from emulation.runners import Limits

_ACCELERATED = re.compile(r"^ml\.(p\d|g\d|inf\d|trn\d|dl\d)")
_SIZE = re.compile(r"^ml\.[a-z0-9-]+\.(?:(?P<times>\d+)?(?P<size>xlarge)|(?P<named>large|medium))$")


def is_accelerated(instance_type: str) -> bool:
    return bool(_ACCELERATED.match(instance_type))


def vcpus(instance_type: str) -> int | None:
    """The instance's vCPUs, or None for a name this cannot read (serverless, metal, unknown)."""
    match = _SIZE.match(instance_type or "")
    if match is None:
        return None
    if match["named"]:
        return 2
    return 4 * int(match["times"] or 1)


def limits(instance_type: str | None) -> Limits:
    """What the instance gives its container: its vCPUs (at most this machine's cores)."""
    count = vcpus(instance_type or "")
    return Limits(cpus=min(count, os.cpu_count() or 1) if count else None)
