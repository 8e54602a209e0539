"""Lambda as strict as AWS: the sandbox, world-readable packages, Pending before Active, workers released.

Each strictness has a test that shows it catching its mistake, and one that shows its setting
relaxing it (an emulator of its own, with ``lambda_pending_seconds=0``, relaxed permissions and a
short idle limit).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import boto3
import botocore.exceptions
import pytest
from conftest import LAMBDA_ROLE_ARN as ROLE_ARN
from conftest import lambda_package as package
from test_lambda import invoke

from emulation import Emulator, EmulatorConfig, sandbox

needs_sandbox = pytest.mark.skipif(
    not sandbox.available(), reason=f"functions run without a sandbox here: {sandbox.unavailable_reason()}"
)

PROBE = """
import json, os

def handler(event, context):
    results = {}
    for what, action in event["try"].items():
        try:
            results[what] = ["ok", eval(action)]
        except Exception as error:
            results[what] = [type(error).__name__, str(error)]
    return results
"""


def attempt(lam, name: str, **actions: str) -> dict:
    answer, payload = invoke(lam, name, {"try": actions})
    assert "FunctionError" not in answer, payload
    return payload


def test_function_environment_is_its_own(lam, make_function, in_process_emulator, monkeypatch):
    monkeypatch.setenv("SAGELOCAL_PROBE_SECRET", "emulator-only")
    name = make_function(PROBE)
    result = attempt(
        lam, name, secret="os.environ.get('SAGELOCAL_PROBE_SECRET')", home="os.environ.get('HOME')"
    )
    assert result == {"secret": ["ok", None], "home": ["ok", None]}


@needs_sandbox
def test_function_cannot_read_the_emulators_environment(lam, make_function, in_process_emulator):
    name = make_function(PROBE)
    result = attempt(lam, name, environ=f"open('/proc/{os.getpid()}/environ', 'rb').read().decode()[:20]")
    assert result["environ"][0] == "FileNotFoundError"


@needs_sandbox
def test_function_cannot_reach_other_functions_or_the_emulators_files(
    lam, make_function, in_process_emulator
):
    data_dir = Path(in_process_emulator.config.data_dir).resolve()
    other = make_function({"app.py": PROBE, "secret.txt": "the other function's"})
    attempt(lam, other, warm="1")  # its package is unpacked now, under the emulator's data directory
    (unpacked,) = {p.parent for p in (data_dir / "lambda" / "tasks").glob("*/secret.txt")}
    name = make_function(PROBE)
    result = attempt(
        lam,
        name,
        other_package=f"open({str(unpacked / 'secret.txt')!r}).read()",
        data_dir=f"os.listdir({str(data_dir)!r})",
        own_package="sorted(os.listdir('/var/task'))",
    )
    assert result["other_package"][0] == "FileNotFoundError"
    assert result["data_dir"][0] == "FileNotFoundError"
    assert result["own_package"] == ["ok", ["app.py"]]


@needs_sandbox
def test_function_writes_only_its_own_tmp(lam, make_function, in_process_emulator):
    first, second = make_function(PROBE), make_function(PROBE)
    result = attempt(
        lam,
        first,
        tmp="open('/tmp/mine', 'w').write('kept')",
        package="open('/var/task/app.py', 'a').write('# changed')",
        root="open('/written', 'w').write('x')",
        usr="open('/usr/written', 'w').write('x')",
        data_dir=f"open({str(Path(in_process_emulator.config.data_dir) / 'written')!r}, 'w').write('x')",
    )
    assert result["tmp"] == ["ok", 4]
    for place in ("package", "root", "usr", "data_dir"):
        assert result[place][0] in ("OSError", "PermissionError", "FileNotFoundError"), (place, result[place])
    assert not (Path(in_process_emulator.config.data_dir) / "written").exists()
    # /tmp lives as long as the environment (warm calls see it), and no other function sees it.
    assert attempt(lam, first, tmp="open('/tmp/mine').read()")["tmp"] == ["ok", "kept"]
    assert attempt(lam, second, tmp="os.path.exists('/tmp/mine')")["tmp"] == ["ok", False]


@needs_sandbox
def test_function_runs_as_aws_sandbox_user(lam, make_function):
    name = make_function(PROBE)
    result = attempt(
        lam,
        name,
        ids="[os.getuid(), os.getgid()]",
        user="__import__('pwd').getpwuid(os.getuid()).pw_name",
        home="os.path.expanduser('~')",
    )
    assert result == {
        "ids": ["ok", [993, 990]],
        "user": ["ok", "sbx_user1051"],
        "home": ["ok", "/home/sbx_user1051"],
    }


# -- strictness: world-readable packages ---------------------------------------------------------------
READER = """
def handler(event, context):
    with open(event["file"]) as handle:
        return handle.read()
"""


def test_a_file_the_package_does_not_make_world_readable_fails_as_on_lambda(lam, make_function):
    name = make_function(
        {"app.py": READER, "public.json": "{}", "private.json": "{}"},
        modes={"private.json": 0o600},
    )
    answer, payload = invoke(lam, name, {"file": "public.json"})
    assert payload == "{}"
    answer, payload = invoke(lam, name, {"file": "private.json"})
    assert answer["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "PermissionError"
    assert payload["errorMessage"] == "[Errno 13] Permission denied: 'private.json'"


def test_a_handler_module_that_is_not_world_readable_fails_at_init(lam, make_function):
    name = make_function(READER, modes={"app.py": 0o600})
    answer, payload = invoke(lam, name)
    assert answer["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "PermissionError"
    assert payload["errorMessage"].startswith("[Errno 13] Permission denied: ")
    assert payload["errorMessage"].endswith("/app.py'")
    assert payload["requestId"] == ""


# -- strictness: Pending before Active ---------------------------------------------------------------
def test_a_new_function_is_pending_and_invoking_it_then_fails_as_on_aws(lam, request):
    name = f"lt-pending-{int(time.time() * 1000)}"
    created = lam.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=ROLE_ARN,
        Handler="app.handler",
        Code={"ZipFile": package({"app.py": READER})},
    )
    request.addfinalizer(lambda: lam.delete_function(FunctionName=name))
    assert (created["State"], created["StateReason"], created["StateReasonCode"]) == (
        "Pending",
        "The function is being created.",
        "Creating",
    )
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        lam.invoke(FunctionName=name, Payload=b"{}")
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    assert raised.value.response["Error"] == {
        "Code": "ResourceConflictException",
        "Message": "The operation cannot be performed at this time. "
        "The function is currently in the following state: Pending",
    }
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 0.1})
    assert lam.get_function(FunctionName=name)["Configuration"]["State"] == "Active"
    assert lam.invoke(FunctionName=name, Payload=json.dumps({"file": "app.py"}))["StatusCode"] == 200


# -- the relaxed settings, and reclaiming idle workers -----------------------------------------------
@pytest.fixture(scope="module")
def relaxed(tmp_path_factory):
    """An emulator with every Lambda strictness (and IAM's propagation delay) relaxed and a one-second idle limit."""
    config = EmulatorConfig(
        port=0,
        data_dir=tmp_path_factory.mktemp("relaxed"),
        lambda_pending_seconds=0,
        lambda_strict_permissions=False,
        role_propagation_seconds=0,
        lambda_idle_seconds=1,
    )
    with Emulator(config) as emulator:
        session = boto3.Session(
            aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
        )
        client = session.client("lambda", endpoint_url=emulator.url)
        try:
            session.client("iam", endpoint_url=emulator.url).create_role(
                RoleName="lambda-role", AssumeRolePolicyDocument="{}"
            )
        except botocore.exceptions.ClientError:
            pass  # moto's state is shared with the session's emulator, which may have made it
        yield emulator, client


def create_now(client, name: str, files: dict[str, str], modes=None) -> None:
    client.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=ROLE_ARN,
        Handler="app.handler",
        Code={"ZipFile": package(files, modes)},
    )


def test_relaxed_settings_run_what_the_strict_ones_refuse(relaxed):
    _, client = relaxed
    name = f"lt-relaxed-{int(time.time() * 1000)}"
    create_now(client, name, {"app.py": READER, "private.json": '"mine"'}, modes={"private.json": 0o600})
    try:
        assert client.get_function(FunctionName=name)["Configuration"]["State"] == "Active"
        answer, payload = invoke(client, name, {"file": "private.json"})  # at once: no Pending
        assert "FunctionError" not in answer
        assert payload == '"mine"'
    finally:
        client.delete_function(FunctionName=name)


def worker_pids(emulator, function_name: str) -> list[int]:
    return [pid for name, pid in emulator.awslambda.live_workers() if name == function_name]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_delete_and_update_release_the_functions_workers(relaxed):
    emulator, client = relaxed
    name = f"lt-release-{int(time.time() * 1000)}"
    create_now(client, name, {"app.py": "def handler(event, context):\n    return 1\n"})
    invoke(client, name)
    (first,) = worker_pids(emulator, name)
    client.update_function_code(
        FunctionName=name, ZipFile=package({"app.py": "def handler(e, c):\n    return 2\n"})
    )
    assert worker_pids(emulator, name) == [] and gone(first)
    assert invoke(client, name)[1] == 2
    (second,) = worker_pids(emulator, name)
    client.delete_function(FunctionName=name)
    assert worker_pids(emulator, name) == [] and gone(second)


def test_idle_workers_are_reclaimed(relaxed):
    emulator, client = relaxed
    name = f"lt-idle-{int(time.time() * 1000)}"
    create_now(client, name, {"app.py": "def handler(event, context):\n    return 1\n"})
    try:
        invoke(client, name)
        (pid,) = worker_pids(emulator, name)
        deadline = time.monotonic() + 30
        while worker_pids(emulator, name) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert worker_pids(emulator, name) == [] and gone(pid)
    finally:
        client.delete_function(FunctionName=name)


def test_a_function_restored_while_pending_becomes_active(lam, make_function, in_process_emulator):
    """A snapshot taken while a function was Pending must not leave it Pending forever after a restart."""
    name = make_function(READER)
    in_process_emulator.moto.backend("lambda", "us-east-1").get_function(name).state = "Pending"
    assert lam.get_function(FunctionName=name)["Configuration"]["State"] == "Active"
