"""SigV4 from the server's side, on its own: whatever botocore signs (header or presigned URL,
S3's raw path or another service's normalized one) verifies, anything changed does not, and every
refusal says why in AWS's words (shared/spec/lambda-apigateway-sigv4.md, section 6). The edge
tests (test_security.py) check the same through the one port."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import io
import zlib
from urllib.parse import parse_qsl, urlsplit

import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from werkzeug.datastructures import Headers

from emulation import bodies, sigv4

NOW = dt.datetime(2026, 3, 4, 12, 0, 0, tzinfo=dt.timezone.utc)
STAMP = "20260304T120000Z"


class FixedClockSigner:
    """botocore's signers with the clock fixed at NOW."""

    def __init__(self, signer):
        self.signer = signer

    def sign(self, request):
        original = dt.datetime
        try:
            import botocore.auth

            class Frozen(original):
                @classmethod
                def utcnow(cls):
                    return NOW.replace(tzinfo=None)

                @classmethod
                def now(cls, tz=None):
                    return NOW if tz else NOW.replace(tzinfo=None)

            botocore.auth.datetime.datetime = Frozen
            self.signer.add_auth(request)
        finally:
            botocore.auth.datetime.datetime = original
        return request


def signed_request(url, *, service="sagemaker", body=b"1,2,3", headers=None, token=None, query_auth=False):
    if query_auth:  # a presigned URL: a GET without a body
        request = AWSRequest(method="GET", url=url, headers=headers or {})
    else:
        request = AWSRequest(
            method="POST", url=url, data=body, headers={"Content-Type": "text/csv", **(headers or {})}
        )
    credentials = Credentials("AKIDEXAMPLE", "secret", token)
    if query_auth:
        signer = SigV4QueryAuth(credentials, service, "us-east-1", expires=60)
    elif service == "s3":
        signer = S3SigV4Auth(credentials, service, "us-east-1")
    else:
        signer = SigV4Auth(credentials, service, "us-east-1")
    return FixedClockSigner(signer).sign(request)


def server_view(request, *, method=None, body=None):
    """(claimed, canonical) as the edge computes them from what arrived on the wire."""
    parts = urlsplit(request.url)
    headers = Headers(list(request.headers.items()))
    headers.setdefault("Host", parts.netloc)
    args = dict(parse_qsl(parts.query, keep_blank_values=True))
    claimed = sigv4.parse(headers, args)
    payload = (
        request.headers.get("X-Amz-Content-SHA256")
        or sigv4.hashlib.sha256(body if body is not None else request.body or b"").hexdigest()
    )
    if claimed.in_query:
        payload = sigv4.UNSIGNED_PAYLOAD if claimed.service == "s3" else payload
    canonical = sigv4.canonical_request(
        claimed, method=method or request.method, raw_path=parts.path, raw_query=parts.query, headers=headers,
        payload_hash=payload,
    )  # fmt: skip
    return claimed, canonical


URL = "http://127.0.0.1:4566/endpoints/my-endpoint/invocations?b=2&a=x%20y"


@pytest.mark.parametrize(
    ("url", "service"),
    [
        (URL, "sagemaker"),
        ("http://127.0.0.1:4566/2015-03-31/functions/f/invocations", "lambda"),
        ("http://127.0.0.1:4566/bucket/a//b%20c.txt?x-id=PutObject", "s3"),
        ("http://127.0.0.1:4566/a/./b/../c", "lambda"),
    ],
)
def test_what_botocore_signs_verifies(url, service):
    claimed, canonical = server_view(signed_request(url, service=service))
    assert (claimed.access_key_id, claimed.date, claimed.region, claimed.service) == (
        "AKIDEXAMPLE", "20260304", "us-east-1", service,
    )  # fmt: skip
    assert claimed.timestamp == STAMP and not claimed.in_query and claimed.session_token is None
    assert claimed.scope == f"20260304/us-east-1/{service}/aws4_request"
    sigv4.check_time(claimed, 5, NOW)
    sigv4.verify(claimed, "secret", canonical)


def test_the_session_token_travels_with_the_claim():
    claimed, canonical = server_view(signed_request(URL, token="session-token"))
    assert claimed.session_token == "session-token" and "x-amz-security-token" in claimed.signed_headers
    sigv4.verify(claimed, "secret", canonical)


def test_a_presigned_url_verifies_and_its_expiry_is_read():
    request = signed_request(URL, query_auth=True)
    claimed, canonical = server_view(request)
    assert claimed.in_query and claimed.expires_seconds == 60
    sigv4.check_time(claimed, 5, NOW + dt.timedelta(seconds=60))
    sigv4.verify(claimed, "secret", canonical)
    with pytest.raises(sigv4.Refusal) as raised:
        sigv4.check_time(claimed, 5, NOW + dt.timedelta(seconds=61))
    assert raised.value.kind == "expired_url"
    assert raised.value.facts == {"expires": "2026-03-04T12:01:00Z", "now": "2026-03-04T12:01:01Z"}
    with pytest.raises(sigv4.Refusal) as raised:
        sigv4.check_time(claimed, 5, NOW - dt.timedelta(minutes=5, seconds=1))
    assert (raised.value.kind, raised.value.facts) == ("skewed", {"signed": STAMP, "now": "20260304T115459Z"})
    sigv4.check_time(claimed, 5, NOW - dt.timedelta(minutes=5))


@pytest.mark.parametrize(
    "change",
    [
        {"method": "PUT"},
        {"body": b"1,2,4"},
    ],
)
def test_anything_changed_is_a_bad_signature(change):
    request = signed_request(URL)
    claimed, canonical = server_view(request, **change)
    with pytest.raises(sigv4.Refusal) as raised:
        sigv4.verify(claimed, "secret", canonical)
    assert raised.value.kind == "bad_signature" and raised.value.facts == {"canonical": canonical}


@pytest.mark.parametrize(
    "url",
    [URL.replace("my-endpoint", "other"), URL.replace("b=2", "b=3"), URL.replace("127.0.0.1", "localhost")],
)
def test_a_changed_path_query_or_host_is_a_bad_signature(url):
    request = signed_request(URL)
    request.url = url  # the Host the server sees follows the URL
    claimed, canonical = server_view(request)
    with pytest.raises(sigv4.Refusal, match="bad_signature"):
        sigv4.verify(claimed, "secret", canonical)


def test_the_wrong_secret_is_a_bad_signature():
    claimed, canonical = server_view(signed_request(URL))
    with pytest.raises(sigv4.Refusal, match="bad_signature"):
        sigv4.verify(claimed, "not-the-secret", canonical)


def test_no_signature_is_none_and_scope_of_names_service_and_region():
    assert sigv4.parse(Headers(), {}) is None
    assert sigv4.scope_of(Headers(), {}) is None
    request = signed_request(URL, service="lambda")
    assert sigv4.scope_of(Headers(list(request.headers.items())), {}) == ("lambda", "us-east-1")
    assert sigv4.scope_of(Headers([("Authorization", "Bearer x")]), {}) is None


def refusal(headers=(), args=None) -> tuple[str, str]:
    with pytest.raises(sigv4.Refusal) as raised:
        sigv4.parse(Headers([("X-Amz-Date", STAMP), *headers]), args or {})
    return raised.value.kind, raised.value.detail


SCOPE = "AKIDEXAMPLE/20260304/us-east-1/sagemaker/aws4_request"


@pytest.mark.parametrize(
    ("authorization", "detail"),
    [
        ("AWS AKIDEXAMPLE:abc", "Unsupported Authorization Type. Authorization=AWS AKIDEXAMPLE:abc"),
        (
            f"AWS4-HMAC-SHA256 Credential={SCOPE}, SignedHeaders",
            f"'SignedHeaders' not a valid key=value pair (missing equal-sign) in Authorization header: "
            f"'AWS4-HMAC-SHA256 Credential={SCOPE}, SignedHeaders'.",
        ),
        (
            f"AWS4-HMAC-SHA256 Credential={SCOPE}",
            "Authorization header requires 'SignedHeaders' parameter. Authorization header requires "
            f"'Signature' parameter. Authorization=AWS4-HMAC-SHA256 Credential={SCOPE}",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260304/us-east-1/sagemaker, SignedHeaders=host, Signature=ab",
            "Credential should be scoped to a valid region, not 'AKIDEXAMPLE/20260304/us-east-1/sagemaker'.",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260304/us-east-1/sagemaker/aws5_request, "
            "SignedHeaders=host, Signature=ab",
            "Credential should be scoped to a valid region, not "
            "'AKIDEXAMPLE/20260304/us-east-1/sagemaker/aws5_request'.",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=/20260304/us-east-1/sagemaker/aws4_request, SignedHeaders=host, Signature=ab",
            "Credential should be scoped to a valid region, not '/20260304/us-east-1/sagemaker/aws4_request'.",
        ),
    ],
)
def test_malformed_authorization_headers(authorization, detail):
    assert refusal([("Authorization", authorization)]) == ("malformed", detail)


def test_a_header_signature_needs_a_date():
    with pytest.raises(sigv4.Refusal) as raised:
        sigv4.parse(
            Headers(
                [("Authorization", f"AWS4-HMAC-SHA256 Credential={SCOPE}, SignedHeaders=host, Signature=ab")]
            ),
            {},
        )
    assert (raised.value.kind, raised.value.detail) == (
        "malformed",
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
    )


PRESIGNED = {
    "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
    "X-Amz-Credential": SCOPE,
    "X-Amz-Signature": "ab",
    "X-Amz-Date": STAMP,
    "X-Amz-SignedHeaders": "host",
}


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"X-Amz-Date": "", "X-Amz-SignedHeaders": ""},
         "Query-string authentication requires the X-Amz-Date, X-Amz-SignedHeaders parameter(s)."),
        ({"X-Amz-Algorithm": "AWS4-HMAC-SHA1"}, 'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"'),
        ({"X-Amz-Expires": "soon"}, "X-Amz-Expires should be a number"),
        ({"X-Amz-Expires": "604801"}, "X-Amz-Expires must be less than a week (in seconds) that is 604800"),
        ({"X-Amz-Expires": "0"}, "X-Amz-Expires must be non-negative"),
    ],
)  # fmt: skip
def test_malformed_presigned_urls(change, detail):
    assert refusal(args={**PRESIGNED, **change}) == ("malformed", detail)


@pytest.mark.parametrize("kept", ["X-Amz-Signature", "X-Amz-Credential"])
def test_either_signature_or_credential_alone_makes_a_presigned_url_and_it_is_incomplete(kept):
    """Not an unsigned request (which would be refused as missing a signature, in other words)."""
    missing = ", ".join(name for name in PRESIGNED if name != kept)
    assert refusal(args={kept: PRESIGNED[kept]}) == (
        "malformed",
        f"Query-string authentication requires the {missing} parameter(s).",
    )


def test_a_header_field_splits_at_its_first_equal_sign():
    authorization = f"AWS4-HMAC-SHA256 Credential={SCOPE}, SignedHeaders=host, Signature=ab=cd"
    claimed = sigv4.parse(Headers([("Authorization", authorization), ("X-Amz-Date", STAMP)]), {})
    assert (claimed.signature, claimed.signed_headers, claimed.in_query) == ("ab=cd", ("host",), False)


def test_presigned_defaults_and_token_from_query_or_header():
    claimed = sigv4.parse(
        Headers([("X-Amz-Security-Token", "from-header")]), {**PRESIGNED, "X-Amz-Expires": "604800"}
    )
    assert (claimed.expires_seconds, claimed.session_token, claimed.in_query) == (604800, "from-header", True)
    assert sigv4.parse(Headers(), {"X-Amz-Credential": SCOPE, **PRESIGNED}).expires_seconds == 604800
    assert sigv4.parse(Headers(), {**PRESIGNED, "X-Amz-Security-Token": "q"}).session_token == "q"
    assert sigv4.parse(Headers(), {**PRESIGNED, "X-Amz-Expires": "1"}).expires_seconds == 1
    assert sigv4.parse(Headers(), {**PRESIGNED}).signed_headers == ("host",)


def claim(timestamp=STAMP, date="20260304", in_query=False):
    return sigv4.ClaimedSignature(
        "AKIDEXAMPLE", date, "us-east-1", "lambda", ("host",), "ab", timestamp, None, in_query
    )


def test_clock_skew_window_in_the_services_words():
    sigv4.check_time(claim(), 5, NOW + dt.timedelta(minutes=5))
    sigv4.check_time(claim(), 5, NOW - dt.timedelta(minutes=5))
    with pytest.raises(sigv4.Refusal) as raised:
        sigv4.check_time(claim(), 5, NOW + dt.timedelta(minutes=5, seconds=1))
    assert (raised.value.kind, raised.value.detail, raised.value.facts) == (
        "skewed",
        "Signature expired: 20260304T120000Z is now earlier than 20260304T120001Z (20260304T120501Z - 5 min.)",
        {"signed": STAMP, "now": "20260304T120501Z"},
    )
    with pytest.raises(sigv4.Refusal) as raised:
        sigv4.check_time(claim(), 15, NOW - dt.timedelta(minutes=15, seconds=1))
    assert (raised.value.kind, raised.value.detail, raised.value.facts) == (
        "skewed",
        "Signature not yet current: 20260304T120000Z is still later than 20260304T115959Z "
        "(20260304T114459Z + 15 min.)",
        {"signed": STAMP, "now": "20260304T114459Z"},
    )


def test_a_presigned_url_from_the_future_or_past_its_expiry_is_refused():
    presigned = dataclasses.replace(claim(in_query=True), expires_seconds=60)
    sigv4.check_time(presigned, 5, NOW - dt.timedelta(minutes=5))  # the skew window applies
    sigv4.check_time(presigned, 5, NOW + dt.timedelta(seconds=60))  # valid up to its expiry
    with pytest.raises(sigv4.Refusal) as raised:
        sigv4.check_time(presigned, 5, NOW - dt.timedelta(minutes=5, seconds=1))
    assert (raised.value.kind, raised.value.detail, raised.value.facts) == (
        "skewed",
        "not yet current",
        {"signed": STAMP, "now": "20260304T115459Z"},
    )
    with pytest.raises(sigv4.Refusal) as raised:
        sigv4.check_time(presigned, 5, NOW + dt.timedelta(seconds=61))
    assert (raised.value.kind, raised.value.facts) == (
        "expired_url",
        {"expires": "2026-03-04T12:01:00Z", "now": "2026-03-04T12:01:01Z"},
    )


def test_dates_must_be_basic_format_and_match_the_scope():
    with pytest.raises(sigv4.Refusal) as raised:
        sigv4.check_time(claim("2026-03-04T12:00:00Z"), 5, NOW)
    assert (raised.value.kind, raised.value.detail) == (
        "malformed",
        "Date must be in ISO-8601 'basic format'. Got '2026-03-04T12:00:00Z'.",
    )
    with pytest.raises(sigv4.Refusal) as raised:
        sigv4.check_time(claim(date="20260303"), 5, NOW)
    assert raised.value.kind == "bad_signature"


def test_canonical_request_shape():
    claimed = sigv4.ClaimedSignature(
        "AKIDEXAMPLE",
        "20260304",
        "us-east-1",
        "lambda",
        ("host", "x-multi", "x-spaced"),
        "sig",
        STAMP,
        None,
        True,
    )
    # a header sent twice reaches the edge joined with "," (WSGI), as SigV4 joins repeated values
    headers = Headers([("Host", "h:1"), ("X-Multi", "a,b"), ("X-Spaced", "  one   two  ")])
    canonical = sigv4.canonical_request(
        claimed, method="post", raw_path="/a/./b/../c d", raw_query="z=1&a=%2F&X-Amz-Signature=sig&b=x y&e=k=v",
        headers=headers, payload_hash="hash",
    )  # fmt: skip
    assert canonical == (
        "POST\n/a/c%20d\na=%2F&b=x%20y&e=k%3Dv&z=1\nhost:h:1\nx-multi:a,b\nx-spaced:one two\n\nhost;x-multi;x-spaced\nhash"
    )
    s3 = sigv4.ClaimedSignature(
        "AKIDEXAMPLE", "20260304", "us-east-1", "s3", ("host",), "sig", STAMP, None, False
    )
    assert sigv4.canonical_request(
        s3, method="GET", raw_path="/b/a//./k", raw_query="X-Amz-Signature=kept", headers=Headers([("Host", "h")]),
        payload_hash="p",
    ) == "GET\n/b/a//./k\nX-Amz-Signature=kept\nhost:h\n\nhost\np"  # fmt: skip
    no_query = sigv4.canonical_request(
        s3, method="GET", raw_path="/", raw_query="", headers={}, payload_hash="p"
    )
    assert no_query == "GET\n/\n\nhost:\n\nhost\np"


def test_signing_key_matches_the_aws_documentation_example():
    key = sigv4.signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam")
    assert key.hex() == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"


# -- aws-chunked: chunk and trailer signatures -----------------------------------------------------
def _spec_signature(kind: str, previous: str, tail: str) -> str:
    """A chunk or trailer signature for secret "secret", built by hand as the S3 streaming
    specification says (its own key derivation, not the emulator's)."""
    key = b"AWS4secret"
    for part in ("20260304", "us-east-1", "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    string_to_sign = f"{kind}\n{STAMP}\n20260304/us-east-1/s3/aws4_request\n{previous}\n{tail}"
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def _signed_trailer_body(seed: str, chunks, trailer: str, *, sign_trailer_as=None, chain_trailer=True):
    """STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER framing: signed chunks, a zero chunk, the
    trailing checksum and its signature (over the trailer lines, chained to the last chunk's)."""
    body, previous = b"", seed
    for data in (*chunks, b""):
        tail = f"{sigv4.EMPTY_SHA256}\n{hashlib.sha256(data).hexdigest()}"
        previous = _spec_signature("AWS4-HMAC-SHA256-PAYLOAD", previous, tail)
        body += f"{len(data):x};chunk-signature={previous}\r\n".encode() + data
        body += b"\r\n" if data else b""
    signed_trailer = sign_trailer_as if sign_trailer_as is not None else trailer
    trailer_hash = hashlib.sha256(f"{signed_trailer}\n".encode()).hexdigest()
    signature = _spec_signature("AWS4-HMAC-SHA256-TRAILER", previous if chain_trailer else seed, trailer_hash)
    return body + f"{trailer}\r\nx-amz-trailer-signature:{signature}\r\n\r\n".encode()


def test_a_signed_trailer_verifies_and_a_changed_or_unchained_one_does_not():
    claimed = sigv4.ClaimedSignature(
        "AKIDEXAMPLE", "20260304", "us-east-1", "s3", ("host",), "5eed" * 16, STAMP, None, False
    )
    chunks = [b"a" * 70000, b"tail"]
    crc = base64.b64encode(zlib.crc32(b"".join(chunks)).to_bytes(4, "big")).decode()
    trailer = f"x-amz-checksum-crc32:{crc}"

    def read(body):
        environ = {"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))}
        headers = Headers([("X-Amz-Trailer", "x-amz-checksum-crc32")])
        signer = sigv4.ChunkSigner(claimed, "secret")
        return bodies.read_aws_chunked(environ, 1 << 20, headers, signer, sum(map(len, chunks)))

    good = _signed_trailer_body(claimed.signature, chunks, trailer)
    assert read(good).bytes() == good
    for forged in (
        _signed_trailer_body(
            claimed.signature, chunks, trailer, sign_trailer_as="x-amz-checksum-crc32:AAAAAA=="
        ),
        _signed_trailer_body(claimed.signature, chunks, trailer, chain_trailer=False),
    ):
        with pytest.raises(sigv4.Refusal) as raised:
            read(forged)
        assert raised.value.kind == "bad_signature"
    # a trailer's signature is not a chunk's: the same chain signed as a payload chunk is refused
    trailer_hash = hashlib.sha256(f"{trailer}\n".encode()).hexdigest()
    as_chunk = _spec_signature("AWS4-HMAC-SHA256-PAYLOAD", claimed.signature, trailer_hash)
    with pytest.raises(sigv4.Refusal):
        sigv4.ChunkSigner(claimed, "secret").check_trailer(trailer_hash, as_chunk)
    signer = sigv4.ChunkSigner(claimed, "secret")
    signer.check_trailer(
        trailer_hash, _spec_signature("AWS4-HMAC-SHA256-TRAILER", claimed.signature, trailer_hash)
    )
