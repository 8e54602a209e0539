"""The edge on its own: which service each request reaches, what that service demands of it (size,
signing name, clock skew, region), and how the edge answers what nobody serves or what fails.

The edge is called as the WSGI app it is, with botocore-signed requests; the services behind it are
stand-ins that only say who they are, since what is under test is the routing, not the services
(test_edge_and_signing.py and test_security.py check the same through a running emulator).
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from werkzeug.test import Client, EnvironBuilder
from werkzeug.wrappers import Response

from emulation.config import EmulatorConfig
from emulation.credentials import CredentialRegistry
from emulation.edge import DEFAULT_MAX_BYTES, LAMBDA_MAX_CODE_REQUEST_BYTES, S3_MAX_PUT_BYTES, Edge
from emulation.refusals import JSON_RPC, QUERY, REST_JSON, S3

REGION = "eu-west-1"  # the emulator's region here: not the SDK's default, so pinning shows
KEY, SECRET = "AKIDEDGETEST", "edge-secret"
MB = 1024 * 1024


def _served_by(name):
    def handler(request):
        if request.headers.get("X-Fail") == "yes":
            raise RuntimeError("a bug in the service")
        return Response(
            json.dumps({"served_by": name, "body": len(request.get_data())}), content_type="application/json"
        )

    return handler


def _moto(environ, start_response):
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    return Response(json.dumps({"served_by": "moto", "body": len(body)}), content_type="application/json")(
        environ, start_response
    )


@pytest.fixture
def edge():
    """A new edge per test (it is cheap), so that mutation testing counts its construction as part of
    every test rather than only the first."""
    config = EmulatorConfig(
        port=0, account_id="123456789012", region=REGION, access_key_id=KEY, secret_access_key=SECRET
    )
    return Edge(
        config,
        CredentialRegistry(config.account_id, KEY, SECRET),
        moto_app=_moto,
        sagemaker=_served_by("sagemaker"),
        sagemaker_runtime=_served_by("runtime"),
        lambda_invoke=_served_by("lambda-invoke"),
        execute_api=_served_by("execute-api"),
    )


def _signed_headers(method, url, service, region, body, headers, signed_at):
    """botocore's signature for the request, as if made at ``signed_at``."""
    import botocore.auth

    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    signer = (S3SigV4Auth if service == "s3" else SigV4Auth)(Credentials(KEY, SECRET), service, region)
    original = botocore.auth.datetime.datetime

    class Frozen(original):
        @classmethod
        def utcnow(cls):
            return signed_at.replace(tzinfo=None)

        @classmethod
        def now(cls, tz=None):
            return signed_at if tz else signed_at.replace(tzinfo=None)

    botocore.auth.datetime.datetime = Frozen
    try:
        signer.add_auth(request)
    finally:
        botocore.auth.datetime.datetime = original
    return dict(request.headers.items())


def send(
    edge, method, path, *, service=None, region=REGION, body=b"", headers=None, host="localhost", age=None
):
    """The edge's answer to a request, signed for ``service`` (unsigned when None)."""
    headers = dict(headers or {})
    if service is not None:
        signed_at = dt.datetime.now(dt.timezone.utc) - (age or dt.timedelta(0))
        headers = _signed_headers(method, f"http://{host}{path}", service, region, body, headers, signed_at)
    return Client(edge).open(path, method=method, headers=headers, data=body, base_url=f"http://{host}")


def _json(answer) -> dict:
    """The JSON body whatever its content type (application/x-amz-json-1.1 included)."""
    return json.loads(answer.get_data())


def _scope(service, region=REGION):
    """An Authorization header naming a service and region: routing reads it, verifies nothing."""
    return {
        "Authorization": f"AWS4-HMAC-SHA256 Credential={KEY}/20260304/{region}/{service}/aws4_request, "
        "SignedHeaders=host, Signature=00",
        "X-Amz-Date": "20260304T120000Z",
    }


def _destination(edge, method, path, *, headers=None, host="localhost", content_type=None):
    environ = EnvironBuilder(
        path=path, method=method, headers=headers or {}, base_url=f"http://{host}", content_type=content_type
    ).get_environ()
    return edge.destination(environ)


SAGEMAKER_TARGET = {"X-Amz-Target": "SageMaker.ListModels"}


@pytest.mark.parametrize(
    ("method", "path", "headers", "host", "content_type", "expected"),
    [
        # (served by, protocol, max bytes, signing name, public, skew minutes, pinned region)
        ("GET", "/_sagelocal/health", {}, "localhost", None, ("health", REST_JSON, 0, None, True, 15, False)),
        ("GET", "/_sagelocal/healthz", {}, "localhost", None, ("moto", S3, S3_MAX_PUT_BYTES, None, False, 15, False)),
        ("POST", "/_aws/execute-api/a1/prod/x", {}, "localhost", None, ("execute-api", REST_JSON, 10 * MB, None, True, 15, False)),
        ("GET", "/restapis/a1/prod/_user_request_/x", {}, "localhost", None, ("execute-api", REST_JSON, 10 * MB, None, True, 15, False)),
        ("GET", "/prod/x", {}, "a1.execute-api.localhost:4566", None, ("execute-api", REST_JSON, 10 * MB, None, True, 15, False)),
        ("POST", "/", SAGEMAKER_TARGET, "localhost", None, ("sagemaker", JSON_RPC, DEFAULT_MAX_BYTES, "sagemaker", False, 15, True)),
        ("POST", "/", {"X-Amz-Target": "sagemaker.listmodels"}, "localhost", None, ("sagemaker", JSON_RPC, DEFAULT_MAX_BYTES, "sagemaker", False, 15, True)),
        ("POST", "/endpoints/e-1/invocations", {}, "localhost", None, ("runtime", REST_JSON, 6 * MB, "sagemaker", False, 5, True)),
        ("GET", "/endpoints/e-1/invocations", _scope("sagemaker"), "localhost", None, ("unknown", JSON_RPC, 0, "sagemaker", False, 15, True)),
        ("POST", "/endpoints/e-1/invocations/more", _scope("sagemaker"), "localhost", None, ("unknown", JSON_RPC, 0, "sagemaker", False, 15, True)),
        ("GET", "/", {}, "api.sagemaker.eu-west-1.amazonaws.com", None, ("unknown", JSON_RPC, 0, "sagemaker", False, 15, True)),
        ("GET", "/", {}, "Runtime.SageMaker.eu-west-1.amazonaws.com", None, ("unknown", JSON_RPC, 0, "sagemaker", False, 15, True)),
        ("POST", "/2015-03-31/functions/f/invocations", {}, "localhost", None, ("lambda-invoke", REST_JSON, 6 * MB, "lambda", False, 5, False)),
        ("GET", "/2015-03-31/functions/f/invocations", _scope("lambda"), "localhost", None, ("moto", REST_JSON, DEFAULT_MAX_BYTES, None, False, 15, False)),
        ("POST", "/2015-03-31/functions", _scope("lambda"), "localhost", None, ("moto", REST_JSON, LAMBDA_MAX_CODE_REQUEST_BYTES, None, False, 15, False)),
        ("POST", "/2015-03-31/functions/", {}, "localhost", None, ("moto", REST_JSON, LAMBDA_MAX_CODE_REQUEST_BYTES, None, False, 15, False)),
        ("PUT", "/2015-03-31/functions/f/code", _scope("lambda"), "localhost", None, ("moto", REST_JSON, LAMBDA_MAX_CODE_REQUEST_BYTES, None, False, 15, False)),
        ("GET", "/2015-03-31/functions/f/configuration", _scope("lambda"), "localhost", None, ("moto", REST_JSON, DEFAULT_MAX_BYTES, None, False, 15, False)),
        ("GET", "/restapis", {}, "localhost", None, ("moto", REST_JSON, DEFAULT_MAX_BYTES, None, False, 15, False)),
        ("GET", "/restapis/a1/stages/prod", _scope("apigateway"), "localhost", None, ("moto", REST_JSON, DEFAULT_MAX_BYTES, None, False, 15, False)),
        ("POST", "/", {"X-Amz-Target": "Logs_20140328.CreateLogGroup", **_scope("logs")}, "localhost", None, ("moto", JSON_RPC, DEFAULT_MAX_BYTES, None, False, 15, False)),
        ("PUT", "/bucket/key.csv", {}, "localhost", None, ("moto", S3, S3_MAX_PUT_BYTES, None, False, 15, False)),
        ("PUT", "/bucket/key.csv", _scope("s3"), "localhost", "text/csv", ("moto", S3, S3_MAX_PUT_BYTES, None, False, 15, False)),
        ("POST", "/", {}, "localhost", "application/x-www-form-urlencoded", ("moto", QUERY, DEFAULT_MAX_BYTES, None, False, 15, False)),
        ("POST", "/", _scope("iam"), "localhost", "application/x-www-form-urlencoded; charset=utf-8", ("moto", QUERY, DEFAULT_MAX_BYTES, None, False, 15, False)),
        ("GET", "/?Action=GetCallerIdentity&Version=2011-06-15", _scope("sts"), "localhost", None, ("moto", QUERY, DEFAULT_MAX_BYTES, None, False, 15, False)),
        ("GET", "/some/path", _scope("kms"), "localhost", None, ("moto", REST_JSON, DEFAULT_MAX_BYTES, None, False, 15, False)),
    ],
)  # fmt: skip
def test_each_request_reaches_the_service_that_serves_it(
    edge, method, path, headers, host, content_type, expected
):
    destination = _destination(edge, method, path, headers=headers, host=host, content_type=content_type)
    handlers = {
        None: "moto",
        edge._health_check: "health",
        Edge._unknown_operation: "unknown",
    }
    served_by = (
        handlers.get(destination.handler)
        or destination.handler(EnvironBuilder().get_request()).json["served_by"]
    )
    assert (
        served_by,
        destination.protocol,
        destination.max_bytes,
        destination.service,
        destination.public,
        destination.skew_minutes,
        destination.pinned_region,
    ) == expected


def test_health_answers_unsigned_with_the_account_and_region(edge):
    answer = send(edge, "GET", "/_sagelocal/health")
    assert answer.status_code == 200
    health = _json(answer)
    assert {key: health[key] for key in ("status", "account", "region")} == {
        "status": "running",
        "account": "123456789012",
        "region": REGION,
    }
    assert {"python", "sandbox", "frameworks"} <= health.keys()


def test_signed_requests_reach_their_service_with_their_body(edge):
    body = json.dumps({"MaxResults": 1}).encode()
    answer = send(edge, "POST", "/", service="sagemaker", body=body, headers=SAGEMAKER_TARGET)
    assert _json(answer) == {"served_by": "sagemaker", "body": len(body)}
    answer = send(edge, "POST", "/endpoints/e-1/invocations", service="sagemaker", body=b"1,2,3")
    assert _json(answer) == {"served_by": "runtime", "body": 5}
    answer = send(edge, "POST", "/2015-03-31/functions/f/invocations", service="lambda", body=b"{}")
    assert _json(answer) == {"served_by": "lambda-invoke", "body": 2}
    answer = send(edge, "PUT", "/bucket/k", service="s3", body=b"data")
    assert _json(answer) == {"served_by": "moto", "body": 4}
    assert _json(send(edge, "GET", "/_aws/execute-api/a1/prod/x")) == {"served_by": "execute-api", "body": 0}


@pytest.mark.parametrize(
    ("method", "path", "headers", "protocol_check"),
    [
        ("POST", "/", SAGEMAKER_TARGET, "json"),
        ("POST", "/endpoints/e-1/invocations", {}, "rest-json"),
        ("GET", "/2015-03-31/functions", {}, "rest-json"),
        ("PUT", "/bucket/k", {}, "s3"),
        ("POST", "/", {"Content-Type": "application/x-www-form-urlencoded"}, "query"),
    ],
)
def test_an_unsigned_request_is_refused_in_its_services_words(edge, method, path, headers, protocol_check):
    answer = send(
        edge, method, path, headers=headers, body=b"Action=ListRoles" if protocol_check == "query" else b""
    )
    assert answer.headers["Connection"] == "close"
    if protocol_check == "json":
        assert answer.status_code == 400
        assert _json(answer)["__type"] == "MissingAuthenticationTokenException"
    elif protocol_check == "rest-json":
        assert answer.status_code == 403
        assert answer.headers["x-amzn-ErrorType"].startswith("MissingAuthenticationTokenException")
    elif protocol_check == "s3":
        assert answer.status_code == 403 and "<Code>AccessDenied</Code>" in answer.text
    else:
        assert answer.status_code == 403 and "<Code>MissingAuthenticationToken</Code>" in answer.text


def test_what_no_sagemaker_operation_serves_is_an_unknown_operation(edge):
    answer = send(edge, "GET", "/endpoints/e-1/invocations", service="sagemaker")
    assert answer.status_code == 400
    assert answer.headers["Content-Type"] == "application/x-amz-json-1.1"
    assert _json(answer) == {
        "__type": "UnknownOperationException",
        "message": "Unknown operation GET /endpoints/e-1/invocations",
    }
    host = "api.sagemaker.eu-west-1.amazonaws.com"
    answer = send(
        edge, "POST", "/", service="sagemaker", host=host, headers={"X-Amz-Target": "Other.ListModels"}
    )
    assert _json(answer)["message"] == "Unknown operation Other.ListModels"


def test_the_runtime_and_invoke_allow_five_minutes_of_skew_the_control_planes_fifteen(edge):
    ten_minutes = dt.timedelta(minutes=10)
    control = send(edge, "POST", "/", service="sagemaker", headers=SAGEMAKER_TARGET, age=ten_minutes)
    assert _json(control)["served_by"] == "sagemaker"
    assert send(edge, "GET", "/2015-03-31/functions", service="lambda", age=ten_minutes).status_code == 200
    for path, service in (
        ("/endpoints/e-1/invocations", "sagemaker"),
        ("/2015-03-31/functions/f/invocations", "lambda"),
    ):
        refused = send(edge, "POST", path, service=service, body=b"{}", age=ten_minutes)
        assert refused.status_code == 403
        assert _json(refused)["message"].startswith("Signature expired:")
        assert _json(refused)["message"].endswith(" - 5 min.)")
    late = send(
        edge, "POST", "/", service="sagemaker", headers=SAGEMAKER_TARGET, age=dt.timedelta(minutes=16)
    )
    assert _json(late)["message"].endswith(" - 15 min.)")


def test_our_sagemaker_insists_on_its_signing_name_and_the_emulators_region(edge):
    wrong_region = send(edge, "POST", "/", service="sagemaker", region="us-east-1", headers=SAGEMAKER_TARGET)
    assert wrong_region.status_code == 400
    assert _json(wrong_region) == {
        "__type": "InvalidSignatureException",
        "message": "Credential should be scoped to a valid region, not 'us-east-1'.",
    }
    runtime = send(edge, "POST", "/endpoints/e-1/invocations", service="sagemaker", region="us-east-1")
    assert runtime.status_code == 403
    # Lambda's Invoke and moto's services take any known region
    invoke = send(edge, "POST", "/2015-03-31/functions/f/invocations", service="lambda", region="us-east-1")
    assert _json(invoke)["served_by"] == "lambda-invoke"
    wrong_name = send(edge, "POST", "/endpoints/e-1/invocations", service="lambda", body=b"1")
    assert wrong_name.status_code == 403
    assert _json(wrong_name)["message"] == "Credential should be scoped to correct service: 'sagemaker'."


@pytest.mark.parametrize(
    ("path", "service", "headers", "limit", "status", "words"),
    [
        (
            "/endpoints/e-1/invocations",
            "sagemaker",
            {},
            6 * MB,
            413,
            "HTTP content length exceeded 6291456 bytes.",
        ),
        (
            "/2015-03-31/functions/f/invocations",
            "lambda",
            {},
            6 * MB,
            413,
            "Request must be smaller than 6291456 bytes for the InvokeFunction operation",
        ),
        (
            "/_aws/execute-api/a1/prod/x",
            None,
            {},
            10 * MB,
            413,
            "HTTP content length exceeded 10485760 bytes.",
        ),
        ("/", "sagemaker", SAGEMAKER_TARGET, 10 * MB, 413, "RequestEntityTooLargeException"),
    ],
)
def test_a_body_over_the_services_limit_is_refused_and_one_at_it_is_not(
    edge, path, service, headers, limit, status, words
):
    at_limit = send(edge, "POST", path, service=service, headers=headers, body=b"1" * limit)
    assert at_limit.status_code == 200 and _json(at_limit)["body"] == limit
    over = send(edge, "POST", path, service=service, headers=headers, body=b"1" * (limit + 1))
    assert over.status_code == status
    assert words in over.text
    assert over.headers["Connection"] == "close"


def test_a_lambda_code_upload_may_exceed_the_usual_10_mb(edge):
    body = b"{" + b" " * (11 * MB) + b"}"
    assert _json(send(edge, "POST", "/2015-03-31/functions", service="lambda", body=body)) == {
        "served_by": "moto",
        "body": len(body),
    }
    refused = send(edge, "POST", "/2015-03-31/functions/f/policy", service="lambda", body=body)
    assert refused.status_code == 413


def test_a_failing_service_is_that_requests_500_and_the_edge_serves_on(edge):
    failed = send(edge, "POST", "/", service="sagemaker", headers={**SAGEMAKER_TARGET, "X-Fail": "yes"})
    assert failed.status_code == 500
    assert _json(failed) == {
        "__type": "InternalFailure",
        "message": "The request processing has failed because of an unknown error, exception or failure.",
    }
    assert send(edge, "POST", "/", service="sagemaker", headers=SAGEMAKER_TARGET).status_code == 200
