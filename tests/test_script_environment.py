"""The script-mode contract, checked against AWS's own toolkits rather than against our reading of
them: the SM_* environment and arguments against sagemaker-training's, the FailureReason's shape
against its error classes; requirements environments built once and reused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from emulation.containers.environments import EnvironmentCache, RequirementsError, requirement_lines
from emulation.containers.scriptmode import training
from emulation.sagemaker.training import resource_config

HYPERPARAMETERS = {
    "sagemaker_program": '"train.py"',
    "sagemaker_submit_directory": '"s3://bucket/job/source/sourcedir.tar.gz"',
    "sagemaker_region": '"us-east-1"',
    "sagemaker_container_log_level": "20",
    "sagemaker_job_name": '"job-1"',
    "sagemaker_estimator_class_name": '"SKLearn"',
    "_tuning_objective_metric": "validation:rmse",
    "max-depth": "5",
    "eta": "0.2",
    "objective": "reg:squarederror",
    "flag": "true",
    "layers": "[1, 2]",
    "n": "3",
    "nested": '{"b": 2, "a": 1}',
}
CHANNELS = {
    "train": {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None",
              "ContentType": "text/csv"},
    "validation": {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"},
}  # fmt: skip


def test_environment_and_arguments_match_the_training_toolkit(tmp_path):
    pytest.importorskip("sagemaker_training")
    config = tmp_path / "input" / "config"
    config.mkdir(parents=True)
    resources = resource_config({"InstanceType": "ml.m5.xlarge"})
    for name, content in (("hyperparameters.json", HYPERPARAMETERS), ("inputdataconfig.json", CHANNELS),
                          ("resourceconfig.json", resources)):  # fmt: skip
        (config / name).write_text(json.dumps(content))
    # The toolkit reads its paths once at import, from SAGEMAKER_BASE_DIR: a process of its own.
    oracle = textwrap.dedent("""
        import json
        from sagemaker_training import environment, mapping
        env = environment.Environment()
        print(json.dumps({"env": env.to_env_vars(), "args": mapping.to_cmd_args(env.hyperparameters)}))
    """)
    result = subprocess.run(
        [sys.executable, "-c", oracle],
        env={**os.environ, "SAGEMAKER_BASE_DIR": str(tmp_path), "TRAINING_JOB_NAME": "job-1",
             "SAGEMAKER_TRAINING_MODULE": training.TRAINING_MODULES["sklearn"]},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    expected = json.loads(result.stdout.strip().splitlines()[-1])
    job = training.ScriptJob(str(tmp_path), "job-1", "sklearn", HYPERPARAMETERS, CHANNELS, resources)
    ours = job.environment()
    assert {k: v for k, v in ours.items() if k.startswith("SM_")} == expected["env"]
    assert job.arguments() == expected["args"]


def test_the_failure_reason_keeps_the_end_of_the_traceback():
    stderr = [
        "Traceback (most recent call last):",
        '  File "train.py", line 9, in <module>',
        "    check(alpha)",
        '  File "train.py", line 5, in check',
        '    raise ValueError(f"alpha must be positive, got {alpha}")',
        "ValueError: alpha must be positive, got -1.0",
    ]
    message = training.error_message(stderr)
    assert message.splitlines() == [
        line.strip() for line in stderr[4:]
    ]  # from the first line naming an exception
    reason = training.failure_reason("ExecuteUserScriptError", 1, message, ["/usr/bin/python3", "train.py"])
    assert reason == (
        'AlgorithmError: ExecuteUserScriptError:\nExitCode 1\nErrorMessage "raise ValueError(f"alpha must be '
        'positive, got {alpha}")\nValueError: alpha must be positive, got -1.0"\nCommand "/usr/bin/python3 '
        'train.py", exit code: 1'
    )
    long = training.failure_reason(
        "ExecuteUserScriptError", 1, "x" * 5000 + "\nKeyError: 'the end'", "python"
    )
    assert len(long) == 1024 and long.startswith("AlgorithmError: ExecuteUserScriptError:")
    assert "KeyError: 'the end'\"" in long


def test_requirement_lines_ignore_comments_and_blanks():
    text = "# pinned\ninflection==0.5.1  # small\n\n  six \n"
    assert requirement_lines(text) == ["inflection==0.5.1", "six"]


def test_an_environment_is_built_once_and_reused(tmp_path):
    cache = EnvironmentCache(tmp_path / "environments")
    logged: list[str] = []
    python = cache.interpreter(["inflection==0.5.1"], log=logged.append)
    assert any("inflection" in line for line in logged)
    imported = subprocess.run(
        [str(python), "-c", "import inflection, sklearn; print(inflection.pluralize('box'))"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert imported.stdout.strip() == "boxes"  # the package, over the base packages (sklearn)
    again: list[str] = []
    assert cache.interpreter(["inflection==0.5.1"], log=again.append) == python
    assert again == []  # nothing installed the second time
    assert [p.name for p in (tmp_path / "environments").iterdir()] == [python.parent.parent.name]
    # the emulator's own Python is untouched
    base = subprocess.run([sys.executable, "-c", "import inflection"], capture_output=True)
    assert base.returncode != 0


def test_a_package_that_does_not_exist_fails_and_caches_nothing(tmp_path):
    cache = EnvironmentCache(tmp_path / "environments")
    with pytest.raises(RequirementsError) as raised:
        cache.interpreter(["sagelocal-no-such-package-x7q==1.0"])
    assert raised.value.exit_code != 0
    assert any("sagelocal-no-such-package-x7q" in line for line in raised.value.output)
    assert list((tmp_path / "environments").iterdir()) == []
