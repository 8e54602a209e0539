"""The emulator's settings, defaulting to LocalStack's so existing LocalStack set-ups work unchanged."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if not value else value.strip().lower() not in ("0", "false", "no", "off")


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

    #: An execution environment idle this long is stopped, as AWS reclaims idle ones.
    lambda_idle_seconds: float = field(
        default_factory=lambda: float(_env("SAGELOCAL_LAMBDA_IDLE_SECONDS", "600"))
    )

    # -- strictness: where AWS refuses what a laptop would allow (each one relaxable) -------------
    #: A new Lambda function is Pending this long before Active (0: at once); invocations meanwhile
    #: fail as on AWS (README, "Lambda").
    lambda_pending_seconds: float = field(
        default_factory=lambda: float(_env("SAGELOCAL_LAMBDA_PENDING_SECONDS", "0.5"))
    )
    #: Lambda package files keep only their world permissions (the sandbox runs as another user).
    lambda_strict_permissions: bool = field(
        default_factory=lambda: _flag("SAGELOCAL_LAMBDA_STRICT_PERMISSIONS", True)
    )
    #: A role created through IAM cannot be assumed for this long (IAM's eventual consistency);
    #: 0 turns it off.
    role_propagation_seconds: float = field(
        default_factory=lambda: float(_env("SAGELOCAL_ROLE_PROPAGATION_SECONDS", "2"))
    )
    #: DeleteEndpoint of an endpoint still Creating or Updating is refused, as SageMaker does.
    refuse_deleting_endpoints_in_progress: bool = field(
        default_factory=lambda: _flag("SAGELOCAL_STRICT_ENDPOINT_DELETE", True)
    )

    @property
    def role_arn(self) -> str:
        """The execution role that local runs use; any role ARN is accepted, as on a fresh account."""
        return f"arn:aws:iam::{self.account_id}:role/SageLocalExecutionRole"
