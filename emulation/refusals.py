"""How each kind of AWS API words a refused request, in its own protocol.

One :class:`~emulation.sigv4.Refusal` kind maps to a code, message and status per protocol family:
S3 (REST-XML ``<Error>``), the query services such as IAM and STS (``<ErrorResponse>``), the JSON
RPC services such as SageMaker and CloudWatch Logs (``__type``), and the REST-JSON services such as
Lambda, API Gateway and SageMaker Runtime (``x-amzn-ErrorType``). Codes and messages are the ones
AWS answers (shared/spec/lambda-apigateway-sigv4.md, section 6; S3's error-code list).
"""

from __future__ import annotations

import uuid
from xml.sax.saxutils import escape

from werkzeug.wrappers import Response

from emulation.protocol import AwsError, error_response
from emulation.sigv4 import Refusal

S3, QUERY, JSON_RPC, REST_JSON = "s3", "query", "json", "rest-json"

_BAD_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)
_S3_BAD_SIGNATURE = "The request signature we calculated does not match the signature you provided. Check your key and signing method."
_INVALID_TOKEN = "The security token included in the request is invalid."
_EXPIRED_TOKEN = "The security token included in the request is expired"

#: kind -> (JSON code, query code, message); status 403 unless the protocol says otherwise.
_API_WORDING = {
    "missing": (
        "MissingAuthenticationTokenException",
        "MissingAuthenticationToken",
        "Missing Authentication Token",
    ),
    "malformed": ("IncompleteSignatureException", "IncompleteSignature", None),
    "unknown_key": ("UnrecognizedClientException", "InvalidClientTokenId", _INVALID_TOKEN),
    "bad_token": ("UnrecognizedClientException", "InvalidClientTokenId", _INVALID_TOKEN),
    "expired_token": ("ExpiredTokenException", "ExpiredToken", _EXPIRED_TOKEN),
    "bad_signature": ("InvalidSignatureException", "SignatureDoesNotMatch", _BAD_SIGNATURE),
    "skewed": ("InvalidSignatureException", "SignatureDoesNotMatch", None),
    "expired_url": ("InvalidSignatureException", "SignatureDoesNotMatch", "Signature expired"),
    "wrong_service": ("InvalidSignatureException", "SignatureDoesNotMatch", None),
    "wrong_region": ("InvalidSignatureException", "SignatureDoesNotMatch", None),
    "hash_mismatch": ("InvalidSignatureException", "SignatureDoesNotMatch", _BAD_SIGNATURE),
    "bad_chunk": ("SerializationException", "MalformedInput", None),
    "access_denied": ("AccessDeniedException", "AccessDenied", None),
}

#: kind -> (S3 code, status, message)
_S3_WORDING = {
    "missing": ("AccessDenied", 403, "Access Denied"),
    "malformed": ("AuthorizationHeaderMalformed", 400, None),
    "unknown_key": (
        "InvalidAccessKeyId",
        403,
        "The AWS Access Key Id you provided does not exist in our records.",
    ),
    "bad_token": ("InvalidToken", 400, "The provided token is malformed or otherwise invalid."),
    "expired_token": ("ExpiredToken", 400, "The provided token has expired."),
    "bad_signature": ("SignatureDoesNotMatch", 403, _S3_BAD_SIGNATURE),
    "skewed": (
        "RequestTimeTooSkewed",
        403,
        "The difference between the request time and the current time is too large.",
    ),
    "expired_url": ("AccessDenied", 403, "Request has expired"),
    "wrong_service": ("AuthorizationHeaderMalformed", 400, None),
    "wrong_region": ("AuthorizationHeaderMalformed", 400, None),
    "hash_mismatch": (
        "XAmzContentSHA256Mismatch",
        400,
        "The provided 'x-amz-content-sha256' header does not match what was computed.",
    ),
    "bad_checksum": ("BadDigest", 400, None),
    "bad_chunk": ("IncompleteBody", 400, "The request body terminated unexpectedly"),
    "too_large": ("EntityTooLarge", 400, "Your proposed upload exceeds the maximum allowed size"),
    "access_denied": ("AccessDenied", 403, None),
}


def refusal_response(refusal: Refusal, protocol: str) -> Response:
    """The refusal as the service of ``protocol`` answers it. The connection is closed afterwards,
    since the request's body may not have been read."""
    if protocol == S3:
        response = _s3(refusal)
    else:
        json_code, query_code, message = _API_WORDING.get(
            refusal.kind, ("InvalidSignatureException", "SignatureDoesNotMatch", None)
        )
        message = message or refusal.detail
        if refusal.kind == "too_large":
            json_code = query_code = "RequestEntityTooLargeException"
        status = {"too_large": 413, "bad_chunk": 400}.get(refusal.kind, 403)
        if protocol == QUERY:
            response = _query(query_code, message, status)
        elif protocol == JSON_RPC:
            # awsJson services answer authentication failures with 400 and the code in __type.
            response = error_response(
                AwsError(json_code, message),
                status=400 if status == 403 else status,
                content_type="application/x-amz-json-1.1",
            )
        else:
            response = error_response(AwsError(json_code, message), status=status)
    response.headers["Connection"] = "close"
    return response


def _s3(refusal: Refusal) -> Response:
    code, status, message = _S3_WORDING.get(refusal.kind, ("AccessDenied", 403, "Access Denied"))
    message = message or refusal.detail
    extra = ""
    if refusal.kind == "wrong_region":
        message = (
            f"The authorization header is malformed; the region '{refusal.facts['region']}' is wrong; "
            f"expecting '{refusal.facts['expected']}'"
        )
    if refusal.kind == "expired_url":
        extra = (
            f"<Expires>{refusal.facts['expires']}</Expires><ServerTime>{refusal.facts['now']}</ServerTime>"
        )
    elif refusal.kind == "skewed":
        extra = f"<RequestTime>{refusal.facts['signed']}</RequestTime><ServerTime>{refusal.facts['now']}</ServerTime>"
    elif refusal.kind == "too_large":
        extra = f"<MaxSizeAllowed>{refusal.facts['limit']}</MaxSizeAllowed>"
    elif refusal.kind == "unknown_key" and refusal.facts.get("key"):
        extra = f"<AWSAccessKeyId>{escape(refusal.facts['key'])}</AWSAccessKeyId>"
    elif refusal.kind == "bad_signature" and refusal.facts.get("canonical"):
        extra = f"<CanonicalRequest>{escape(refusal.facts['canonical'])}</CanonicalRequest>"
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{escape(message)}</Message>{extra}"
        f"<RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId></Error>"
    )
    return Response(body, status=status, content_type="application/xml")


def _query(code: str, message: str, status: int) -> Response:
    body = (
        f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{escape(message)}</Message></Error>"
        f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    )
    return Response(body, status=status, content_type="text/xml")
