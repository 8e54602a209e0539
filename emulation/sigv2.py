"""S3's legacy query-string authentication (Signature Version 2), which is what
``generate_presigned_url`` still produces by default for S3 in us-east-1 (``AWSAccessKeyId``,
``Expires``, ``Signature``). The string to sign is botocore's (HmacV1Auth), recomputed here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from botocore.auth import HmacV1Auth
from botocore.awsrequest import HTTPHeaders

from emulation.sigv4 import Refusal


@dataclass(frozen=True)
class ClaimedQuerySignature:
    access_key_id: str
    signature: str
    expires: int
    session_token: str | None


def parse_query(args) -> ClaimedQuerySignature | None:
    if "AWSAccessKeyId" not in args and "Signature" not in args:
        return None
    try:
        expires = int(args["Expires"])
        return ClaimedQuerySignature(
            args["AWSAccessKeyId"], args["Signature"], expires, args.get("x-amz-security-token")
        )
    except (KeyError, ValueError):
        raise Refusal(
            "malformed",
            "Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters",
        ) from None


def check_and_verify(
    claimed: ClaimedQuerySignature, secret: str, *, method: str, raw_path: str, raw_query: str, headers, args
) -> None:
    now = int(time.time())
    if now > claimed.expires:
        raise Refusal(
            "expired_url",
            "Request has expired",
            expires=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(claimed.expires)),
            now=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        )
    signed = HTTPHeaders()
    for name in ("Content-MD5", "Content-Type"):
        value = args.get(name.lower()) or headers.get(name)
        if value:
            signed[name] = value
    for name, value in args.items():
        if name.lower().startswith("x-amz-"):
            signed[name.lower()] = value
    signer = HmacV1Auth(None)
    standard = "\n".join(signed.get(name, "").strip() for name in ("Content-MD5", "Content-Type"))
    custom = signer.canonical_custom_headers(signed)
    resource = signer.canonical_resource(urlsplit(f"{raw_path}?{raw_query}"))
    string_to_sign = (
        f"{method.upper()}\n{standard}\n{claimed.expires}\n" + (f"{custom}\n" if custom else "") + resource
    )
    digest = hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha1).digest()
    if not hmac.compare_digest(base64.b64encode(digest).decode(), claimed.signature):
        raise Refusal("bad_signature", canonical=string_to_sign)
