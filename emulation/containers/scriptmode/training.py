"""What the training toolkit gives a user's script, and what its failures look like.

The names and values follow sagemaker-training's ``Environment.to_env_vars()`` and
``mapping.to_cmd_args()`` (a test compares them with the toolkit's own output). The toolkit is not
imported here: it reads its paths from ``/opt/ml`` (or ``SAGEMAKER_BASE_DIR``) once, at import
time, so it cannot describe several jobs from one process, and importing it (boto3 included)
costs more than the whole start of a local job. The emulator computes the environment instead and
starts the script directly, one interpreter start per job.
"""

from __future__ import annotations

import builtins
import json
import os
import shlex
from dataclasses import dataclass
from typing import Any

from emulation.containers.images import ContainerImage

#: Hyperparameters the SDK adds for the container itself; they are not the script's arguments.
SAGEMAKER_HYPERPARAMETERS = (
    "sagemaker_program", "sagemaker_submit_directory", "sagemaker_enable_cloudwatch_metrics",
    "sagemaker_region", "sagemaker_container_log_level", "sagemaker_job_name", "sagemaker_module_name",
    "_tuning_objective_metric", "sagemaker_s3_output",
)  # fmt: skip
#: The framework container's own training module, as each image sets SAGEMAKER_TRAINING_MODULE.
TRAINING_MODULES = {
    "xgboost": "sagemaker_xgboost_container.training:main",
    "sklearn": "sagemaker_sklearn_container.training:main",
    "pytorch": "sagemaker_pytorch_container.training:main",
}
#: The toolkit's error message starts at the first stderr line naming a Python exception.
_PYTHON_ERRORS = tuple(
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException)
)
MAX_FAILURE_REASON = 1024


def runs_user_script(image: ContainerImage, hyperparameters: dict[str, str]) -> bool:
    """Whether a training job runs the user's script: always on a framework image, on the XGBoost
    image when the SDK's XGBoost estimator named one (otherwise it is the built-in algorithm)."""
    return image.always_script_mode or "sagemaker_program" in hyperparameters


def decode_hyperparameters(raw: dict[str, str]) -> dict[str, Any]:
    """The SDK JSON-encodes framework hyperparameters; values that are not JSON stay strings."""
    decoded = {}
    for name, value in raw.items():
        try:
            decoded[name] = json.loads(value)
        except (TypeError, ValueError):
            decoded[name] = value
    return decoded


def _env_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))


def command_arguments(hyperparameters: dict[str, Any]) -> list[str]:
    """``--name value`` pairs in name order (``-n`` for one-letter names), as the toolkit passes them."""
    args = []
    for name in sorted(hyperparameters):
        value = hyperparameters[name]
        args.append(f"--{name}" if len(name) > 1 else f"-{name}")
        if isinstance(value, dict):
            args.append(",".join(f"{k}={v}" for k, v in sorted(value.items())))
        else:
            args.append(str(value))
    return args


@dataclass(frozen=True)
class ScriptJob:
    """A training job as its script sees it: ``root`` is the job directory's path for the script
    (``/opt/ml`` in a sandbox, the host directory otherwise)."""

    root: str
    job_name: str
    framework: str
    hyperparameters: dict[str, str]
    input_data_config: dict[str, Any]
    resource_config: dict[str, Any]
    num_cpus: int = os.cpu_count() or 1

    @property
    def _decoded(self) -> tuple[dict[str, Any], dict[str, Any]]:
        everything = decode_hyperparameters(self.hyperparameters)
        sagemaker = {
            k: v
            for k, v in everything.items()
            if k.startswith("sagemaker_") or k in SAGEMAKER_HYPERPARAMETERS
        }
        user = {k: v for k, v in everything.items() if k not in sagemaker}
        return sagemaker, user

    @property
    def entry_point(self) -> str | None:
        return self._decoded[0].get("sagemaker_program")

    @property
    def submit_directory(self) -> str | None:
        return self._decoded[0].get("sagemaker_submit_directory")

    @property
    def user_hyperparameters(self) -> dict[str, Any]:
        return self._decoded[1]

    def arguments(self) -> list[str]:
        return command_arguments(self.user_hyperparameters)

    def environment(self) -> dict[str, str]:
        """SM_* variables plus the few plain ones the toolkit exports (job name, host, region)."""
        sagemaker, hyperparameters = self._decoded
        root = self.root.rstrip("/")
        resource = self.resource_config
        host = resource["current_host"]
        group = resource.get("current_group_name", "homogeneousCluster")
        groups = {g["instance_group_name"]: g for g in resource.get("instance_groups", [])}
        entry_point = sagemaker.get("sagemaker_program")
        paths = {
            "input_dir": f"{root}/input",
            "input_config_dir": f"{root}/input/config",
            "model_dir": f"{root}/model",
            "output_dir": f"{root}/output",
            "output_data_dir": f"{root}/output/data",
            "output_intermediate_dir": f"{root}/output/intermediate",
        }
        framework_parameters = {k: v for k, v in sagemaker.items() if k not in SAGEMAKER_HYPERPARAMETERS}
        distribution_groups = framework_parameters.get("sagemaker_distribution_instance_groups", [])
        training_env = {
            "additional_framework_parameters": framework_parameters,
            "channel_input_dirs": {c: f"{root}/input/data/{c}" for c in self.input_data_config},
            "current_host": host,
            "current_instance_group": group,
            "current_instance_group_hosts": groups.get(group, {}).get("hosts", []),
            "current_instance_type": resource.get("current_instance_type", "local"),
            "distribution_hosts": [
                h for g in distribution_groups for h in groups.get(g, {}).get("hosts", [])
            ],
            "distribution_instance_groups": distribution_groups,
            "framework_module": TRAINING_MODULES.get(self.framework),
            "hosts": resource["hosts"],
            "hyperparameters": hyperparameters,
            "input_data_config": self.input_data_config,
            "instance_groups": list(groups),
            "instance_groups_dict": groups,
            "is_hetero": len(groups) > 1,
            "is_master": host == sorted(resource["hosts"])[0],
            "is_modelparallel_enabled": None,
            "is_smddpmprun_installed": False,
            "is_smddprun_installed": False,
            "job_name": self.job_name,
            "log_level": sagemaker.get("sagemaker_container_log_level", 20),
            "master_hostname": sorted(resource["hosts"])[0],
            "module_dir": str(sagemaker.get("sagemaker_submit_directory", f"{root}/code")),
            "module_name": str(entry_point).removesuffix(".py") if entry_point else "None",
            "network_interface_name": resource.get("network_interface_name", "eth0"),
            "num_cpus": self.num_cpus,
            "num_gpus": 0,
            "num_neurons": 0,
            "resource_config": resource,
            "topology": resource.get("topology", []),
            "user_entry_point": entry_point,
            **paths,
        }
        variables = {
            "hosts": training_env["hosts"],
            "network_interface_name": training_env["network_interface_name"],
            "hps": hyperparameters,
            "user_entry_point": entry_point,
            "framework_params": framework_parameters,
            "resource_config": resource,
            "input_data_config": self.input_data_config,
            "channels": sorted(self.input_data_config),
            "training_env": training_env,
            "user_args": self.arguments(),
            **{
                k: training_env[k]
                for k in (
                    "current_host",
                    "current_instance_type",
                    "current_instance_group",
                    "current_instance_group_hosts",
                    "instance_groups",
                    "instance_groups_dict",
                    "distribution_instance_groups",
                    "is_hetero",
                    "module_name",
                    "log_level",
                    "framework_module",
                    "num_cpus",
                    "num_gpus",
                    "num_neurons",
                    "module_dir",
                )
            },  # fmt: skip
            **paths,
        }
        environment = {f"SM_{k.upper()}": _env_value(v) for k, v in variables.items()}
        environment["SM_FRAMEWORK_MODULE"] = training_env["framework_module"] or ""
        environment.update(
            {f"SM_CHANNEL_{c.upper()}": p for c, p in training_env["channel_input_dirs"].items()}
        )
        environment.update({f"SM_HP_{k.upper()}": _env_value(v) for k, v in hyperparameters.items()})
        environment.update(
            TRAINING_JOB_NAME=self.job_name,
            SAGEMAKER_JOB_NAME=str(sagemaker.get("sagemaker_job_name", "")),
            SAGEMAKER_REGION=str(sagemaker.get("sagemaker_region", "")),
            CURRENT_HOST=host,
            SAGEMAKER_TRAINING_MODULE=training_env["framework_module"] or "",
        )
        return environment


def user_script_command(interpreter: str, entry_point: str, arguments: list[str]) -> list[str]:
    """A Python program runs with the environment's interpreter, anything else as a command."""
    if entry_point.endswith(".py"):
        return [interpreter, entry_point, *arguments]
    return ["/bin/sh", "-c", shlex.join([f"./{entry_point}", *arguments])]


def error_message(stderr_lines: list[str]) -> str:
    """The toolkit's ErrorMessage: stderr from the first line naming a Python exception on
    (the end of the traceback), duplicates dropped."""
    captured: list[str] = []
    for line in stderr_lines:
        if not captured and not any(name in line for name in _PYTHON_ERRORS):
            continue
        text = line.strip(" :\n")
        if text not in captured:
            captured.append(text)
    return "\n".join(captured)


def failure_reason(kind: str, exit_code: int, message: str, command: list[str] | str) -> str:
    """``AlgorithmError: ExecuteUserScriptError: ...`` as the service reports a script's failure;
    a message too long for FailureReason keeps its end, where the exception's own line is."""
    shown = command if isinstance(command, str) else " ".join(command)
    extra = '\nExtraInfo "OutOfMemory: Process killed by SIGKILL (signal 9)"' if exit_code == 137 else ""
    head = f'AlgorithmError: {kind}:\nExitCode {exit_code}\nErrorMessage "'
    tail = f'"{extra}\nCommand "{shown}", exit code: {exit_code}'
    room = max(0, MAX_FAILURE_REASON - len(head) - len(tail))
    if len(message) > room:
        message = "..." + message[len(message) - room + 3 :] if room > 3 else ""
    return (head + message + tail)[:MAX_FAILURE_REASON]
