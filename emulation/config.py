"""The emulator's settings, defaulting to LocalStack's so existing LocalStack set-ups work unchanged."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


@dataclass(frozen=True)
class EmulatorConfig:
    host: str = "127.0.0.1"
    port: int = 4566
    account_id: str = field(default_factory=lambda: _env("SAGELOCAL_ACCOUNT_ID", "000000000000"))
    region: str = field(default_factory=lambda: _env("SAGELOCAL_REGION", "us-east-1"))
    access_key_id: str = field(default_factory=lambda: _env("SAGELOCAL_ACCESS_KEY_ID", "test"))
    secret_access_key: str = field(default_factory=lambda: _env("SAGELOCAL_SECRET_ACCESS_KEY", "test"))
    #: What runs containers: ``process`` (child processes, the default), ``docker`` (the job's own
    #: image through the Docker Engine API) or ``auto`` (docker when a daemon answers).
    runner: str = field(default_factory=lambda: _env("SAGELOCAL_RUNNER", "process"))
    #: Where job directories (the container's /opt/ml) and endpoint model copies live.
    data_dir: Path = field(
        default_factory=lambda: Path(
            _env("SAGELOCAL_DATA_DIR", os.path.join(tempfile.gettempdir(), "sagelocal"))
        )
    )
    #: Keep everything users create across restarts in ``data_dir/state`` (emulation.state). Off,
    #: the emulator starts empty each time; ``sagelocal emulator`` turns it on when it is given a
    #: data directory (``--data-dir`` or SAGELOCAL_DATA_DIR, as the compose file and image do).
    persist: bool = False
    #: How long InvokeEndpoint waits for a container's answer before ModelError (the service's 60 s).
    container_timeout_seconds: float = field(
        default_factory=lambda: float(_env("SAGELOCAL_CONTAINER_TIMEOUT_SECONDS", "60"))
    )
    #: How often each endpoint instance gets GET /ping; failing ones are replaced.
    health_check_interval_seconds: float = field(
        default_factory=lambda: float(_env("SAGELOCAL_HEALTH_CHECK_INTERVAL_SECONDS", "5"))
    )

    #: Training and transform jobs whose containers run at once (one per core); more wait in Starting.
    max_running_jobs: int = field(
        default_factory=lambda: int(_env("SAGELOCAL_MAX_RUNNING_JOBS", str(max(2, os.cpu_count() or 2))))
    )
    #: Account quotas by Service Quotas name, e.g. {"ml.p3.2xlarge for training job usage": 1};
    #: the others keep a new account's defaults (emulation/sagemaker/quotas.py).
    instance_quotas: dict[str, int] = field(
        default_factory=lambda: json.loads(_env("SAGELOCAL_INSTANCE_QUOTAS", "{}"))
    )

    #: Where built environments for users' requirements.txt are kept between runs.
    cache_dir: Path = field(
        default_factory=lambda: Path(
            _env(
                "SAGELOCAL_CACHE_DIR",
                os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "sagelocal"),
            )
        )
    )

    #: Lambda's strictness, each relaxable on its own (README, "Lambda"): a new function is Pending
    #: this long before Active (0: at once), and package files keep only their world permissions.
    lambda_pending_seconds: float = field(
        default_factory=lambda: float(_env("SAGELOCAL_LAMBDA_PENDING_SECONDS", "0.5"))
    )
    lambda_strict_permissions: bool = field(
        default_factory=lambda: _env("SAGELOCAL_LAMBDA_STRICT_PERMISSIONS", "1") != "0"
    )
    #: An execution environment idle this long is stopped, as AWS reclaims idle ones.
    lambda_idle_seconds: float = field(
        default_factory=lambda: float(_env("SAGELOCAL_LAMBDA_IDLE_SECONDS", "600"))
    )

    @property
    def role_arn(self) -> str:
        """The execution role that local runs use; any role ARN is accepted, as on a fresh account."""
        return f"arn:aws:iam::{self.account_id}:role/SageLocalExecutionRole"
