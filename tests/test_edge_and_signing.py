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


def test_aws_endpoint_url_alone_is_enough(emulator, client, bucket, monkeypatch):
    """Clients configured only by AWS_ENDPOINT_URL reach the same emulator: S3 and signed SageMaker."""
    client("s3").put_object(Bucket=bucket, Key="endpoint-url.txt", Body=b"same backend")
    monkeypatch.setenv("AWS_ENDPOINT_URL", emulator.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    session = boto3.Session(region_name="us-east-1")
    assert (
        session.client("s3").get_object(Bucket=bucket, Key="endpoint-url.txt")["Body"].read()
        == b"same backend"
    )
    sagemaker = session.client("sagemaker")
    assert sagemaker.meta.endpoint_url == emulator.url
    with pytest.raises(botocore.exceptions.ClientError) as raised:  # a signed call the emulator answers
        sagemaker.describe_model(ModelName="endpoint-url-check")
    assert raised.value.response["Error"]["Message"].startswith('Could not find model "')


def test_localstack_client_works(emulator, client, bucket, monkeypatch):
    """LocalStack-style clients work unchanged, given the emulator's keys (SageMaker checks signatures)."""
    import localstack_client.session

    client("s3").put_object(Bucket=bucket, Key="localstack.txt", Body=b"same backend")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    session = localstack_client.session.Session(
        aws_access_key_id="test",
        aws_secret_access_key="test",
        localstack_host=emulator.url.removeprefix("http://"),
        region_name="us-east-1",
    )
    assert (
        session.client("s3").get_object(Bucket=bucket, Key="localstack.txt")["Body"].read() == b"same backend"
    )
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        session.client("sagemaker").describe_model(ModelName="localstack-check")
    assert raised.value.response["Error"]["Message"].startswith('Could not find model "')
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


def test_account_region_and_keys_come_from_the_settings(monkeypatch, tmp_path):
    """SAGELOCAL_ACCOUNT_ID/_REGION/_ACCESS_KEY_ID/_SECRET_ACCESS_KEY: ARNs, identity and the keys
    SageMaker accepts follow them (an emulator of its own, not the session's)."""
    from emulation import Emulator, EmulatorConfig

    settings = {
        "SAGELOCAL_ACCOUNT_ID": "123456789012",
        "SAGELOCAL_REGION": "eu-west-1",
        "SAGELOCAL_ACCESS_KEY_ID": "AKIASAGELOCALTEST",
        "SAGELOCAL_SECRET_ACCESS_KEY": "not-the-default",
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    with Emulator(EmulatorConfig(port=0, data_dir=tmp_path)) as emulator:
        health = requests.get(f"{emulator.url}/_sagelocal/health", timeout=5).json()
        assert (health["account"], health["region"]) == ("123456789012", "eu-west-1")
        session = boto3.Session(
            aws_access_key_id="AKIASAGELOCALTEST",
            aws_secret_access_key="not-the-default",
            region_name="eu-west-1",
        )
        sagemaker = session.client("sagemaker", endpoint_url=emulator.url)
        created = sagemaker.create_model(
            ModelName="settings-check",
            ExecutionRoleArn="arn:aws:iam::123456789012:role/Role",
            PrimaryContainer={
                "Image": "683313688378.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-xgboost:1.7-1"
            },
        )
        assert created["ModelArn"] == "arn:aws:sagemaker:eu-west-1:123456789012:model/settings-check"
        assert (
            session.client("sts", endpoint_url=emulator.url).get_caller_identity()["Account"]
            == "123456789012"
        )
        defaults = boto3.Session(
            aws_access_key_id="test", aws_secret_access_key="test", region_name="eu-west-1"
        )
        with pytest.raises(botocore.exceptions.ClientError) as raised:
            defaults.client("sagemaker", endpoint_url=emulator.url).list_models()
        assert raised.value.response["Error"] == {
            "Code": "UnrecognizedClientException",
            "Message": "The security token included in the request is invalid.",
        }
