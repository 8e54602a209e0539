"""``sagelocal exec -- <command>``: run any program (a script, pytest, ``jupyter execute``,
papermill) against the emulator, with no change to the program.

What the program gets, all through standard mechanisms:

- ``AWS_ENDPOINT_URL``, throwaway credentials and the region (``target.local_environment``), so
  every boto3 client and SDK session it creates talks to the emulator;
- the SageMaker SDK's own defaults file (``SAGEMAKER_ADMIN_CONFIG_OVERRIDE`` naming a generated
  ``config.yaml``: default bucket, telemetry off, the local role; ``target.sdk_defaults``), so the
  Sessions the SDK creates by itself never ask the real STS endpoint. The user's own config
  (``~/.config/sagemaker/config.yaml`` or ``SAGEMAKER_USER_CONFIG_OVERRIDE``) still applies over it;
  an admin config file is replaced for the run;
- ``exec_site/`` first on ``PYTHONPATH``: its ``sitecustomize`` applies ``sdk_hooks`` (virtual
  clock for the SDK's poll sleeps, ``get_execution_role()`` answering the local role from a
  notebook-style metadata file, config validated once) in every Python interpreter the program
  starts, Jupyter kernels included, as soon as that interpreter imports the SDK;
- ``SAGELOCAL_ENDPOINT``, so sagelocal commands and the pytest plugin inside attach to the same
  emulator.

With ``--target aws`` the command runs with the environment exactly as it was (after refusing
settings that would point the SDKs away from AWS).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from workflows import sdk_hooks
from workflows.target import (
    ENDPOINT_ENV,
    TargetSettings,
    aws_session,
    default_bucket_name,
    local_environment,
    sdk_defaults,
)

SITE_DIR = Path(__file__).with_name("exec_site")


def program_environment(
    url: str, config, region: str, role_arn: str, directory: Path, virtual_clock: bool = True
) -> dict[str, str | None]:
    """Everything a program needs to run against the emulator at ``url`` unchanged (None: unset).

    Writes the SDK's config file and the role metadata file into ``directory``.
    """
    config_file = directory / "config.yaml"  # JSON is YAML: the SDK reads it with yaml.safe_load
    config_file.write_text(
        json.dumps(sdk_defaults(default_bucket_name(region, config.account_id), role_arn), indent=2)
    )
    role_metadata = sdk_hooks.write_role_metadata(str(directory / "resource-metadata.json"), role_arn)
    python_path = os.pathsep.join(p for p in (str(SITE_DIR), os.environ.get("PYTHONPATH")) if p)
    return {
        **local_environment(url, config, region),
        ENDPOINT_ENV: url,
        "SAGEMAKER_ADMIN_CONFIG_OVERRIDE": str(config_file),
        sdk_hooks.ROLE_METADATA_ENV: role_metadata,
        sdk_hooks.CLOCK_ENV: "virtual" if virtual_clock else "real",
        "PYTHONPATH": python_path,
    }


def run(
    command: list[str], settings: TargetSettings, port: int = 0, virtual_clock: bool = True, log=None
) -> int:
    """Run ``command`` on the target; return its exit status (128 + N when killed by signal N)."""
    log = log or (lambda message: print(f"sagelocal: {message}", file=sys.stderr, flush=True))
    if settings.name == "aws":
        aws_session(settings.region)
        return _run(command, dict(os.environ), log)
    from emulation.child import EmulatorProcess
    from emulation.config import EmulatorConfig

    with contextlib.ExitStack() as stack:
        config = EmulatorConfig(port=port)
        url = settings.endpoint_url
        if url is None:  # the command starts while the emulator imports: it waits in the backlog
            url = stack.enter_context(EmulatorProcess(config)).url
            log(f"emulator started at {url}")
        region = settings.region or config.region
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sagelocal-exec-")))
        changes = program_environment(
            url, config, region, settings.role_arn or config.role_arn, directory, virtual_clock
        )
        env = {k: v for k, v in {**os.environ, **changes}.items() if v is not None}
        return _run(command, env, log)


def _run(command: list[str], env: dict[str, str], log) -> int:
    try:
        child = subprocess.Popen(command, env=env)
    except FileNotFoundError:
        log(f"command not found: {command[0]}")
        return 127
    except PermissionError:
        log(f"command not executable: {command[0]}")
        return 126
    # Ctrl-C reaches the child from the terminal (same process group): let it decide, then wait.
    # A SIGTERM sent to sagelocal alone is passed on, so the emulator outlives the program.
    previous = {
        signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN),
        signal.SIGTERM: signal.signal(signal.SIGTERM, lambda signum, frame: child.send_signal(signum)),
    }
    try:
        code = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 - code if code < 0 else code
