"""AWS Signature Version 4, from the server's side: read what a request claims, recompute, compare.

Covers the two places a signature travels (the ``Authorization`` header, and the query string of
a presigned URL) and the per-chunk signatures of S3's aws-chunked uploads. The canonical request
follows the SigV4 specification as botocore implements it on the client (S3 signs its path as
sent; every other service signs the normalized path), so whatever botocore signed verifies here.
What a failure means is a :class:`Refusal` kind; how each service words it lives in
:mod:`emulation.refusals`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import quote, unquote

from botocore.utils import normalize_url_path

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
#: A presigned URL lives at most 7 days (X-Amz-Expires 1..604800).
MAX_PRESIGNED_SECONDS = 604800


class Refusal(Exception):
    """Why a request is refused before it does anything; :mod:`emulation.refusals` words it per service.

    ``kind`` is one of: missing, malformed, unknown_key, bad_signature, skewed, expired_url,
    wrong_service, wrong_region, bad_token, expired_token, hash_mismatch, too_large, access_denied,
    bad_checksum, bad_chunk.
    """

    def __init__(self, kind: str, detail: str = "", **facts: str):
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail
        self.facts = facts


@dataclass(frozen=True)
class ClaimedSignature:
    """What a request says about its own signature; nothing here is verified yet."""

    access_key_id: str
    date: str  # the scope's yyyymmdd
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    timestamp: str  # X-Amz-Date
    session_token: str | None
    in_query: bool
    expires_seconds: int | None = None  # presigned URLs only

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


def scope_of(headers, args) -> tuple[str, str] | None:
    """(service, region) a request names in its signature, or None; for routing, verifies nothing."""
    try:
        claimed = parse(headers, args)
    except Refusal:
        return None
    return (claimed.service, claimed.region) if claimed else None


def parse(headers, args) -> ClaimedSignature | None:
    """The signature a request carries (header or presigned query), None when it carries none.

    ``headers`` is a case-insensitive mapping; ``args`` the decoded query arguments.
    """
    if "X-Amz-Signature" in args or "X-Amz-Credential" in args:
        return _parse_query(headers, args)
    header = headers.get("Authorization")
    if not header:
        return None
    return _parse_header(headers, header)


def _parse_header(headers, header: str) -> ClaimedSignature:
    algorithm, _, rest = header.partition(" ")
    if algorithm != ALGORITHM:
        raise Refusal("malformed", f"Unsupported Authorization Type. Authorization={header}")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, eq, value = part.strip().partition("=")
        if not eq:
            raise Refusal(
                "malformed",
                f"'{part.strip()}' not a valid key=value pair (missing equal-sign) in Authorization header: '{header}'.",
            )
        fields[key] = value
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if k not in fields]
    if missing:
        raise Refusal(
            "malformed",
            " ".join(f"Authorization header requires '{k}' parameter." for k in missing)
            + f" Authorization={header}",
        )
    timestamp = headers.get("X-Amz-Date")
    if not timestamp:
        raise Refusal(
            "malformed",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        )
    return _claim(
        fields["Credential"],
        fields["SignedHeaders"],
        fields["Signature"],
        timestamp,
        headers.get("X-Amz-Security-Token"),
        in_query=False,
    )


def _parse_query(headers, args) -> ClaimedSignature:
    missing = [
        name
        for name in (
            "X-Amz-Algorithm",
            "X-Amz-Credential",
            "X-Amz-Signature",
            "X-Amz-Date",
            "X-Amz-SignedHeaders",
        )
        if not args.get(name)
    ]
    if missing:
        raise Refusal(
            "malformed", f"Query-string authentication requires the {', '.join(missing)} parameter(s)."
        )
    if args["X-Amz-Algorithm"] != ALGORITHM:
        raise Refusal("malformed", 'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"')
    try:
        expires = int(args.get("X-Amz-Expires") or MAX_PRESIGNED_SECONDS)
    except ValueError:
        raise Refusal("malformed", "X-Amz-Expires should be a number") from None
    if not 0 < expires <= MAX_PRESIGNED_SECONDS:
        raise Refusal(
            "malformed",
            "X-Amz-Expires must be less than a week (in seconds) that is 604800"
            if expires > 0
            else "X-Amz-Expires must be non-negative",
        )
    claimed = _claim(
        args["X-Amz-Credential"],
        args["X-Amz-SignedHeaders"],
        args["X-Amz-Signature"],
        args["X-Amz-Date"],
        args.get("X-Amz-Security-Token") or headers.get("X-Amz-Security-Token"),
        in_query=True,
    )
    return dataclasses.replace(claimed, expires_seconds=expires)


def _claim(credential, signed_headers, signature, timestamp, token, *, in_query) -> ClaimedSignature:
    scope = credential.split("/")
    if len(scope) != 5 or scope[4] != "aws4_request" or not scope[0]:
        raise Refusal("malformed", f"Credential should be scoped to a valid region, not '{credential}'.")
    return ClaimedSignature(
        access_key_id=scope[0],
        date=scope[1],
        region=scope[2],
        service=scope[3],
        signed_headers=tuple(signed_headers.split(";")),
        signature=signature,
        timestamp=timestamp,
        session_token=token,
        in_query=in_query,
    )


def check_time(claimed: ClaimedSignature, skew_minutes: int, now: dt.datetime) -> None:
    """The request was signed recently enough (header) or the URL has not expired (query)."""
    try:
        signed_at = dt.datetime.strptime(claimed.timestamp, TIMESTAMP_FORMAT).replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise Refusal(
            "malformed", f"Date must be in ISO-8601 'basic format'. Got '{claimed.timestamp}'."
        ) from None
    if claimed.timestamp[:8] != claimed.date:
        raise Refusal("bad_signature", "the credential scope's date is not the signing date")
    window = dt.timedelta(minutes=skew_minutes)
    if claimed.in_query:
        if signed_at > now + window:
            raise Refusal(
                "skewed", "not yet current", signed=claimed.timestamp, now=now.strftime(TIMESTAMP_FORMAT)
            )
        expires_at = signed_at + dt.timedelta(seconds=claimed.expires_seconds or 0)
        if now > expires_at:
            raise Refusal(
                "expired_url",
                "Request has expired",
                expires=expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                now=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
        return
    fmt = TIMESTAMP_FORMAT
    if signed_at < now - window:
        raise Refusal(
            "skewed",
            f"Signature expired: {claimed.timestamp} is now earlier than {(now - window).strftime(fmt)} "
            f"({now.strftime(fmt)} - {skew_minutes} min.)",
            signed=claimed.timestamp,
            now=now.strftime(fmt),
        )
    if signed_at > now + window:
        raise Refusal(
            "skewed",
            f"Signature not yet current: {claimed.timestamp} is still later than {(now + window).strftime(fmt)} "
            f"({now.strftime(fmt)} + {skew_minutes} min.)",
            signed=claimed.timestamp,
            now=now.strftime(fmt),
        )


def canonical_request(
    claimed: ClaimedSignature,
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers,
    payload_hash: str,
) -> str:
    """The canonical request the client must have signed. ``raw_path``/``raw_query`` as on the wire."""
    path = raw_path if claimed.service == "s3" else quote(normalize_url_path(raw_path), safe="/~")
    pairs = []
    for pair in raw_query.split("&") if raw_query else ():
        key, _, value = pair.partition("=")
        if claimed.in_query and key == "X-Amz-Signature":
            continue
        pairs.append((_uri_encode(key), _uri_encode(value)))
    query = "&".join(f"{k}={v}" for k, v in sorted(pairs))
    # A header sent twice arrives joined with "," (WSGI), as SigV4 joins repeated values.
    lines = [f"{name}:{' '.join((headers.get(name) or '').split())}" for name in claimed.signed_headers]
    return "\n".join(
        [method.upper(), path, query, "\n".join(lines) + "\n", ";".join(claimed.signed_headers), payload_hash]
    )


def _uri_encode(text: str) -> str:
    return quote(unquote(text), safe="-_.~")


@functools.lru_cache(maxsize=256)
def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = _hmac(f"AWS4{secret}".encode(), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    return key


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def sign(claimed: ClaimedSignature, secret: str, string_to_sign: str) -> str:
    key = signing_key(secret, claimed.date, claimed.region, claimed.service)
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def request_signature(claimed: ClaimedSignature, secret: str, canonical: str) -> str:
    string_to_sign = "\n".join(
        [ALGORITHM, claimed.timestamp, claimed.scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    return sign(claimed, secret, string_to_sign)


def verify(claimed: ClaimedSignature, secret: str, canonical: str) -> None:
    if not hmac.compare_digest(request_signature(claimed, secret, canonical), claimed.signature):
        raise Refusal("bad_signature", canonical=canonical)


class ChunkSigner:
    """The chain of aws-chunked chunk signatures: each signs its data and the previous signature."""

    def __init__(self, claimed: ClaimedSignature, secret: str):
        self.claimed, self.secret = claimed, secret
        self.previous = claimed.signature

    def check_chunk(self, data_hash: str, signature: str) -> None:
        self._check("AWS4-HMAC-SHA256-PAYLOAD", f"{EMPTY_SHA256}\n{data_hash}", signature)

    def check_trailer(self, trailer_hash: str, signature: str) -> None:
        self._check("AWS4-HMAC-SHA256-TRAILER", trailer_hash, signature)

    def _check(self, algorithm: str, tail: str, signature: str) -> None:
        string_to_sign = (
            f"{algorithm}\n{self.claimed.timestamp}\n{self.claimed.scope}\n{self.previous}\n{tail}"
        )
        expected = sign(self.claimed, self.secret, string_to_sign)
        if not hmac.compare_digest(expected, signature):
            raise Refusal("bad_signature", "a chunk signature does not match")
        self.previous = signature
