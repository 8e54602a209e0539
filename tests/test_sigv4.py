"""SigV4 verification on its own: every refusal with AWS's code and exact message (spec section 6),
and requests botocore signs accepted, down to what the signature covers."""

from __future__ import annotations

import datetime as dt

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from emulation import sigv4

SECRETS = {"AKIDEXAMPLE": "secret"}
NOW = dt.datetime(2026, 3, 4, 12, 0, 0, tzinfo=dt.timezone.utc)
URL = "http://127.0.0.1:4566/endpoints/my-endpoint/invocations?x=1"


def signed(body=b"1,2,3", *, key="AKIDEXAMPLE", secret="secret", service="sagemaker", when=NOW, url=URL,
           headers=None):  # fmt: skip
    given = {
        "Host": url.split("/")[2],
        "Content-Type": "text/csv",
        **(headers or {}),
    }  # Host: as servers see it
    request = AWSRequest(method="POST", url=url, data=body, headers=given)
    request.context["timestamp"] = when.strftime("%Y%m%dT%H%M%SZ")
    signer = SigV4Auth(Credentials(key, secret), service, "us-east-1")
    request.headers["X-Amz-Date"] = request.context["timestamp"]
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    request.headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={key}/{when:%Y%m%d}/us-east-1/{service}/aws4_request, "
        f"SignedHeaders={signer.signed_headers(signer.headers_to_sign(request))}, Signature={signature}"
    )
    return list(request.headers.items())


def verify(headers, body=b"1,2,3", *, url=URL, method="POST", now=NOW, skew=5, service="sagemaker"):
    return sigv4.verify(method=method, url=url, headers=headers, body=body, secrets=SECRETS,
                        expected_service=service, skew_minutes=skew, now=now)  # fmt: skip


def refusal(headers, **kwargs) -> tuple[str, str]:
    with pytest.raises(sigv4.SignatureError) as raised:
        verify(headers, **kwargs)
    return raised.value.code, raised.value.message


def test_a_botocore_signed_request_is_accepted_and_its_scope_returned():
    scope = verify(signed())
    assert scope == sigv4.SignedScope(
        access_key_id="AKIDEXAMPLE",
        date="20260304",
        region="us-east-1",
        service="sagemaker",
        signed_headers=("content-type", "host", "x-amz-date"),
        signature=scope.signature,
    )
    assert len(scope.signature) == 64


def test_the_session_token_is_part_of_the_signature():
    headers = signed(headers={"X-Amz-Security-Token": "token"})
    assert verify(headers).access_key_id == "AKIDEXAMPLE"


@pytest.mark.parametrize(
    "tamper",
    [
        {"body": b"1,2,4"},
        {"url": URL.replace("my-endpoint", "other")},
        {"url": URL.replace("x=1", "x=2")},
        {"method": "PUT"},
    ],
)
def test_what_was_signed_cannot_change(tamper):
    assert refusal(signed(), **tamper) == ("InvalidSignatureException", sigv4.INVALID_SIGNATURE_MESSAGE)


def test_a_signed_header_cannot_change_but_an_unsigned_one_can():
    headers = signed()
    assert verify([*headers, ("X-Unsigned", "anything")]).service == "sagemaker"
    changed = [(k, "text/plain" if k == "Content-Type" else v) for k, v in headers]
    assert refusal(changed)[0] == "InvalidSignatureException"


def test_wrong_secret_unknown_key_and_other_service():
    assert refusal(signed(secret="wrong")) == ("InvalidSignatureException", sigv4.INVALID_SIGNATURE_MESSAGE)
    assert refusal(signed(key="AKIDUNKNOWN")) == (
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    )
    assert refusal(signed(service="s3")) == (
        "InvalidSignatureException",
        "Credential should be scoped to correct service: 'sagemaker'.",
    )


def test_missing_authorization():
    assert refusal([("Content-Type", "text/csv")]) == (
        "MissingAuthenticationTokenException",
        "Missing Authentication Token",
    )


def _with_authorization(value: str):
    return [("X-Amz-Date", NOW.strftime("%Y%m%dT%H%M%SZ")), ("Authorization", value)]


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        ("AWS AKIDEXAMPLE:abc", "Unsupported Authorization Type. Authorization=AWS AKIDEXAMPLE:abc"),
        (
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260304/us-east-1/sagemaker/aws4_request, SignedHeaders",
            "'SignedHeaders' not a valid key=value pair (missing equal-sign) in Authorization header: "
            "'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260304/us-east-1/sagemaker/aws4_request, SignedHeaders'.",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260304/us-east-1/sagemaker/aws4_request",
            "Authorization header requires 'SignedHeaders' parameter. Authorization header requires "
            "'Signature' parameter. Authorization=AWS4-HMAC-SHA256 "
            "Credential=AKIDEXAMPLE/20260304/us-east-1/sagemaker/aws4_request",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260304/us-east-1/sagemaker, SignedHeaders=host, Signature=ab",
            "Credential should be scoped to a valid region. Authorization=AWS4-HMAC-SHA256 "
            "Credential=AKIDEXAMPLE/20260304/us-east-1/sagemaker, SignedHeaders=host, Signature=ab",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260304/us-east-1/sagemaker/aws5_request, "
            "SignedHeaders=host, Signature=ab",
            "Credential should be scoped to a valid region. Authorization=AWS4-HMAC-SHA256 "
            "Credential=AKIDEXAMPLE/20260304/us-east-1/sagemaker/aws5_request, SignedHeaders=host, Signature=ab",
        ),
    ],
)
def test_malformed_authorization_headers(authorization, message):
    assert refusal(_with_authorization(authorization)) == ("IncompleteSignatureException", message)


def test_a_date_header_is_required_and_must_be_iso_basic():
    headers = [(k, v) for k, v in signed() if k != "X-Amz-Date"]
    assert refusal(headers) == (
        "IncompleteSignatureException",
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
    )
    assert refusal([*headers, ("X-Amz-Date", "2026-03-04T12:00:00Z")]) == (
        "IncompleteSignatureException",
        "Date must be in ISO-8601 'basic format'. Got '2026-03-04T12:00:00Z'.",
    )


def test_clock_skew_window_with_the_services_wording():
    headers = signed()
    assert verify(headers, now=NOW + dt.timedelta(minutes=5)).service == "sagemaker"  # the edge of the window
    assert verify(headers, now=NOW - dt.timedelta(minutes=5)).service == "sagemaker"
    assert refusal(headers, now=NOW + dt.timedelta(minutes=5, seconds=1)) == (
        "InvalidSignatureException",
        "Signature expired: 20260304T120000Z is now earlier than 20260304T120001Z (20260304T120501Z - 5 min.)",
    )
    assert refusal(headers, now=NOW - dt.timedelta(minutes=15, seconds=1), skew=15) == (
        "InvalidSignatureException",
        "Signature not yet current: 20260304T120000Z is still later than 20260304T115959Z "
        "(20260304T114459Z + 15 min.)",
    )


def test_credential_scope_is_for_routing_only():
    assert sigv4.credential_scope(dict(signed(service="lambda"))["Authorization"]) == ("lambda", "us-east-1")
    assert sigv4.credential_scope(None) is None
    assert sigv4.credential_scope("Bearer abc") is None
