"""Attacks on the emulator's one port, each of which must fail safe (issue 9).

A client on the same machine must not get past the edge gate without the emulator's keys or keys
STS issued: every service refuses unsigned, wrongly signed, stale, altered and smuggled requests
with its own error; bodies are bounded while they are read; nothing reaches moto's SageMaker.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
import socket
import time
import uuid
import zlib

import boto3
import botocore.auth
import pytest
import requests
from botocore import UNSIGNED
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum
from conftest import lambda_package

REGION = "us-east-1"
NO_RETRIES = Config(retries={"max_attempts": 0})

# (client, call) for one read-only request per service family, and the code each answers for:
# (unsigned, wrong secret, unknown key, stale clock)
SERVICES = {
    "s3": (lambda c: c.list_buckets(), ("AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "RequestTimeTooSkewed")),
    "iam": (lambda c: c.list_roles(), ("MissingAuthenticationToken", "SignatureDoesNotMatch", "InvalidClientTokenId", "SignatureDoesNotMatch")),
    "sts": (lambda c: c.get_caller_identity(), ("MissingAuthenticationToken", "SignatureDoesNotMatch", "InvalidClientTokenId", "SignatureDoesNotMatch")),
    "logs": (lambda c: c.describe_log_groups(), ("MissingAuthenticationTokenException", "InvalidSignatureException", "UnrecognizedClientException", "InvalidSignatureException")),
    "lambda": (lambda c: c.list_functions(), ("MissingAuthenticationTokenException", "InvalidSignatureException", "UnrecognizedClientException", "InvalidSignatureException")),
    "apigateway": (lambda c: c.get_rest_apis(), ("MissingAuthenticationTokenException", "InvalidSignatureException", "UnrecognizedClientException", "InvalidSignatureException")),
    "sagemaker": (lambda c: c.list_models(), ("MissingAuthenticationTokenException", "InvalidSignatureException", "UnrecognizedClientException", "InvalidSignatureException")),
    "sagemaker-runtime": (
        lambda c: c.invoke_endpoint(EndpointName="no-such-endpoint", Body=b"1,2"),
        ("MissingAuthenticationTokenException", "InvalidSignatureException", "UnrecognizedClientException", "InvalidSignatureException"),
    ),
}  # fmt: skip
LAMBDA_INVOKE = (lambda c: c.invoke(FunctionName="no-such-function", Payload=b"{}"), SERVICES["lambda"][1])


def _client(emulator, service, key="test", secret="test", token=None, region=REGION, signed=True):
    session = boto3.Session(
        aws_access_key_id=key, aws_secret_access_key=secret, aws_session_token=token, region_name=region
    )
    config = NO_RETRIES if signed else NO_RETRIES.merge(Config(signature_version=UNSIGNED))
    return session.client(service, endpoint_url=emulator.url, config=config)


def _code(call, client) -> str:
    with pytest.raises(ClientError) as refused:
        call(client)
    return refused.value.response["Error"]["Code"]


CASES = [*SERVICES.items(), ("lambda-invoke", LAMBDA_INVOKE)]


@pytest.mark.parametrize(("service", "case"), CASES, ids=[name for name, _ in CASES])
def test_unsigned_request_is_refused_by_every_service(emulator, service, case):
    call, codes = case
    assert _code(call, _client(emulator, service.replace("-invoke", ""), signed=False)) == codes[0]


@pytest.mark.parametrize(("service", "case"), CASES, ids=[name for name, _ in CASES])
def test_wrong_secret_is_refused_by_every_service(emulator, service, case):
    call, codes = case
    assert _code(call, _client(emulator, service.replace("-invoke", ""), secret="not-the-secret")) == codes[1]


@pytest.mark.parametrize(("service", "case"), CASES, ids=[name for name, _ in CASES])
def test_unknown_access_key_is_refused_by_every_service(emulator, service, case):
    call, codes = case
    assert (
        _code(call, _client(emulator, service.replace("-invoke", ""), key="AKIANOTAKEY000000000")) == codes[2]
    )


@pytest.mark.parametrize(("service", "case"), CASES, ids=[name for name, _ in CASES])
def test_stale_signature_is_refused_by_every_service(emulator, service, case, monkeypatch):
    call, codes = case
    then = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(minutes=30)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: then)
    assert _code(call, _client(emulator, service.replace("-invoke", ""))) == codes[3]


def test_unsigned_iam_write_changes_nothing(emulator, client):
    anonymous = _client(emulator, "iam", signed=False)
    with pytest.raises(ClientError):
        anonymous.create_role(RoleName="ghost-role", AssumeRolePolicyDocument="{}")
    names = [role["RoleName"] for role in client("iam").list_roles()["Roles"]]
    assert "ghost-role" not in names


def test_region_that_does_not_exist_is_refused(emulator):
    assert _code(lambda c: c.list_functions(), _client(emulator, "lambda", region="xx-nowhere-9")) == (
        "InvalidSignatureException"
    )


def test_sagemaker_refuses_another_region_than_its_own(emulator):
    other = "eu-west-1" if emulator.config.region != "eu-west-1" else "us-west-2"
    with pytest.raises(ClientError) as refused:
        _client(emulator, "sagemaker", region=other).list_models()
    assert refused.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert (
        refused.value.response["Error"]["Message"]
        == f"Credential should be scoped to a valid region, not '{other}'."
    )


# -- requests built by hand: altered bodies, smuggled hashes, aws-chunked -----------------------------
def _sign(request: AWSRequest, service: str, key="test", secret="test", token=None) -> str:
    """Sign like botocore does, honouring an X-Amz-Content-SHA256 already set; returns the signature."""
    signer = SigV4Auth(Credentials(key, secret, token), service, REGION)
    request.context["timestamp"] = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    request.headers["X-Amz-Date"] = request.context["timestamp"]
    if token:
        request.headers["X-Amz-Security-Token"] = token
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    headers = signer.headers_to_sign(request)
    request.headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={signer.scope(request)}, "
        f"SignedHeaders={signer.signed_headers(headers)}, Signature={signature}"
    )
    return signature


def _send(request: AWSRequest, body) -> requests.Response:
    headers = {k: v for k, v in request.headers.items()}
    return requests.request(request.method, request.url, data=body, headers=headers, timeout=30)


def test_altered_body_is_refused(emulator):
    request = AWSRequest(
        method="POST",
        url=emulator.url,
        data=b'{"MaxResults": 1}',
        headers={"X-Amz-Target": "SageMaker.ListModels", "Content-Type": "application/x-amz-json-1.1"},
    )
    _sign(request, "sagemaker")
    answer = _send(request, b'{"MaxResults": 2}')
    assert answer.status_code == 400
    assert answer.json()["__type"] == "InvalidSignatureException"


def test_smuggled_payload_hash_is_refused(emulator, client):
    """The attack: sign a harmless body, declare its hash, send another body."""
    harmless = b'{"FunctionName": "no-such-function"}'
    request = AWSRequest(
        method="POST",
        url=f"{emulator.url}/2015-03-31/functions/no-such-function/invocations",
        data=harmless,
        headers={"X-Amz-Content-SHA256": hashlib.sha256(harmless).hexdigest()},
    )
    _sign(request, "lambda")
    answer = _send(request, b'{"evil": true}')
    assert answer.status_code == 403
    assert answer.headers["x-amzn-ErrorType"] == "InvalidSignatureException"


def test_s3_body_not_matching_its_declared_hash_is_refused(emulator, client, bucket):
    declared = b"what was signed"
    request = AWSRequest(
        method="PUT",
        url=f"{emulator.url}/{bucket}/smuggled.txt",
        data=declared,
        headers={"X-Amz-Content-SHA256": hashlib.sha256(declared).hexdigest()},
    )
    _sign(request, "s3")
    answer = _send(request, b"what was sent!!")
    assert answer.status_code == 400
    assert "<Code>XAmzContentSHA256Mismatch</Code>" in answer.text
    with pytest.raises(ClientError):
        client("s3").head_object(Bucket=bucket, Key="smuggled.txt")


def _chunk_signature(secret, timestamp, scope, previous, data):
    key = f"AWS4{secret}".encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    string_to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256-PAYLOAD",
            timestamp,
            scope,
            previous,
            hashlib.sha256(b"").hexdigest(),
            hashlib.sha256(data).hexdigest(),
        ]
    )
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def _signed_chunked_put(emulator, bucket, key, chunks, *, tamper=False):
    data = b"".join(chunks)
    request = AWSRequest(
        method="PUT",
        url=f"{emulator.url}/{bucket}/{key}",
        headers={
            "X-Amz-Content-SHA256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            "Content-Encoding": "aws-chunked",
            "X-Amz-Decoded-Content-Length": str(len(data)),
        },
    )
    previous = _sign(request, "s3")
    timestamp = request.headers["X-Amz-Date"]
    scope = f"{timestamp[:8]}/{REGION}/s3/aws4_request"
    body = b""
    for chunk in [*chunks, b""]:
        signature = _chunk_signature("test", timestamp, scope, previous, chunk)
        sent = chunk.upper() if tamper and chunk else chunk
        body += f"{len(chunk):x};chunk-signature={signature}\r\n".encode() + sent + b"\r\n"
        previous = signature
    return _send(request, body)


def test_s3_signed_streaming_upload_is_verified_chunk_by_chunk(emulator, client, bucket):
    chunks = [b"a" * 65536, b"b" * 1000]
    assert _signed_chunked_put(emulator, bucket, "streamed.bin", chunks).status_code == 200
    assert client("s3").get_object(Bucket=bucket, Key="streamed.bin")["Body"].read() == b"".join(chunks)
    refused = _signed_chunked_put(emulator, bucket, "tampered.bin", chunks, tamper=True)
    assert refused.status_code == 403
    assert "<Code>SignatureDoesNotMatch</Code>" in refused.text
    with pytest.raises(ClientError):
        client("s3").head_object(Bucket=bucket, Key="tampered.bin")


def _unsigned_trailer_put(emulator, bucket, key, data, checksum_of=None):
    """What botocore sends for PutObject over HTTPS: aws-chunked with a trailing CRC32."""
    body = AwsChunkedWrapper(
        io.BytesIO(checksum_of if checksum_of is not None else data),
        checksum_cls=Crc32Checksum,
        checksum_name="x-amz-checksum-crc32",
    ).read()
    if checksum_of is not None:  # same framing and checksum, different data of the same length
        body = body.replace(checksum_of, data)
    request = AWSRequest(
        method="PUT",
        url=f"{emulator.url}/{bucket}/{key}",
        headers={
            "X-Amz-Content-SHA256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            "Content-Encoding": "aws-chunked",
            "X-Amz-Decoded-Content-Length": str(len(data)),
            "X-Amz-Trailer": "x-amz-checksum-crc32",
        },
    )
    _sign(request, "s3")
    return _send(request, body)


def test_s3_unsigned_streaming_upload_is_checked_against_its_trailing_checksum(emulator, client, bucket):
    data = b"trailing checksum " * 1000
    assert _unsigned_trailer_put(emulator, bucket, "trailer.bin", data).status_code == 200
    assert client("s3").get_object(Bucket=bucket, Key="trailer.bin")["Body"].read() == data
    forged = _unsigned_trailer_put(emulator, bucket, "forged.bin", b"X" * len(data), checksum_of=data)
    assert forged.status_code == 400
    assert "<Code>BadDigest</Code>" in forged.text
    assert zlib.crc32(data) != zlib.crc32(b"X" * len(data))


# -- presigned URLs ---------------------------------------------------------------------------------
@pytest.mark.parametrize("signature_version", ["s3v4", None])  # None: boto3's default for S3 (SigV2)
def test_presigned_get_works_then_expires(emulator, client, bucket, signature_version):
    client("s3").put_object(Bucket=bucket, Key="shared.txt", Body=b"for your eyes")
    signer = boto3.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION).client(
        "s3", endpoint_url=emulator.url, config=Config(signature_version=signature_version)
    )
    url = signer.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "shared.txt"}, ExpiresIn=2
    )
    answer = requests.get(url, timeout=5)
    assert answer.status_code == 200
    assert answer.content == b"for your eyes"
    tampered = url.replace("shared.txt", "other.txt")
    assert requests.get(tampered, timeout=5).status_code == 403
    time.sleep(3.1)
    expired = requests.get(url, timeout=5)
    assert expired.status_code == 403
    assert "<Code>AccessDenied</Code>" in expired.text
    assert "<Message>Request has expired</Message>" in expired.text


# -- STS-issued credentials -----------------------------------------------------------------------
def _assume(client, role="sts-session-role"):
    arn = client("iam").create_role(RoleName=role, AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    return client("sts").assume_role(RoleArn=arn, RoleSessionName="session")["Credentials"]


def test_assumed_role_credentials_are_accepted_with_their_token_only(emulator, client):
    issued = _assume(client)
    key, secret, token = issued["AccessKeyId"], issued["SecretAccessKey"], issued["SessionToken"]
    identity = _client(emulator, "sts", key, secret, token).get_caller_identity()
    assert ":assumed-role/sts-session-role/session" in identity["Arn"]
    assert (
        _code(lambda c: c.list_models(), _client(emulator, "sagemaker", key, secret))
        == "UnrecognizedClientException"
    )
    assert (
        _code(lambda c: c.list_buckets(), _client(emulator, "s3", key, secret, token + "x")) == "InvalidToken"
    )
    # the role has no policies: signed correctly, yet not allowed
    assert (
        _code(lambda c: c.list_models(), _client(emulator, "sagemaker", key, secret, token))
        == "AccessDeniedException"
    )


def test_expired_session_is_refused(in_process_emulator, client):
    from moto.sts.models import sts_backends

    issued = _assume(client, "short-lived-role")
    for role in sts_backends[in_process_emulator.config.account_id]["aws"].assumed_roles:
        if role.access_key_id == issued["AccessKeyId"]:
            role.expiration = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(seconds=1)
    expired = _client(
        in_process_emulator, "logs", issued["AccessKeyId"], issued["SecretAccessKey"], issued["SessionToken"]
    )
    assert _code(lambda c: c.describe_log_groups(), expired) == "ExpiredTokenException"


def test_get_session_token_issues_working_credentials(emulator, client):
    issued = client("sts").get_session_token(DurationSeconds=900)["Credentials"]
    assert issued["AccessKeyId"] != "test"
    session = _client(
        emulator, "sagemaker", issued["AccessKeyId"], issued["SecretAccessKey"], issued["SessionToken"]
    )
    assert "Models" in session.list_models()
    other = client("sts").get_session_token()["Credentials"]
    assert other["AccessKeyId"] != issued["AccessKeyId"]


# -- routing gaps ---------------------------------------------------------------------------------
@pytest.mark.parametrize("target", ["sagemaker.CreateModel", "SAGEMAKER.CreateModel"])
def test_unsigned_sagemaker_target_in_any_case_is_refused(emulator, target):
    answer = requests.post(
        emulator.url,
        data=b'{"ModelName": "ghost", "ExecutionRoleArn": "arn:aws:iam::000000000000:role/r"}',
        headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"},
        timeout=5,
    )
    assert answer.status_code == 400
    assert answer.json()["__type"] == "MissingAuthenticationTokenException"


def test_sagemaker_target_in_any_case_never_reaches_moto(in_process_emulator):
    from moto.sagemaker.models import sagemaker_backends

    request = AWSRequest(
        method="POST",
        url=in_process_emulator.url,
        data=b"{}",
        headers={"X-Amz-Target": "sagemaker.ListModels", "Content-Type": "application/x-amz-json-1.1"},
    )
    _sign(request, "sagemaker")
    answer = _send(request, b"{}")
    assert answer.status_code in (200, 400)
    assert not sagemaker_backends[in_process_emulator.config.account_id][REGION]._models


def test_runtime_request_in_another_scope_never_gets_a_canned_answer(emulator):
    request = AWSRequest(method="POST", url=f"{emulator.url}/endpoints/ghost/invocations", data=b"1,2")
    _sign(request, "runtime.sagemaker")
    answer = _send(request, b"1,2")
    assert answer.status_code == 403
    assert answer.headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    assert (
        _code(
            lambda c: c.invoke_endpoint(EndpointName="ghost", Body=b"1,2"),
            _client(emulator, "sagemaker-runtime"),
        )
        == "ValidationError"
    )


# -- bodies bounded while read ----------------------------------------------------------------------
def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def _send_chunked(url: str, path: str, total: int, headers: dict[str, str]) -> tuple[int, int]:
    """Stream ``total`` bytes chunked; (status code, bytes the server took before answering)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Transfer-Encoding: chunked"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    block = b"x" * (1024 * 1024)
    sent = 0
    try:
        while sent < total:
            sock.sendall(b"%x\r\n" % len(block) + block + b"\r\n")
            sent += len(block)
        sock.sendall(b"0\r\n\r\n")
    except OSError:  # the server answered and closed while we were still sending
        pass
    answer = b""
    try:
        while chunk := sock.recv(65536):
            answer += chunk
    except OSError:
        pass
    sock.close()
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0
    return status, sent


def test_unsigned_300_mb_chunked_request_costs_no_memory(in_process_emulator):
    before = _rss_kib()
    status, sent = _send_chunked(in_process_emulator.url, "/", 300 * 1024 * 1024, {})
    grown_mib = (_rss_kib() - before) / 1024
    assert status == 403  # S3's AccessDenied, answered before the body
    assert sent < 300 * 1024 * 1024  # the emulator stopped reading; the client could not finish
    assert grown_mib < 8, f"RSS grew by {grown_mib:.1f} MiB"


def test_chunked_invoke_endpoint_over_6_mb_is_refused(emulator):
    request = AWSRequest(method="POST", url=f"{emulator.url}/endpoints/any/invocations", data=b"")
    _sign(request, "sagemaker")
    headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
    status, sent = _send_chunked(emulator.url, "/endpoints/any/invocations", 50 * 1024 * 1024, headers)
    assert status == 413
    assert sent < 50 * 1024 * 1024


def test_content_length_over_the_limit_is_refused_before_reading(emulator):
    request = AWSRequest(method="POST", url=f"{emulator.url}/2015-03-31/functions/f/invocations", data=b"")
    _sign(request, "lambda")
    headers = {k: v for k, v in request.headers.items()}
    headers["Content-Length"] = str(7 * 1024 * 1024)
    host, port = emulator.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head = ["POST /2015-03-31/functions/f/invocations HTTP/1.1", f"Host: {host}:{port}"]
        head += [f"{k}: {v}" for k, v in headers.items() if k.lower() != "host"]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"RequestEntityTooLargeException" in answer


# -- safe defaults ---------------------------------------------------------------------------------
def test_listening_on_all_interfaces_prints_a_warning(capsys):
    from workflows.cli import warn_if_exposed

    warn_if_exposed("127.0.0.1")
    assert capsys.readouterr().err == ""
    warn_if_exposed("0.0.0.0")
    assert "WARNING: listening on 0.0.0.0" in capsys.readouterr().err


# -- the aws CLI through the gate -------------------------------------------------------------------
def _aws(emulator, *args, secret="test"):
    import os
    import subprocess

    env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY=secret, AWS_DEFAULT_REGION=REGION)
    env.pop("AWS_ENDPOINT_URL", None)
    return subprocess.run(
        ["aws", "--endpoint-url", emulator.url, *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_aws_cli_works_through_the_gate(emulator, tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(b"z" * (9 * 1024 * 1024))  # above the CLI's 8 MB threshold: a multipart upload
    assert _aws(emulator, "s3", "mb", "s3://cli-gate-bucket").returncode == 0
    assert _aws(emulator, "s3", "cp", str(big), "s3://cli-gate-bucket/big.bin").returncode == 0
    listed = _aws(emulator, "s3", "ls", "s3://cli-gate-bucket")
    assert "9437184 big.bin" in listed.stdout
    url = _aws(emulator, "s3", "presign", "s3://cli-gate-bucket/big.bin", "--expires-in", "60").stdout.strip()
    assert requests.get(url, timeout=30).content == big.read_bytes()
    assert '"Models"' in _aws(emulator, "sagemaker", "list-models").stdout
    refused = _aws(emulator, "sagemaker", "list-models", secret="wrong")
    assert refused.returncode != 0
    assert "InvalidSignatureException" in refused.stderr


# -- containment: S3 keys and archive members that would escape their directory ----------------------
XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
ROLE = "arn:aws:iam::000000000000:role/SageLocalExecutionRole"


def _wait(describe, key, done, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = describe()
        if described[key] in done:
            return described
        time.sleep(0.05)
    raise AssertionError(f"still {described[key]}")


def test_training_channel_key_that_escapes_fails_the_job_and_writes_nothing(client, bucket, tmp_path):
    outside = tmp_path / "escaped.csv"
    s3 = client("s3")
    s3.put_object(Bucket=bucket, Key="traversal/train/fine.csv", Body=b"1,2\n")
    evil_key = "traversal/train/" + "../" * 30 + str(outside).lstrip("/")
    s3.put_object(Bucket=bucket, Key=evil_key, Body=b"1,2\n")
    assert s3.get_object(Bucket=bucket, Key=evil_key)["Body"].read() == b"1,2\n"  # S3 keeps the key as is
    sagemaker = client("sagemaker")
    name = f"traversal-{uuid.uuid4().hex[:8]}"
    sagemaker.create_training_job(
        TrainingJobName=name,
        RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": XGBOOST_IMAGE, "TrainingInputMode": "File"},
        OutputDataConfig={"S3OutputPath": f"s3://{bucket}/traversal/output"},
        ResourceConfig={"InstanceCount": 1, "InstanceType": "ml.m4.xlarge", "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
        HyperParameters={"num_round": "2"},
        InputDataConfig=[
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/traversal/train"}
                },
                "ContentType": "text/csv",
            }
        ],
    )
    described = _wait(
        lambda: sagemaker.describe_training_job(TrainingJobName=name),
        "TrainingJobStatus",
        ("Completed", "Failed"),
    )
    assert described["TrainingJobStatus"] == "Failed"
    assert f"s3://{bucket}/{evil_key}" in described["FailureReason"]
    assert "outside /opt/ml/input/data/train" in described["FailureReason"]
    assert not outside.exists()


def test_model_archive_member_that_escapes_fails_the_endpoint(client, bucket, tmp_path):
    import tarfile

    outside = tmp_path / "planted.txt"
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        member = tarfile.TarInfo("../" * 30 + str(outside).lstrip("/"))
        member.size = 3
        tar.addfile(member, io.BytesIO(b"pwn"))
    client("s3").put_object(Bucket=bucket, Key="traversal/model.tar.gz", Body=archive.getvalue())
    sagemaker = client("sagemaker")
    name = f"traversal-{uuid.uuid4().hex[:8]}"
    url = f"s3://{bucket}/traversal/model.tar.gz"
    sagemaker.create_model(
        ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": XGBOOST_IMAGE, "ModelDataUrl": url}
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {"VariantName": "v", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m4.xlarge"}
        ],
    )
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)
    described = _wait(
        lambda: sagemaker.describe_endpoint(EndpointName=name), "EndpointStatus", ("InService", "Failed")
    )
    assert described["EndpointStatus"] == "Failed"
    assert url in described["FailureReason"] and "outside /opt/ml/model" in described["FailureReason"]
    assert not outside.exists()
    sagemaker.delete_endpoint(EndpointName=name)


# -- typed requests: wrong JSON types and out-of-range values get AWS's 400s, never a 500 --------------
def _sagemaker_call(emulator, target: str, body: bytes) -> requests.Response:
    request = AWSRequest(
        method="POST",
        url=emulator.url,
        data=body,
        headers={"X-Amz-Target": f"SageMaker.{target}", "Content-Type": "application/x-amz-json-1.1"},
    )
    _sign(request, "sagemaker")
    return _send(request, body)


def _training_job(**changes) -> dict:
    job = {
        "TrainingJobName": f"typed-{uuid.uuid4().hex[:8]}",
        "RoleArn": ROLE,
        "AlgorithmSpecification": {"TrainingImage": XGBOOST_IMAGE, "TrainingInputMode": "File"},
        "OutputDataConfig": {"S3OutputPath": "s3://sagelocal-tests/typed/output"},
        "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.m4.xlarge", "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    }
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        target = job
        for parent in parents:
            target = target[parent]
        target[leaf] = value
    return job


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (b"[1, 2]", "SerializationException", "Start of list found where not expected"),
        (b'"text"', "SerializationException", "STRING_VALUE cannot be converted to Structure"),
        (
            _training_job(ResourceConfig__InstanceCount="one"),
            "SerializationException",
            "STRING_VALUE cannot be converted to Integer",
        ),
        (
            _training_job(ResourceConfig__InstanceCount=10**12),
            "SerializationException",
            "NUMBER_VALUE 1000000000000 is out of range for Integer",
        ),
        (
            _training_job(StoppingCondition__MaxRuntimeInSeconds=1e30),
            "SerializationException",
            "NUMBER_VALUE cannot be converted to Integer",
        ),
        (_training_job(RoleArn=["a"]), "SerializationException", "Start of list found where not expected"),
        (
            _training_job(HyperParameters={"eta": 0.1}),
            "SerializationException",
            "NUMBER_VALUE cannot be converted to String",
        ),
        (
            _training_job(StoppingCondition__MaxRuntimeInSeconds=3_000_000),
            "ValidationException",
            "1 validation error detected: Value '3000000' at 'stoppingCondition.maxRuntimeInSeconds' failed to "
            "satisfy constraint: Member must have value less than or equal to 2419200",
        ),
    ],
    ids=[
        "array-body",
        "string-body",
        "string-for-int",
        "int-overflow",
        "huge-float",
        "list-for-string",
        "number-in-map",
        "runtime-over-28-days",
    ],
)
def test_wrongly_typed_request_gets_aws_400(emulator, body, code, message):
    import json

    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    answer = _sagemaker_call(emulator, "CreateTrainingJob", raw)
    assert answer.status_code == 400, answer.text
    assert answer.json() == {"__type": code, "message": message}


@pytest.mark.parametrize(
    ("method", "path", "service", "headers", "body", "status", "code"),
    [
        (
            "POST",
            "/",
            "logs",
            {"X-Amz-Target": "Logs_20140328.CreateLogGroup"},
            b"[1]",
            400,
            "SerializationException",
        ),
        (
            "POST",
            "/",
            "logs",
            {"X-Amz-Target": "Logs_20140328.CreateLogGroup"},
            b'{"logGroupName": 5}',
            400,
            "SerializationException",
        ),
        (
            "POST",
            "/2015-03-31/functions",
            "lambda",
            {},
            b'{"FunctionName": 5}',
            400,
            "InvalidRequestContentException",
        ),
        ("POST", "/restapis", "apigateway", {}, b"[1]", 400, "SerializationException"),
        ("POST", "/restapis", "apigateway", {}, b"{}", 400, "ValidationException"),
    ],
    ids=[
        "logs-array",
        "logs-number-for-string",
        "lambda-number-for-string",
        "apigateway-array",
        "apigateway-missing-name",
    ],
)
def test_wrongly_typed_requests_to_moto_served_apis_get_aws_400(
    emulator, method, path, service, headers, body, status, code
):
    content_type = "application/x-amz-json-1.1" if "X-Amz-Target" in headers else "application/json"
    request = AWSRequest(
        method=method,
        url=f"{emulator.url}{path}",
        data=body,
        headers={**headers, "Content-Type": content_type},
    )
    _sign(request, service)
    answer = _send(request, body)
    assert answer.status_code == status, answer.text
    assert answer.json()["__type"] == code
    assert "Traceback" not in answer.text and "Error:" not in answer.json()["message"]


# -- IAM where AWS enforces it at run time --------------------------------------------------------
def _zip(source: str) -> bytes:
    return lambda_package({"app.py": source})  # world-readable, as Lambda needs (and the emulator checks)


CALLER_SOURCE = """
import boto3, botocore.exceptions

def handler(event, context):
    try:
        boto3.client("sagemaker-runtime").invoke_endpoint(EndpointName=event["endpoint"], Body=b"1,2")
    except botocore.exceptions.ClientError as error:
        return {"code": error.response["Error"]["Code"], "message": error.response["Error"]["Message"]}
    return {"code": "none"}
"""


def _create_function(client, **request) -> None:
    """CreateFunction with a role made a moment ago: retried while IAM propagates the role, as on
    AWS (the emulator refuses a brand-new role for a moment, as Lambda does)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            client("lambda").create_function(**request)
            return
        except client("lambda").exceptions.InvalidParameterValueException as error:
            if "cannot be assumed" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _function_with_role(client, name: str, statements: list[dict]) -> str:
    import json

    iam = client("iam")
    role = iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument="{}")["Role"]
    if statements:
        iam.put_role_policy(
            RoleName=role["RoleName"],
            PolicyName="calls",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}),
        )
    _create_function(
        client,
        FunctionName=name,
        Runtime="python3.12",
        Role=role["Arn"],
        Handler="app.handler",
        Code={"ZipFile": _zip(CALLER_SOURCE)},
        Timeout=30,
    )
    client("lambda").get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 0.1})
    return role["RoleName"]


def _invoke(client, name: str, payload: dict) -> dict:
    import json

    answer = client("lambda").invoke(FunctionName=name, Payload=json.dumps(payload).encode())
    assert "FunctionError" not in answer, answer["Payload"].read()
    return json.loads(answer["Payload"].read())


def test_role_without_invoke_endpoint_gets_access_denied_inside_the_function(client):
    name = f"no-invoke-{uuid.uuid4().hex[:6]}"
    role = _function_with_role(client, name, [{"Effect": "Allow", "Action": "logs:*", "Resource": "*"}])
    result = _invoke(client, name, {"endpoint": "sentiment"})
    assert result["code"] == "AccessDeniedException"
    assert result["message"] == (
        f"User: arn:aws:sts::000000000000:assumed-role/{role}/{name} is not authorized to perform: "
        "sagemaker:InvokeEndpoint on resource: arn:aws:sagemaker:us-east-1:000000000000:endpoint/sentiment "
        "because no identity-based policy allows the sagemaker:InvokeEndpoint action"
    )


def test_role_allowed_on_one_endpoint_reaches_that_endpoint_only(client):
    name = f"one-endpoint-{uuid.uuid4().hex[:6]}"
    endpoint_arn = "arn:aws:sagemaker:us-east-1:000000000000:endpoint/allowed-endpoint"
    _function_with_role(
        client, name, [{"Effect": "Allow", "Action": "sagemaker:InvokeEndpoint", "Resource": endpoint_arn}]
    )
    # past the gate: the runtime itself answers (no such endpoint here)
    assert _invoke(client, name, {"endpoint": "allowed-endpoint"})["code"] == "ValidationError"
    assert _invoke(client, name, {"endpoint": "other-endpoint"})["code"] == "AccessDeniedException"


def test_enforcement_can_be_turned_off(in_process_emulator, client, monkeypatch):
    name = f"unenforced-{uuid.uuid4().hex[:6]}"
    _function_with_role(client, name, [])
    monkeypatch.setenv("SAGELOCAL_ENFORCE_IAM", "0")
    assert _invoke(client, name, {"endpoint": "anything"})["code"] == "ValidationError"


def _api_to(client, function_name: str) -> str:
    apigw = client("apigateway")
    api_id = apigw.create_rest_api(name=f"gate-{function_name}")["id"]
    root = apigw.get_resources(restApiId=api_id)["items"][0]["id"]
    apigw.put_method(restApiId=api_id, resourceId=root, httpMethod="POST", authorizationType="NONE")
    arn = client("lambda").get_function(FunctionName=function_name)["Configuration"]["FunctionArn"]
    apigw.put_integration(
        restApiId=api_id,
        resourceId=root,
        httpMethod="POST",
        type="AWS_PROXY",
        integrationHttpMethod="POST",
        uri=f"arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{arn}/invocations",
    )
    apigw.create_deployment(restApiId=api_id, stageName="prod")
    return api_id


ECHO_SOURCE = 'def handler(event, context):\n    return {"statusCode": 200, "body": "reached"}\n'


def test_gateway_without_permission_gets_500_and_a_log_line(in_process_emulator, client, caplog):
    import logging

    name = f"no-permission-{uuid.uuid4().hex[:6]}"
    client("iam").create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument="{}")
    _create_function(
        client,
        FunctionName=name,
        Runtime="python3.12",
        Role=f"arn:aws:iam::000000000000:role/{name}-role",
        Handler="app.handler",
        Code={"ZipFile": _zip(ECHO_SOURCE)},
    )
    client("lambda").get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 0.1})
    api_id = _api_to(client, name)
    url = in_process_emulator.execute_api_url(api_id, "prod") + "/"
    with caplog.at_level(logging.WARNING, logger="sagelocal.apigateway"):
        refused = requests.post(url, data=b"hi", timeout=30)
    assert refused.status_code == 500
    assert refused.json() == {"message": "Internal server error"}
    assert any(
        "Invalid permissions on Lambda function" in r.getMessage() and name in r.getMessage()
        for r in caplog.records
    )

    lambda_client = client("lambda")
    account = "000000000000"
    lambda_client.add_permission(
        FunctionName=name,
        StatementId="other-api",
        Action="lambda:InvokeFunction",
        Principal="apigateway.amazonaws.com",
        SourceArn=f"arn:aws:execute-api:us-east-1:{account}:someotherapi/*/POST/",
    )
    assert requests.post(url, data=b"hi", timeout=30).status_code == 500  # another API's permission
    lambda_client.add_permission(
        FunctionName=name,
        StatementId="this-api",
        Action="lambda:InvokeFunction",
        Principal="apigateway.amazonaws.com",
        SourceArn=f"arn:aws:execute-api:us-east-1:{account}:{api_id}/*/POST/",
    )
    allowed = requests.post(url, data=b"hi", timeout=30)
    assert allowed.status_code == 200 and allowed.text == "reached"


# (service, method, path, headers, signed body, the error code it answers with) for the altered-body matrix
TAMPERING = {
    "iam": ("POST", "/", {"Content-Type": "application/x-www-form-urlencoded"}, b"Action=ListRoles&Version=2010-05-08", "SignatureDoesNotMatch"),
    "sts": ("POST", "/", {"Content-Type": "application/x-www-form-urlencoded"}, b"Action=GetCallerIdentity&Version=2011-06-15", "SignatureDoesNotMatch"),
    "logs": ("POST", "/", {"X-Amz-Target": "Logs_20140328.DescribeLogGroups", "Content-Type": "application/x-amz-json-1.1"}, b"{}", "InvalidSignatureException"),
    "apigateway": ("POST", "/restapis", {"Content-Type": "application/json"}, b'{"name": "harmless"}', "InvalidSignatureException"),
    "lambda": ("POST", "/2015-03-31/functions/no-such-function/invocations", {}, b"{}", "InvalidSignatureException"),
    "sagemaker": ("POST", "/", {"X-Amz-Target": "SageMaker.ListModels", "Content-Type": "application/x-amz-json-1.1"}, b"{}", "InvalidSignatureException"),
    "sagemaker-runtime": ("POST", "/endpoints/no-such-endpoint/invocations", {"Content-Type": "text/csv"}, b"1,2", "InvalidSignatureException"),
}  # fmt: skip


def _error_code(answer: requests.Response) -> str:
    if "x-amzn-ErrorType" in answer.headers:
        return answer.headers["x-amzn-ErrorType"].split(":")[0]
    return answer.text.split("<Code>", 1)[1].split("</Code>", 1)[0]


@pytest.mark.parametrize("smuggle", [False, True], ids=["altered-body", "smuggled-hash"])
@pytest.mark.parametrize("service", list(TAMPERING))
def test_tampered_body_is_refused_by_every_service(emulator, service, smuggle):
    """Sign one body, send another: with the signed body's hash declared in X-Amz-Content-SHA256
    (smuggled) or not (altered). Either way the signature is checked against what arrived."""
    method, path, headers, body, code = TAMPERING[service]
    headers = dict(headers)
    if smuggle:
        headers["X-Amz-Content-SHA256"] = hashlib.sha256(body).hexdigest()
    request = AWSRequest(method=method, url=f"{emulator.url}{path}", data=body, headers=headers)
    _sign(request, "sagemaker" if service == "sagemaker-runtime" else service)
    tampered = (
        body.replace(b"{}", b'{"x": 1}')
        if b"{}" in body
        else body + b"&Tampered=1"
        if b"=" in body
        else body + b",3"
    )
    answer = _send(request, tampered)
    assert answer.status_code in (400, 403), answer.text
    assert _error_code(answer) == code
