"""Lambda Invoke against the emulator: handlers really run from their deployment packages, as on AWS."""

from __future__ import annotations

import base64
import datetime
import importlib.util
import json
import re
import sys
import threading
import time

import botocore.exceptions
import pytest
import requests
from botocore.config import Config
from conftest import LAMBDA_ROLE_ARN
from conftest import lambda_package as package


def invoke(lam, name: str, event=None, **kwargs) -> tuple[dict, object]:
    answer = lam.invoke(FunctionName=name, Payload=json.dumps(event or {}).encode(), **kwargs)
    return answer, json.loads(answer["Payload"].read())


def tail(answer: dict) -> str:
    return base64.b64decode(answer["LogResult"]).decode()


ECHO = """
def handler(event, context):
    return {"event": event, "request_id": context.aws_request_id}
"""


def test_handler_result_is_the_payload(lam, make_function):
    name = make_function(ECHO)
    answer, payload = invoke(lam, name, {"a": [1, "two"]})
    assert answer["StatusCode"] == 200
    assert "FunctionError" not in answer
    assert answer["ExecutedVersion"] == "$LATEST"
    assert payload["event"] == {"a": [1, "two"]}
    assert payload["request_id"] == answer["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]


def test_unhandled_exception_is_returned_as_aws_does(lam, make_function):
    name = make_function(
        """
        def handler(event, context):
            raise ValueError("bad input")
        """
    )
    answer, payload = invoke(lam, name)
    assert answer["StatusCode"] == 200
    assert answer["FunctionError"] == "Unhandled"
    assert list(payload) == ["errorMessage", "errorType", "requestId", "stackTrace"]
    assert payload["errorMessage"] == "bad input"
    assert payload["errorType"] == "ValueError"
    assert payload["requestId"] == answer["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert re.match(
        r'  File ".*/app\.py", line 3, in handler\n    raise ValueError\("bad input"\)\n',
        payload["stackTrace"][0],
    )


@pytest.mark.parametrize(
    ("handler", "error_type", "message"),
    [
        (
            "missing.handler",
            "Runtime.ImportModuleError",
            "Unable to import module 'missing': No module named 'missing'",
        ),
        ("app.absent", "Runtime.HandlerNotFound", "Handler 'absent' missing on module 'app'"),
        (
            "nodot",
            "Runtime.MalformedHandlerName",
            "Bad handler 'nodot': not enough values to unpack (expected 2, got 1)",
        ),
    ],
)
def test_init_errors(lam, make_function, handler, error_type, message):
    name = make_function(ECHO, handler=handler)
    answer, payload = invoke(lam, name)
    assert answer["FunctionError"] == "Unhandled"
    assert payload == {"errorMessage": message, "errorType": error_type, "requestId": "", "stackTrace": []}


def test_syntax_error_in_handler_module(lam, make_function):
    name = make_function("def handler(event, context)\n    return 1\n")
    _, payload = invoke(lam, name)
    assert payload["errorType"] == "Runtime.UserCodeSyntaxError"
    assert payload["errorMessage"].startswith("Syntax error in module 'app': ")


def test_host_packages_are_not_importable(lam, make_function):
    """A dependency left out of the package fails as on AWS, even when the emulator's Python has it."""
    assert importlib.util.find_spec("numpy") is not None, "numpy is installed where the emulator runs"
    name = make_function("import numpy\n\ndef handler(event, context):\n    return 1\n")
    answer, payload = invoke(lam, name)
    assert answer["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "Runtime.ImportModuleError"
    assert payload["errorMessage"] == "Unable to import module 'app': No module named 'numpy'"


def test_packaged_dependencies_are_importable(lam, make_function):
    name = make_function(
        {
            "app.py": "from helpers.text import shout\n\ndef handler(event, context):\n    return shout(event['word'])\n",
            "helpers/__init__.py": "",
            "helpers/text.py": "def shout(word):\n    return word.upper() + '!'\n",
        }
    )
    assert invoke(lam, name, {"word": "hi"})[1] == "HI!"


#: Each execution environment imports the handler once: this id names the environment.
ENVIRONMENT_ID = "import uuid\nENVIRONMENT = uuid.uuid4().hex\n"

SLEEPER = (
    ENVIRONMENT_ID
    + """
import time

def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return ENVIRONMENT
"""
)


def test_timeout_kills_the_environment_and_the_next_call_gets_a_fresh_one(lam, make_function):
    name = make_function(SLEEPER, Timeout=1)
    _, first_pid = invoke(lam, name)
    started = time.monotonic()
    answer, payload = invoke(lam, name, {"sleep": 3})
    assert time.monotonic() - started < 2.5
    assert answer["FunctionError"] == "Unhandled"
    request_id = answer["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert payload == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": f"RequestId: {request_id} Error: Task timed out after 1.00 seconds",
    }
    answer, pid = invoke(lam, name, LogType="Tail")
    assert "FunctionError" not in answer
    assert pid != first_pid
    assert "Init Duration" in tail(answer)


def test_warm_invocations_reuse_the_environment(lam, make_function):
    name = make_function(
        ENVIRONMENT_ID
        + """
calls = 0

def handler(event, context):
    global calls
    calls += 1
    print("call", calls)
    return {"calls": calls, "pid": ENVIRONMENT}
"""
    )
    answers = [invoke(lam, name, LogType="Tail") for _ in range(3)]
    assert [payload["calls"] for _, payload in answers] == [1, 2, 3]
    assert len({payload["pid"] for _, payload in answers}) == 1
    logs = [tail(answer) for answer, _ in answers]
    assert "Init Duration: " in logs[0]
    assert all("Init Duration" not in log for log in logs[1:])
    request_id = answers[1][0]["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert logs[1].startswith(
        f"START RequestId: {request_id} Version: $LATEST\ncall 2\nEND RequestId: {request_id}\n"
    )
    assert re.search(
        r"\nREPORT RequestId: \S+\tDuration: \d+\.\d\d ms\tBilled Duration: \d+ ms\tMemory Size: 128 MB\t"
        r"Max Memory Used: \d+ MB\t\n$",
        logs[1],
    )


def test_code_update_starts_a_fresh_environment(lam, make_function):
    name = make_function(ENVIRONMENT_ID + "def handler(event, context):\n    return ['v1', ENVIRONMENT]\n")
    _, (version, pid) = invoke(lam, name)
    lam.update_function_code(
        FunctionName=name,
        ZipFile=package(
            {"app.py": ENVIRONMENT_ID + "def handler(event, context):\n    return ['v2', ENVIRONMENT]\n"}
        ),
    )
    _, (new_version, new_pid) = invoke(lam, name)
    assert (version, new_version) == ("v1", "v2")
    assert new_pid != pid


def test_concurrent_invocations_get_their_own_environments(lam, make_function):
    name = make_function(SLEEPER)
    invoke(lam, name)  # one warm environment; the second concurrent call needs another
    pids = []
    callers = [
        threading.Thread(target=lambda: pids.append(invoke(lam, name, {"sleep": 0.5})[1])) for _ in range(2)
    ]
    started = time.monotonic()
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert time.monotonic() - started < 2.0
    assert len(set(pids)) == 2


def test_runtime_environment_and_context(lam, make_function, emulator):
    name = make_function(
        """
        import os
        import sys

        def handler(event, context):
            return {
                "env": dict(os.environ),
                "cwd": os.getcwd(),
                "path": sys.path,
                "context": {
                    "aws_request_id": context.aws_request_id,
                    "function_name": context.function_name,
                    "function_version": context.function_version,
                    "invoked_function_arn": context.invoked_function_arn,
                    "memory_limit_in_mb": context.memory_limit_in_mb,
                    "log_group_name": context.log_group_name,
                    "log_stream_name": context.log_stream_name,
                    "identity": [context.identity.cognito_identity_id, context.identity.cognito_identity_pool_id],
                    "client_context": context.client_context and context.client_context.custom,
                    "remaining": context.get_remaining_time_in_millis(),
                },
            }
        """,
        MemorySize=256,
        Timeout=7,
        Environment={"Variables": {"GREETING": "hello", "AWS_REGION": "ignored"}},
    )
    client_context = base64.b64encode(json.dumps({"custom": {"user": "ada"}}).encode()).decode()
    answer, payload = invoke(lam, name, ClientContext=client_context)
    env, context = payload["env"], payload["context"]
    arn = f"arn:aws:lambda:us-east-1:000000000000:function:{name}"
    assert env["GREETING"] == "hello"
    assert (
        env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    )  # reserved: the function cannot set it
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == name
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == f"/aws/lambda/{name}"
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", env["AWS_LAMBDA_LOG_STREAM_NAME"])
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.12"
    assert env["_HANDLER"] == "app.handler"
    assert env["TZ"] == ":UTC"
    assert env["AWS_ENDPOINT_URL"] == emulator.url
    assert env["AWS_ACCESS_KEY_ID"].startswith("ASIA") and env["AWS_SESSION_TOKEN"]
    assert env["AWS_ACCESS_KEY_ID"] != emulator.config.access_key_id
    assert payload["cwd"] == env["LAMBDA_TASK_ROOT"]
    assert payload["path"][:2] == [env["LAMBDA_TASK_ROOT"], env["LAMBDA_RUNTIME_DIR"]]
    assert not any("site-packages" in entry for entry in payload["path"])
    assert context == {
        "aws_request_id": answer["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"],
        "function_name": name,
        "function_version": "$LATEST",
        "invoked_function_arn": arn,
        "memory_limit_in_mb": "256",
        "log_group_name": f"/aws/lambda/{name}",
        "log_stream_name": env["AWS_LAMBDA_LOG_STREAM_NAME"],
        "identity": [None, None],
        "client_context": {"user": "ada"},
        "remaining": context["remaining"],
    }
    assert 5000 < context["remaining"] <= 7000


def test_function_reaches_the_emulator_with_its_role(lam, make_function, bucket):
    """Code in the function uses boto3 plainly: the endpoint and the role's keys come from the environment."""
    name = make_function(
        """
        import boto3

        def handler(event, context):
            buckets = [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]]
            return {"buckets": buckets, "caller": boto3.client("sts").get_caller_identity()["Arn"]}
        """
    )
    answer, payload = invoke(lam, name)
    assert "FunctionError" not in answer, payload
    assert bucket in payload["buckets"]
    assert payload["caller"] == f"arn:aws:sts::000000000000:assumed-role/lambda-role/{name}"


def test_logs_go_to_cloudwatch(lam, make_function, client):
    name = make_function(
        """
        import logging

        logging.getLogger().setLevel(logging.INFO)

        def handler(event, context):
            print("printed")
            logging.info("logged")
            return 1
        """
    )
    answer, _ = invoke(lam, name)
    request_id = answer["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    logs = client("logs")
    (stream,) = logs.describe_log_streams(logGroupName=f"/aws/lambda/{name}")["logStreams"]
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", stream["logStreamName"])
    events = [
        e["message"]
        for e in logs.get_log_events(
            logGroupName=f"/aws/lambda/{name}", logStreamName=stream["logStreamName"]
        )["events"]
    ]
    assert events[0] == f"START RequestId: {request_id} Version: $LATEST"
    assert events[1] == "printed"
    assert re.fullmatch(
        rf"\[INFO\]\t\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z\t{request_id}\tlogged", events[2]
    )
    assert events[3] == f"END RequestId: {request_id}"
    assert events[4].startswith(f"REPORT RequestId: {request_id}\tDuration: ")
    assert "\tInit Duration: " in events[4]


def test_event_invocation_runs_in_the_background(lam, make_function, client, bucket):
    name = make_function(
        """
        import boto3

        def handler(event, context):
            boto3.client("s3").put_object(Bucket=event["bucket"], Key=event["key"], Body=b"done")
        """
    )
    key = f"{name}/marker"
    answer = lam.invoke(
        FunctionName=name, InvocationType="Event", Payload=json.dumps({"bucket": bucket, "key": key})
    )
    assert answer["StatusCode"] == 202
    assert answer["Payload"].read() == b""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        listed = client("s3").list_objects_v2(Bucket=bucket, Prefix=key).get("Contents", [])
        if listed:
            break
        time.sleep(0.05)
    assert [item["Key"] for item in listed] == [key]


def test_dry_run_checks_without_running(lam, make_function):
    name = make_function(ECHO)
    assert lam.invoke(FunctionName=name, InvocationType="DryRun")["StatusCode"] == 204


def test_unknown_function_is_404(lam):
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        lam.invoke(FunctionName="no-such-function")
    error = raised.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert error["Error"]["Code"] == "ResourceNotFoundException"
    assert error["Error"]["Message"] == (
        "Function not found: arn:aws:lambda:us-east-1:000000000000:function:no-such-function:$LATEST"
    )


def test_request_limits(lam, make_function):
    name = make_function(ECHO)
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        lam.invoke(FunctionName=name, Payload=b"[" + b"1," * (3 * 1024 * 1024) + b"1]")
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert raised.value.response["Error"] == {
        "Code": "RequestEntityTooLargeException",
        "Message": "Request must be smaller than 6291456 bytes for the InvokeFunction operation",
    }
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        lam.invoke(FunctionName=name, Payload=b"not json")
    assert raised.value.response["Error"]["Code"] == "InvalidRequestContentException"


def test_response_over_6_mb_is_a_function_error(lam, make_function):
    name = make_function("def handler(event, context):\n    return 'x' * 7_000_000\n")
    answer, payload = invoke(lam, name)
    assert answer["FunctionError"] == "Unhandled"
    assert payload == {
        "errorMessage": "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
        "errorType": "Function.ResponseSizeTooLarge",
    }


def test_runtime_exit_is_reported(lam, make_function):
    name = make_function("import sys\n\ndef handler(event, context):\n    sys.exit(3)\n")
    answer, payload = invoke(lam, name)
    request_id = answer["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert payload == {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: exit status 3",
    }


def test_only_python_runtimes_run(emulator, boto_session, make_function):
    name = make_function(ECHO, handler="index.handler", Runtime="nodejs24.x")
    # InvalidRuntimeException is a 502, which the SDK retries; one attempt is enough here.
    once = boto_session.client(
        "lambda", endpoint_url=emulator.url, config=Config(retries={"max_attempts": 1})
    )
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        once.invoke(FunctionName=name)
    assert raised.value.response["Error"]["Code"] == "InvalidRuntimeException"
    assert "nodejs24.x" in raised.value.response["Error"]["Message"]


def test_unsigned_invoke_is_refused(emulator, lam, make_function):
    name = make_function(ECHO)
    answer = requests.post(f"{emulator.url}/2015-03-31/functions/{name}/invocations", data=b"{}", timeout=5)
    assert answer.status_code == 403
    assert answer.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


def test_in_process_invoke(in_process_emulator, lam, make_function):
    """API Gateway's way in: no HTTP, same environments."""
    name = make_function(ECHO)
    result = in_process_emulator.awslambda.invoke(name, b'{"k": "v"}')
    assert (result.status_code, result.function_error, result.executed_version) == (200, None, "$LATEST")
    assert json.loads(result.payload)["event"] == {"k": "v"}


def test_python_functions_run_under_awslambdaric(lam, make_function):
    """The context object and the runtime loop are AWS's own client's, talking to our Runtime API."""
    name = make_function(
        """
        import os

        def handler(event, context):
            return {
                "context_class": type(context).__module__ + "." + type(context).__qualname__,
                "runtime_api": os.environ["AWS_LAMBDA_RUNTIME_API"],
                "remaining": context.get_remaining_time_in_millis(),
            }
        """,
        Timeout=3,
    )
    _, payload = invoke(lam, name)
    assert payload["context_class"] == "awslambdaric.lambda_context.LambdaContext"
    assert re.fullmatch(r"127\.0\.0\.1:\d+", payload["runtime_api"])
    assert 0 < payload["remaining"] <= 3000


SHELL_BOOTSTRAP = """\
#!/bin/sh
# AWS's custom-runtime tutorial, in sh and curl: fetch an event, answer or fail it through the API.
set -eu
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
while true; do
  HEADERS=$(mktemp)
  EVENT=$(curl -sS -D "$HEADERS" "$API/invocation/next")
  REQUEST_ID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)
  case "$EVENT" in
    *fail*) curl -sS -o /dev/null "$API/invocation/$REQUEST_ID/error" -H "Lambda-Runtime-Function-Error-Type: Unhandled" \\
              -d '{"errorMessage": "asked to fail", "errorType": "ShellError"}' ;;
    *) echo "handling $REQUEST_ID"
       curl -sS -o /dev/null "$API/invocation/$REQUEST_ID/response" -d "{\\"echo\\": $EVENT, \\"id\\": \\"$REQUEST_ID\\"}" ;;
  esac
done
"""


def custom_function(make_function, bootstrap: str, **config) -> str:
    return make_function(
        {"bootstrap": bootstrap},
        handler="unused",
        modes={"bootstrap": 0o755},
        Runtime="provided.al2023",
        **config,
    )


def test_custom_runtime_answers_and_reports_errors(lam, make_function):
    name = custom_function(make_function, SHELL_BOOTSTRAP)
    answer, payload = invoke(lam, name, {"n": 1}, LogType="Tail")
    request_id = answer["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert "FunctionError" not in answer
    assert payload == {"echo": {"n": 1}, "id": request_id}
    assert f"handling {request_id}" in tail(answer)
    answer, payload = invoke(lam, name, {"please": "fail"})
    assert answer["StatusCode"] == 200
    assert answer["FunctionError"] == "Unhandled"
    assert payload == {"errorMessage": "asked to fail", "errorType": "ShellError"}
    # An error reported through /error leaves the environment running, as on AWS.
    answer, payload = invoke(lam, name, {"n": 2}, LogType="Tail")
    assert payload["echo"] == {"n": 2}
    assert "Init Duration" not in tail(answer)


#: A custom runtime in Python (standard library only) that probes the Runtime API's contract.
PROBE_BOOTSTRAP = """\
#!{python} -IS
import http.client, json, os, sys

API = os.environ["AWS_LAMBDA_RUNTIME_API"]


def call(method, path, body=None, headers={{}}):
    connection = http.client.HTTPConnection(API)
    connection.request(method, "/2018-06-01/runtime" + path, body, headers)
    response = connection.getresponse()
    return [response.status, dict(response.getheaders()), response.read().decode()]


if os.environ.get("FAIL_INIT"):
    call("POST", "/init/error", b'{{"errorMessage": "no settings", "errorType": "Probe.InitFailed"}}',
         {{"Lambda-Runtime-Function-Error-Type": "Probe.InitFailed"}})
    sys.exit(1)

last_oversized = None
while True:
    status, headers, body = call("GET", "/invocation/next")
    request_id = headers["Lambda-Runtime-Aws-Request-Id"]
    event = json.loads(body)
    if event.get("big"):
        last_oversized = call("POST", f"/invocation/{{request_id}}/response", b"x" * 6291557)[::2]
        continue
    report = {{
        "headers": {{k: v for k, v in headers.items() if k.startswith("Lambda-Runtime-")}},
        "event": event,
        "wrong_id": call("POST", "/invocation/not-this-one/response", b"{{}}")[::2],
        "next_while_running": call("GET", "/invocation/next")[::2],
        "init_error_after_init": call("POST", "/init/error", b"{{}}")[::2],
        "last_oversized": last_oversized,
    }}
    answered = call("POST", f"/invocation/{{request_id}}/response", json.dumps(report).encode())
    assert answered[0] == 202, answered
"""


def test_runtime_api_contract(lam, make_function):
    name = custom_function(make_function, PROBE_BOOTSTRAP.format(python=sys.executable), Timeout=5)
    client_context = base64.b64encode(json.dumps({"custom": {"user": "ada"}}).encode()).decode()
    started_ms = int(time.time() * 1000)
    answer, report = invoke(lam, name, {"k": "v"}, ClientContext=client_context)
    request_id = answer["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    headers = report["headers"]
    assert headers["Lambda-Runtime-Aws-Request-Id"] == request_id
    assert (
        headers["Lambda-Runtime-Invoked-Function-Arn"]
        == f"arn:aws:lambda:us-east-1:000000000000:function:{name}"
    )
    assert started_ms + 4000 <= int(headers["Lambda-Runtime-Deadline-Ms"]) <= int(time.time() * 1000) + 5000
    assert re.fullmatch(
        r"Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0", headers["Lambda-Runtime-Trace-Id"]
    )
    assert json.loads(headers["Lambda-Runtime-Client-Context"]) == {"custom": {"user": "ada"}}
    assert report["event"] == {"k": "v"}
    assert report["wrong_id"] == [
        400,
        '{"errorMessage": "Invalid request ID", "errorType": "InvalidRequestID"}',
    ]
    assert report["next_while_running"][0] == report["init_error_after_init"][0] == 403
    assert json.loads(report["next_while_running"][1])["errorType"] == "InvalidStateTransition"
    assert report["last_oversized"] is None

    answer, payload = invoke(lam, name, {"big": True})
    assert answer["FunctionError"] == "Unhandled"
    assert payload == {
        "errorMessage": "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
        "errorType": "Function.ResponseSizeTooLarge",
    }
    _, report = invoke(lam, name)  # the same environment goes on, and tells what the runtime was told
    status, body = report["last_oversized"]
    assert status == 413
    assert json.loads(body) == {
        "errorMessage": "Exceeded maximum allowed payload size (6291556 bytes).",
        "errorType": "RequestEntityTooLarge",
    }


def test_custom_runtime_init_error(lam, make_function):
    name = custom_function(
        make_function,
        PROBE_BOOTSTRAP.format(python=sys.executable),
        Environment={"Variables": {"FAIL_INIT": "1"}},
    )
    answer, payload = invoke(lam, name, LogType="Tail")
    assert answer["FunctionError"] == "Unhandled"
    assert payload == {"errorMessage": "no settings", "errorType": "Probe.InitFailed"}
    assert "Status: error\tError Type: Probe.InitFailed" in tail(answer)


def test_custom_runtime_without_bootstrap(lam, make_function):
    name = make_function({"handler.sh": "echo"}, handler="unused", Runtime="provided.al2")
    answer, payload = invoke(lam, name)
    request_id = answer["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert answer["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "Runtime.InvalidEntrypoint"
    assert re.fullmatch(
        rf"RequestId: {request_id} Error: Couldn't find valid bootstrap\(s\): \[\S*/bootstrap /opt/bootstrap\]",
        payload["errorMessage"],
    )


def test_creating_a_python36_function_fails_as_on_aws(lam):
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        lam.create_function(
            FunctionName="retired-runtime",
            Runtime="python3.6",
            Role=LAMBDA_ROLE_ARN,
            Handler="app.handler",
            Code={"ZipFile": package({"app.py": ECHO})},
        )
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert raised.value.response["Error"] == {
        "Code": "InvalidParameterValueException",
        "Message": "The runtime parameter of python3.6 is no longer supported for creating or updating AWS "
        "Lambda functions. We recommend you use the new runtime (python3.14) while creating or updating functions.",
    }
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName="retired-runtime")


def test_updating_a_function_to_a_retired_runtime_fails_and_changes_nothing(lam, make_function):
    name = make_function(ECHO)
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        lam.update_function_configuration(FunctionName=name, Runtime="nodejs12.x", Timeout=9)
    assert raised.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert raised.value.response["Error"]["Message"].startswith(
        "The runtime parameter of nodejs12.x is no longer supported for creating or updating AWS Lambda functions. "
        "We recommend you use the new runtime (nodejs"
    )
    configuration = lam.get_function_configuration(FunctionName=name)
    assert (configuration["Runtime"], configuration["Timeout"]) == ("python3.12", 3)
    _, payload = invoke(lam, name, {"still": "runs"})
    assert payload["event"] == {"still": "runs"}


def test_an_unknown_runtime_is_refused_with_the_runtimes_one_can_create(lam):
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        lam.create_function(
            FunctionName="no-such-runtime",
            Runtime="python9.9",
            Role=LAMBDA_ROLE_ARN,
            Handler="app.handler",
            Code={"ZipFile": package({"app.py": ECHO})},
        )
    error = raised.value.response["Error"]
    assert error["Code"] == "InvalidParameterValueException"
    offered = re.fullmatch(
        r"Value python9\.9 at 'runtime' failed to satisfy constraint: Member must satisfy enum value set: "
        r"\[(.*)\] or be a valid ARN",
        error["Message"],
    )[1].split(", ")
    assert "python3.12" in offered and "python3.6" not in offered and "nodejs12.x" not in offered


def test_runtime_blocks_follow_the_dates_aws_publishes():
    """Between its block-create and block-update dates a runtime can still be kept by an update."""
    from emulation.awslambda import runtime_support
    from emulation.protocol import AwsError

    before, between, after = datetime.date(2027, 1, 31), datetime.date(2027, 2, 15), datetime.date(2027, 3, 3)
    runtime_support.check("python3.8", creating=True, today=before)
    with pytest.raises(AwsError, match="python3.8 is no longer supported"):
        runtime_support.check("python3.8", creating=True, today=between)
    runtime_support.check("python3.8", creating=False, today=between)
    with pytest.raises(AwsError, match="python3.8 is no longer supported"):
        runtime_support.check("python3.8", creating=False, today=after)
