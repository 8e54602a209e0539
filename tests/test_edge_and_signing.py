"""The one port: routing, the health route, moto's services, and SigV4 as AWS enforces it."""

from __future__ import annotations

import datetime as dt

import boto3
import botocore.exceptions
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def test_health_needs_no_signature(emulator):
    answer = requests.get(f"{emulator.url}/_sagelocal/health", timeout=5)
    assert answer.status_code == 200
    assert answer.json()["status"] == "running"


def test_moto_serves_s3_and_sts(client, bucket):
    client("s3").put_object(Bucket=bucket, Key="hello.txt", Body=b"hi")
    assert client("s3").get_object(Bucket=bucket, Key="hello.txt")["Body"].read() == b"hi"
    assert client("sts").get_caller_identity()["Account"] == "000000000000"


def test_aws_endpoint_url_alone_is_enough(emulator, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", emulator.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    sagemaker = boto3.Session(region_name="us-east-1").client("sagemaker")
    assert sagemaker.list_models()["Models"] is not None


def test_localstack_client_works(emulator, monkeypatch):
    """LocalStack-style clients work unchanged, given the emulator's keys (SageMaker checks signatures)."""
    import localstack_client.session

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    session = localstack_client.session.Session(
        aws_access_key_id="test",
        aws_secret_access_key="test",
        localstack_host=emulator.url.removeprefix("http://"),
        region_name="us-east-1",
    )
    assert session.client("sagemaker").list_endpoints()["Endpoints"] is not None
    assert session.client("sts").get_caller_identity()["Account"] == "000000000000"


def _signed_post(
    url: str, target: str, body: bytes, key: str, secret: str, service: str = "sagemaker", when=None
):
    request = AWSRequest(
        method="POST",
        url=url,
        data=body,
        headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"},
    )
    signer = SigV4Auth(Credentials(key, secret), service, "us-east-1")
    if when is not None:
        request.context["timestamp"] = when.strftime("%Y%m%dT%H%M%SZ")
        request.headers["X-Amz-Date"] = request.context["timestamp"]
        canonical = signer.canonical_request(request)
        signature = signer.signature(signer.string_to_sign(request, canonical), request)
        scope = f"{key}/{when:%Y%m%d}/us-east-1/{service}/aws4_request"
        request.headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders={signer.signed_headers(signer.headers_to_sign(request))}, "
            f"Signature={signature}"
        )
    else:
        signer.add_auth(request)
    return requests.post(url, data=body, headers=dict(request.headers.items()), timeout=5)


def test_unsigned_sagemaker_call_is_refused(emulator):
    answer = requests.post(
        emulator.url, data=b"{}", headers={"X-Amz-Target": "SageMaker.ListModels"}, timeout=5
    )
    assert answer.status_code == 400
    assert answer.json()["__type"] == "MissingAuthenticationTokenException"
    assert answer.json()["message"] == "Missing Authentication Token"


@pytest.mark.parametrize(
    ("key", "secret", "code"),
    [
        ("test", "wrong-secret", "InvalidSignatureException"),
        ("AKIAUNKNOWN", "test", "UnrecognizedClientException"),
    ],
)
def test_wrongly_signed_sagemaker_call_is_refused(emulator, key, secret, code):
    answer = _signed_post(emulator.url, "SageMaker.ListModels", b"{}", key, secret)
    assert answer.status_code == 400
    assert answer.json()["__type"] == code


def test_signature_for_another_service_is_refused(emulator):
    answer = _signed_post(emulator.url, "SageMaker.ListModels", b"{}", "test", "test", service="s3")
    assert answer.json()["__type"] == "InvalidSignatureException"
    assert answer.json()["message"] == "Credential should be scoped to correct service: 'sagemaker'."


def test_expired_signature_is_refused(emulator):
    then = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=30)
    answer = _signed_post(emulator.url, "SageMaker.ListModels", b"{}", "test", "test", when=then)
    assert answer.json()["__type"] == "InvalidSignatureException"
    assert answer.json()["message"].startswith("Signature expired:")


def test_correctly_signed_request_passes(emulator):
    answer = _signed_post(emulator.url, "SageMaker.ListModels", b"{}", "test", "test")
    assert answer.status_code == 200, answer.text
    assert "Models" in answer.json()


def test_boto3_reports_refusal_as_client_error(emulator):
    bad = boto3.Session(aws_access_key_id="test", aws_secret_access_key="nope", region_name="us-east-1")
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        bad.client("sagemaker", endpoint_url=emulator.url).list_models()
    assert raised.value.response["Error"]["Code"] == "InvalidSignatureException"


def test_unsigned_runtime_call_is_refused_with_403(emulator):
    answer = requests.post(
        f"{emulator.url}/endpoints/anything/invocations",
        data=b"1,2",
        headers={"Content-Type": "text/csv"},
        timeout=5,
    )
    assert answer.status_code == 403
    assert answer.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
