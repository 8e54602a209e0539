"""SigV4 verification for the services that AWS keeps closed to unsigned callers.

The signature is recomputed with botocore's own signer (the same code that signed the request on
the client), restricted to the headers the client listed in ``SignedHeaders``. Failures carry the
codes and messages AWS gives (shared/spec/lambda-apigateway-sigv4.md, section 6).
"""

from __future__ import annotations

import datetime as dt
import hmac
from dataclasses import dataclass

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

INVALID_SIGNATURE_MESSAGE = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)


class SignatureError(Exception):
    """A request that must be refused before it does anything; ``code`` is AWS's error code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class SignedScope:
    access_key_id: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(header: str | None) -> SignedScope:
    if not header:
        raise SignatureError("MissingAuthenticationTokenException", "Missing Authentication Token")
    algorithm, _, rest = header.partition(" ")
    if algorithm != "AWS4-HMAC-SHA256":
        raise SignatureError(
            "IncompleteSignatureException",
            f"Unsupported Authorization Type. Authorization={header}",
        )
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, eq, value = part.strip().partition("=")
        if not eq:
            raise SignatureError(
                "IncompleteSignatureException",
                f"'{part.strip()}' not a valid key=value pair (missing equal-sign) in Authorization header: '{header}'.",
            )
        fields[key] = value
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if k not in fields]
    if missing:
        raise SignatureError(
            "IncompleteSignatureException",
            " ".join(f"Authorization header requires '{k}' parameter." for k in missing)
            + f" Authorization={header}",
        )
    scope = fields["Credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        raise SignatureError(
            "IncompleteSignatureException",
            f"Credential should be scoped to a valid region. Authorization={header}",
        )
    return SignedScope(
        access_key_id=scope[0],
        date=scope[1],
        region=scope[2],
        service=scope[3],
        signed_headers=tuple(fields["SignedHeaders"].split(";")),
        signature=fields["Signature"],
    )


def credential_scope(header: str | None) -> tuple[str, str] | None:
    """(service, region) named by a request's signature, or None; used for routing, verifies nothing."""
    try:
        scope = parse_authorization(header)
    except SignatureError:
        return None
    return scope.service, scope.region


class _ListedHeadersSigner(SigV4Auth):
    """botocore's signer, but signing exactly the headers the client said it signed."""

    def __init__(self, credentials, service, region, signed_headers):
        super().__init__(credentials, service, region)
        self._signed = signed_headers

    def headers_to_sign(self, request):
        header_map = HTTPHeaders()
        for name in self._signed:
            for value in request.headers.get_all(name) or []:
                header_map[name] = value
        return header_map


def verify(
    *,
    method: str,
    url: str,
    headers: list[tuple[str, str]],
    body: bytes,
    secrets: dict[str, str],
    expected_service: str,
    skew_minutes: int,
    now: dt.datetime | None = None,
) -> SignedScope:
    """Raise SignatureError unless the request is signed by a known key for ``expected_service``.

    ``url`` must carry the path exactly as it arrived on the wire (not percent-decoded) and the raw
    query string, because that is what the client signed.
    """
    scope = parse_authorization(_first(headers, "authorization"))
    if scope.access_key_id not in secrets:
        raise SignatureError(
            "UnrecognizedClientException", "The security token included in the request is invalid."
        )
    if scope.service != expected_service:
        raise SignatureError(
            "InvalidSignatureException",
            f"Credential should be scoped to correct service: '{expected_service}'.",
        )
    amz_date = _first(headers, "x-amz-date")
    if not amz_date:
        raise SignatureError(
            "IncompleteSignatureException",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        )
    _check_clock(amz_date, skew_minutes, now or dt.datetime.now(dt.timezone.utc))

    request = AWSRequest(method=method, url=url, data=body)
    request.headers = HTTPHeaders()
    for name, value in headers:
        request.headers[name] = value
    request.context["timestamp"] = amz_date
    credentials = Credentials(
        scope.access_key_id, secrets[scope.access_key_id], _first(headers, "x-amz-security-token")
    )
    signer = _ListedHeadersSigner(credentials, scope.service, scope.region, scope.signed_headers)
    canonical = signer.canonical_request(request)
    string_to_sign = signer.string_to_sign(request, canonical)
    expected = signer.signature(string_to_sign, request)
    if not hmac.compare_digest(expected, scope.signature):
        raise SignatureError("InvalidSignatureException", INVALID_SIGNATURE_MESSAGE)
    return scope


def _check_clock(amz_date: str, skew_minutes: int, now: dt.datetime) -> None:
    try:
        signed_at = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise SignatureError(
            "IncompleteSignatureException", f"Date must be in ISO-8601 'basic format'. Got '{amz_date}'."
        ) from None
    window = dt.timedelta(minutes=skew_minutes)
    fmt = "%Y%m%dT%H%M%SZ"
    if signed_at < now - window:
        raise SignatureError(
            "InvalidSignatureException",
            f"Signature expired: {amz_date} is now earlier than {(now - window).strftime(fmt)} "
            f"({now.strftime(fmt)} - {skew_minutes} min.)",
        )
    if signed_at > now + window:
        raise SignatureError(
            "InvalidSignatureException",
            f"Signature not yet current: {amz_date} is still later than {(now + window).strftime(fmt)} "
            f"({now.strftime(fmt)} + {skew_minutes} min.)",
        )


def _first(headers: list[tuple[str, str]], name: str) -> str | None:
    return next((value for key, value in headers if key.lower() == name), None)
