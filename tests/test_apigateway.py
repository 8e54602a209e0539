"""API Gateway REST stages against the emulator: Lambda proxy and MOCK integrations, gateway errors."""

from __future__ import annotations

import json
import time

import pytest
import requests
from conftest import lambda_package

ROLE_ARN = "arn:aws:iam::000000000000:role/lambda-role"
FUNCTION = "gw-proxy-target"
STAGE = "test"
CORS_HEADERS = {
    "Access-Control-Allow-Headers": "'Content-Type,X-Amz-Date,Authorization,X-Api-Key,X-Amz-Security-Token'",
    "Access-Control-Allow-Methods": "'OPTIONS,POST'",
    "Access-Control-Allow-Origin": "'*'",
}
# Answers according to the last path segment, so one function serves every case.
SOURCE = """
import json
import time

def handler(event, context):
    last = event["path"].rstrip("/").rsplit("/", 1)[-1]
    if last == "malformed":
        return {"statusCode": 200, "body": {"an": "object"}}
    if last == "fail":
        raise RuntimeError("boom")
    if last == "slow":
        time.sleep(3)
    if last == "custom":
        return {
            "statusCode": "201",
            "headers": {"Content-Type": "text/plain", "X-Single": "one", "X-Flag": True, "Server": "mine"},
            "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
            "body": "created",
        }
    return {"statusCode": 200, "headers": {"Access-Control-Allow-Origin": "*"}, "body": json.dumps(event)}
"""


@pytest.fixture(scope="module")
def function_arn(client, lambda_role):
    created = client("lambda").create_function(
        FunctionName=FUNCTION,
        Runtime="python3.12",
        Role=ROLE_ARN,
        Handler="app.handler",
        Code={"ZipFile": lambda_package({"app.py": SOURCE})},
        Timeout=10,
    )
    client("lambda").add_permission(
        FunctionName=FUNCTION,
        StatementId="api-gateway",
        Action="lambda:InvokeFunction",
        Principal="apigateway.amazonaws.com",
    )
    client("lambda").get_waiter("function_active_v2").wait(FunctionName=FUNCTION, WaiterConfig={"Delay": 0.1})
    yield created["FunctionArn"]
    client("lambda").delete_function(FunctionName=FUNCTION)


def _lambda_uri(function_arn: str) -> str:
    return f"arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{function_arn}/invocations"


def _proxy_method(apigw, api_id: str, resource_id: str, verb: str, function_arn: str, **integration) -> None:
    apigw.put_method(restApiId=api_id, resourceId=resource_id, httpMethod=verb, authorizationType="NONE")
    apigw.put_integration(
        restApiId=api_id,
        resourceId=resource_id,
        httpMethod=verb,
        type="AWS_PROXY",
        integrationHttpMethod="POST",
        uri=_lambda_uri(function_arn),
        **integration,
    )


def _cors_preflight(apigw, api_id: str, resource_id: str) -> None:
    """What the console's "Enable CORS" creates: OPTIONS with a MOCK integration and static headers."""
    apigw.put_method(restApiId=api_id, resourceId=resource_id, httpMethod="OPTIONS", authorizationType="NONE")
    apigw.put_integration(
        restApiId=api_id,
        resourceId=resource_id,
        httpMethod="OPTIONS",
        type="MOCK",
        requestTemplates={"application/json": '{"statusCode": 200}'},
    )
    apigw.put_method_response(
        restApiId=api_id,
        resourceId=resource_id,
        httpMethod="OPTIONS",
        statusCode="200",
        responseParameters={f"method.response.header.{name}": False for name in CORS_HEADERS},
    )
    apigw.put_integration_response(
        restApiId=api_id,
        resourceId=resource_id,
        httpMethod="OPTIONS",
        statusCode="200",
        responseParameters={f"method.response.header.{name}": value for name, value in CORS_HEADERS.items()},
        responseTemplates={"application/json": ""},
    )


@pytest.fixture(scope="module")
def api(client, function_arn):
    """A REST API: POST and OPTIONS on /, ANY on /greedy/{proxy+}, GET on /items/{id}, GET on /slow (1 s)."""
    apigw = client("apigateway")
    api_id = apigw.create_rest_api(name="gateway-tests")["id"]
    # moto drops binaryMediaTypes from CreateRestApi and reads the added type from "value", not the path.
    apigw.update_rest_api(
        restApiId=api_id,
        patchOperations=[
            {
                "op": "add",
                "path": "/binaryMediaTypes/application~1octet-stream",
                "value": "application/octet-stream",
            }
        ],
    )
    root = apigw.get_resources(restApiId=api_id)["items"][0]["id"]

    def child(parent: str, part: str) -> str:
        return apigw.create_resource(restApiId=api_id, parentId=parent, pathPart=part)["id"]

    _proxy_method(apigw, api_id, root, "POST", function_arn)
    _cors_preflight(apigw, api_id, root)
    _proxy_method(apigw, api_id, child(child(root, "greedy"), "{proxy+}"), "ANY", function_arn)
    _proxy_method(apigw, api_id, child(child(root, "items"), "{id}"), "GET", function_arn)
    _proxy_method(apigw, api_id, child(root, "slow"), "GET", function_arn, timeoutInMillis=1000)
    apigw.create_deployment(restApiId=api_id, stageName=STAGE, variables={"flavour": "vanilla"})
    yield api_id
    apigw.delete_rest_api(restApiId=api_id)


@pytest.fixture(scope="module")
def stage_url(emulator, api):
    return emulator.execute_api_url(api, STAGE)


def _event(answer: requests.Response) -> dict:
    assert answer.status_code == 200, answer.text
    return json.loads(answer.text)


def test_post_reaches_the_function_with_the_proxy_event(stage_url, api):
    answer = requests.post(
        f"{stage_url}/?a=1&a=2&b=x+y",
        data=b"hello",
        headers={"X-Custom": "v", "Content-Type": "text/plain"},
        timeout=10,
    )
    event = _event(answer)
    assert event["resource"] == "/"
    assert event["path"] == "/"
    assert event["httpMethod"] == "POST"
    assert event["headers"]["X-Custom"] == "v"
    assert event["multiValueHeaders"]["X-Custom"] == ["v"]
    assert "Content-Length" not in event["headers"]
    assert event["queryStringParameters"] == {"a": "2", "b": "x y"}
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": ["x y"]}
    assert event["pathParameters"] is None
    assert event["stageVariables"] == {"flavour": "vanilla"}
    assert event["body"] == "hello"
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["path"] == f"/{STAGE}/"
    assert context["stage"] == STAGE
    assert context["apiId"] == api
    assert context["accountId"] == "000000000000"
    assert context["resourcePath"] == "/"
    assert context["httpMethod"] == "POST"
    assert context["requestId"] == answer.headers["x-amzn-RequestId"]
    assert context["extendedRequestId"] == answer.headers["x-amz-apigw-id"]
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["identity"]["userAgent"] == answer.request.headers["User-Agent"]
    assert context["identity"]["caller"] is None
    assert answer.headers["Content-Type"] == "application/json"  # the function set none
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert answer.headers["X-Amzn-Trace-Id"].startswith("Root=1-")


def test_greedy_path_without_a_query_string(stage_url):
    event = _event(requests.get(f"{stage_url}/greedy/a/b%2Bc//d/", timeout=10))
    assert event["resource"] == "/greedy/{proxy+}"
    assert event["path"] == "/greedy/a/b%2Bc//d/"
    assert event["httpMethod"] == "GET"
    assert event["pathParameters"] == {"proxy": "a/b%2Bc//d"}
    assert event["queryStringParameters"] is None
    assert event["multiValueQueryStringParameters"] is None
    assert event["body"] is None
    assert event["requestContext"]["path"] == f"/{STAGE}/greedy/a/b%2Bc//d/"


def test_user_request_url_form(emulator, api):
    event = _event(requests.get(f"{emulator.url}/restapis/{api}/{STAGE}/_user_request_/items/42", timeout=10))
    assert event["resource"] == "/items/{id}"
    assert event["path"] == "/items/42"
    assert event["pathParameters"] == {"id": "42"}
    assert event["requestContext"]["path"] == f"/{STAGE}/items/42"


def test_localstack_host_style_url(emulator, api):
    host = f"{api}.execute-api.localhost.localstack.cloud:{emulator.url.rsplit(':', 1)[1]}"
    event = _event(requests.get(f"{emulator.url}/{STAGE}/items/42", headers={"Host": host}, timeout=10))
    assert event["resource"] == "/items/{id}"
    assert event["path"] == "/items/42"
    assert event["requestContext"]["path"] == f"/{STAGE}/items/42"


def test_binary_media_types_are_base64_encoded(stage_url):
    event = _event(
        requests.put(
            f"{stage_url}/greedy/blob",
            data=b"\x00\xff",
            headers={"Content-Type": "application/octet-stream"},
            timeout=10,
        )
    )
    assert event["isBase64Encoded"] is True
    assert event["body"] == "AP8="


def test_response_mapping(stage_url):
    answer = requests.get(f"{stage_url}/greedy/custom", timeout=10)
    assert answer.status_code == 201
    assert answer.text == "created"
    assert answer.headers["Content-Type"] == "text/plain"
    assert answer.headers["X-Single"] == "one"
    assert answer.headers["X-Flag"] == "true"
    assert answer.headers["x-amzn-Remapped-Server"] == "mine"
    assert answer.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2"]


@pytest.mark.parametrize("path", ["/nothing", "/items", "/greedy"])
def test_unknown_resource_is_missing_authentication_token(stage_url, path):
    answer = requests.get(f"{stage_url}{path}", timeout=10)
    assert answer.status_code == 403
    assert answer.content == b'{"message":"Missing Authentication Token"}'
    assert answer.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    assert "Access-Control-Allow-Origin" not in answer.headers


def test_unknown_method_stage_and_api_are_missing_authentication_token(emulator, api, stage_url):
    for answer in (
        requests.delete(f"{stage_url}/items/1", timeout=10),
        requests.post(emulator.execute_api_url(api, "nostage"), timeout=10),
        requests.post(emulator.execute_api_url("noapi", STAGE), timeout=10),
    ):
        assert answer.status_code == 403
        assert answer.json() == {"message": "Missing Authentication Token"}


@pytest.mark.parametrize("case", ["malformed", "fail"])
def test_malformed_response_and_function_error_are_502(stage_url, case):
    answer = requests.get(f"{stage_url}/greedy/{case}", timeout=10)
    assert answer.status_code == 502
    assert answer.content == b'{"message": "Internal server error"}'
    assert "Access-Control-Allow-Origin" not in answer.headers


def test_cors_preflight_is_answered_by_the_mock_integration(stage_url):
    answer = requests.options(
        f"{stage_url}/",
        headers={"Origin": "http://localhost:8000", "Access-Control-Request-Method": "POST"},
        timeout=10,
    )
    assert answer.status_code == 200
    assert answer.content == b""
    for name, value in CORS_HEADERS.items():
        assert answer.headers[name] == value.strip("'")


def test_integration_timeout_is_504(stage_url):
    started = time.monotonic()
    answer = requests.get(f"{stage_url}/slow", timeout=10)
    assert time.monotonic() - started < 2.5
    assert answer.status_code == 504
    assert answer.content == b'{"message": "Endpoint request timed out"}'


def test_request_over_10_mb_is_refused(stage_url):
    answer = requests.post(f"{stage_url}/", data=b"x" * (10 * 1024 * 1024 + 1), timeout=30)
    assert answer.status_code == 413
    assert answer.text == "HTTP content length exceeded 10485760 bytes."


def test_changes_need_a_new_deployment(client, emulator, function_arn):
    """A stage serves its deployment's snapshot; gateway responses configured on the API apply to errors."""
    apigw = client("apigateway")
    api_id = apigw.create_rest_api(name="redeploy-tests")["id"]
    root = apigw.get_resources(restApiId=api_id)["items"][0]["id"]
    _proxy_method(apigw, api_id, root, "GET", function_arn)
    apigw.create_deployment(restApiId=api_id, stageName="live")
    url = emulator.execute_api_url(api_id, "live")
    assert requests.get(f"{url}/", timeout=10).status_code == 200

    added = apigw.create_resource(restApiId=api_id, parentId=root, pathPart="added")["id"]
    _proxy_method(apigw, api_id, added, "GET", function_arn)
    apigw.put_gateway_response(
        restApiId=api_id,
        responseType="DEFAULT_4XX",
        responseParameters={"gatewayresponse.header.Access-Control-Allow-Origin": "'*'"},
    )
    refused = requests.get(f"{url}/added", timeout=10)
    assert refused.status_code == 403
    assert refused.headers["Access-Control-Allow-Origin"] == "*"

    apigw.create_deployment(restApiId=api_id, stageName="live")
    assert _event(requests.get(f"{url}/added", timeout=10))["resource"] == "/added"
    apigw.delete_rest_api(restApiId=api_id)
