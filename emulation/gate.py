"""The edge gate: what every AWS request must pass before any service, ours or moto's, sees it.

1. Only the health route and API Gateway's execute-api data plane are public.
2. Any other request must carry a SigV4 signature (header or presigned query string; S3's legacy
   presigned URLs too) by a key the credential registry knows, with its session token while
   unexpired, scoped to the service that serves the request and to a region it serves. An unsigned
   request or an unknown key is refused before a byte of its body is read.
3. The body is read bounded by the service's limit (Content-Length and chunked alike), hashed as it
   arrives, and the signature is checked against the hash of what was received, never against what
   ``X-Amz-Content-SHA256`` claims (S3 payload modes: signed, UNSIGNED-PAYLOAD, aws-chunked with
   chunk signatures or trailing checksums).
4. Role and user keys may do only what their IAM policies allow (:mod:`emulation.authorization`),
   and JSON bodies bound for moto are type-checked against botocore's models.

Refusals are worded as the serving service words them (:mod:`emulation.refusals`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import selectors
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl

import botocore.loaders
from werkzeug.wrappers import Request, Response

from emulation import authorization, bodies, sigv2, sigv4
from emulation.config import EmulatorConfig
from emulation.credentials import CredentialRegistry, Principal, get_session_token_response
from emulation.protocol import AwsError, check_body, error_response, json_rpc_operation, rest_json_operation
from emulation.refusals import JSON_RPC, QUERY, REST_JSON, S3, refusal_response
from emulation.sigv4 import Refusal

Handler = Callable[[Request], Response]

#: What a refused request may still send before the connection stops being read.
REFUSED_BODY_ALLOWANCE = 1024 * 1024

_logger = logging.getLogger("sagelocal.gate")


@dataclass(frozen=True)
class Destination:
    """Who serves a request and what that service demands of it."""

    handler: Handler | None  # None: moto
    protocol: str  # how refusals are worded (emulation.refusals)
    max_bytes: int
    service: str | None = None  # the signing name it insists on; None: whatever moto serves
    public: bool = False
    skew_minutes: int = 15
    pinned_region: bool = False  # our single-region services: the scope must name the emulator's region
    too_large: Callable[[], Response] | None = None  # the service's own 413, where it has one

    def refuse(self, refusal: Refusal) -> Response:
        if refusal.kind == "too_large" and self.too_large is not None:
            response = self.too_large()
            response.headers["Connection"] = "close"
            return response
        return refusal_response(refusal, self.protocol)


def _known_regions() -> frozenset[str]:
    endpoints = botocore.loaders.create_loader().load_data("endpoints")
    return frozenset(region for partition in endpoints["partitions"] for region in partition["regions"])


KNOWN_REGIONS = _known_regions()


class Gate:
    """Authenticates, bounds and authorizes requests for one emulator's account and region."""

    def __init__(self, config: EmulatorConfig, credentials: CredentialRegistry):
        self.config = config
        self.credentials = credentials

    def admit(self, environ, destination: Destination) -> Response | None:
        """None when the request may go on (its body then re-readable by the service), else the refusal."""
        try:
            if destination.public:
                if destination.max_bytes:
                    bodies.hand_on(environ, bodies.read(environ, destination.max_bytes))
                return None
            return self._authenticate(environ, destination)
        except Refusal as refusal:
            if refusal.kind == "bad_signature":
                _logger.info(
                    "refused %s %s: signature does not match",
                    environ.get("REQUEST_METHOD"),
                    environ.get("PATH_INFO"),
                )
            return destination.refuse(refusal)

    def _authenticate(self, environ, destination: Destination) -> Response | None:
        headers = Headers(environ)
        args = query_args(environ)
        if destination.protocol == S3 and (legacy := sigv2.parse_query(args)) is not None:
            return self._authenticate_legacy_s3(environ, destination, legacy, headers, args)
        claimed = sigv4.parse(headers, args)
        if claimed is None:
            raise Refusal("missing")
        principal = self._principal(claimed.access_key_id, claimed.session_token)
        now = dt.datetime.now(dt.timezone.utc)
        if principal.expired(now):
            raise Refusal("expired_token")
        expected_service = destination.service or ("s3" if destination.protocol == S3 else claimed.service)
        if claimed.service != expected_service:
            raise Refusal(
                "wrong_service",
                f"Credential should be scoped to correct service: '{expected_service}'.",
            )
        if claimed.region not in KNOWN_REGIONS or (
            destination.pinned_region and claimed.region != self.config.region
        ):
            raise Refusal(
                "wrong_region",
                f"Credential should be scoped to a valid region, not '{claimed.region}'.",
                region=claimed.region,
                expected=self.config.region,
            )
        sigv4.check_time(claimed, destination.skew_minutes, now)
        raw_path, raw_query = _raw_target(environ)
        if expected_service == "s3":
            body = self._s3_body(environ, destination, claimed, principal, headers, raw_path, raw_query)
        else:
            body = bodies.read(environ, destination.max_bytes)
            declared = headers.get("X-Amz-Content-SHA256")
            if declared and declared != body.sha256:
                raise Refusal("hash_mismatch")
            canonical = sigv4.canonical_request(
                claimed,
                method=environ["REQUEST_METHOD"],
                raw_path=raw_path,
                raw_query=raw_query,
                headers=headers,
                payload_hash=body.sha256,
            )
            sigv4.verify(claimed, principal.secret_access_key, canonical)
        if destination.handler is None and destination.protocol in (JSON_RPC, REST_JSON):
            refused = _check_moto_json_body(environ, destination, claimed.service, body)
            if refused is not None:
                return refused
        if claimed.service == "sts" and destination.handler is None:
            params = _query_params(environ, body)
            if params.get("Action") == "GetSessionToken":
                return get_session_token_response(self.credentials, principal, params)
        self._authorize(environ, destination.protocol, claimed.service, claimed.region, principal, body)
        bodies.hand_on(environ, body)
        return None

    def _authorize(
        self, environ, protocol: str, service: str, region: str, principal: Principal, body: bodies.Body
    ) -> None:
        """Identity-based policies of roles and users, for the actions the emulator can name."""
        if principal.is_root or not authorization.enforcing():
            return
        params = None
        if protocol == QUERY:
            params = _query_params(environ, body)
        elif protocol == JSON_RPC and body.size <= bodies.IN_MEMORY_BYTES:
            try:
                params = json.loads(body.bytes() or b"{}")
            except ValueError:
                params = None
        elif service == "lambda":
            params = query_args(environ)
        action = authorization.request_action(
            environ,
            service,
            region=region,
            account_id=self.config.account_id,
            params=params if isinstance(params, dict) else None,
        )
        if action is not None and not authorization.identity_allows(
            self.config.account_id, principal, action
        ):
            _logger.info("denied %s: %s", principal.arn, action)
            raise Refusal("access_denied", authorization.not_authorized(principal, action))

    def _authenticate_legacy_s3(self, environ, destination, claimed, headers, args) -> None:
        """A presigned S3 URL in Signature Version 2 (boto3's default for S3 presigning)."""
        principal = self._principal(claimed.access_key_id, claimed.session_token)
        if principal.expired(dt.datetime.now(dt.timezone.utc)):
            raise Refusal("expired_token")
        raw_path, raw_query = _raw_target(environ)
        sigv2.check_and_verify(
            claimed,
            principal.secret_access_key,
            method=environ["REQUEST_METHOD"],
            raw_path=raw_path,
            raw_query=raw_query,
            headers=headers,
            args=args,
        )
        body = bodies.read(environ, destination.max_bytes)
        self._authorize(environ, S3, "s3", self.config.region, principal, body)
        bodies.hand_on(environ, body)

    def _principal(self, access_key_id: str, session_token: str | None) -> Principal:
        principal = self.credentials.lookup(access_key_id)
        if principal is None:
            raise Refusal("unknown_key", key=access_key_id)
        if principal.session_token != session_token:
            raise Refusal("bad_token")
        return principal

    def _s3_body(self, environ, destination, claimed, principal, headers, raw_path, raw_query) -> bodies.Body:
        """S3's payload modes: the signature is checked first against the declared payload hash, then
        the body against the declaration while it streams in."""
        declared = sigv4.UNSIGNED_PAYLOAD if claimed.in_query else headers.get("X-Amz-Content-SHA256")
        if not declared:
            raise Refusal("malformed", "Missing required header for this request: x-amz-content-sha256")
        canonical = sigv4.canonical_request(
            claimed,
            method=environ["REQUEST_METHOD"],
            raw_path=raw_path,
            raw_query=raw_query,
            headers=headers,
            payload_hash=declared,
        )
        sigv4.verify(claimed, principal.secret_access_key, canonical)
        if declared.startswith("STREAMING-"):
            if declared not in (
                sigv4.STREAMING_SIGNED,
                sigv4.STREAMING_SIGNED_TRAILER,
                sigv4.STREAMING_UNSIGNED_TRAILER,
            ):
                raise Refusal(
                    "malformed",
                    f"x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-... or a SHA-256: {declared}",
                )
            decoded = headers.get("X-Amz-Decoded-Content-Length")
            if decoded is not None and int(decoded) > destination.max_bytes:
                raise Refusal("too_large", limit=str(destination.max_bytes))
            signer = (
                None
                if declared == sigv4.STREAMING_UNSIGNED_TRAILER
                else sigv4.ChunkSigner(claimed, principal.secret_access_key)
            )
            # the encoding adds a few dozen bytes per chunk on top of the data
            return bodies.read_aws_chunked(
                environ,
                destination.max_bytes + destination.max_bytes // 1024 + 65536,
                headers,
                signer,
                int(decoded) if decoded is not None and decoded.isdigit() else None,
            )
        body = bodies.read(environ, destination.max_bytes)
        if declared != sigv4.UNSIGNED_PAYLOAD and declared != body.sha256:
            raise Refusal("hash_mismatch")
        return body


def _check_moto_json_body(
    environ, destination: Destination, service: str, body: bodies.Body
) -> Response | None:
    """Wrong JSON types get the service's 400 here, where moto would fail with a 500."""
    if destination.protocol == JSON_RPC:
        operation = json_rpc_operation(environ.get("HTTP_X_AMZ_TARGET", ""))
    elif service in ("lambda", "apigateway"):
        operation = rest_json_operation(service, environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""))
    else:
        operation = None
    if operation is None or not body.size or body.size > bodies.IN_MEMORY_BYTES:
        return None
    try:
        check_body(operation, json.loads(body.bytes()))
        return None
    except ValueError:  # not JSON at all
        problem = AwsError("SerializationException", "Start of structure or map found where not expected.")
    except AwsError as error:
        problem = error
    if service == "lambda" and problem.code == "SerializationException":
        problem = AwsError(
            "InvalidRequestContentException", f"Could not parse request body into json: {problem.message}"
        )
    if destination.protocol == JSON_RPC:
        return error_response(problem, status=400, content_type="application/x-amz-json-1.1")
    return error_response(problem, status=400)


def stop_reading(environ) -> None:
    """After a refusal: discard what the client has already sent, up to a small allowance (so a
    polite client sees the answer rather than a reset), then stop reading the connection. Left to
    itself the server would drain whatever the client keeps sending."""
    connection = environ.get("werkzeug.socket")
    if connection is None:
        return
    allowance = REFUSED_BODY_ALLOWANCE
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(connection, selectors.EVENT_READ)
            while allowance > 0 and selector.select(timeout=0.01):
                data = connection.recv(min(allowance, bodies.BLOCK))
                if not data:
                    break
                allowance -= len(data)
        connection.shutdown(socket.SHUT_RD)
    except OSError:
        pass


class Headers:
    """A WSGI environ's request headers, case-insensitive, as SigV4 reads them."""

    __slots__ = ("_environ",)

    def __init__(self, environ):
        self._environ = environ

    def get(self, name: str, default=None):
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            return self._environ.get(key) or default
        return self._environ.get(f"HTTP_{key}", default)


def _query_params(environ, body: bodies.Body) -> dict[str, str]:
    """A query-protocol request's parameters: its query string and its form body."""
    params = dict(parse_qsl(environ.get("QUERY_STRING", "")))
    if body.size <= bodies.IN_MEMORY_BYTES:
        params.update(parse_qsl(body.bytes().decode("utf-8", "replace")))
    return params


def query_args(environ) -> dict[str, str]:
    query = environ.get("QUERY_STRING", "")
    return dict(parse_qsl(query, keep_blank_values=True)) if query else {}


def _raw_target(environ) -> tuple[str, str]:
    """The path and query string exactly as the client sent them (what it signed)."""
    raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw_uri:
        path, _, query = raw_uri.partition("?")
        if "://" in path:  # an absolute-form request target
            path = "/" + path.split("://", 1)[1].partition("/")[2]
        return path, query
    return environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", "")
