"""Who may sign requests: the one registry of access keys the edge gate checks signatures against.

The emulator's own key pair (LocalStack's ``test``/``test`` by default) never expires. Every other
key is temporary and comes from STS: sessions of AssumeRole (moto keeps those, including the ones
Lambda makes for a function's execution role) and of GetSessionToken, which this module serves
itself because moto answers it with one fixed example key for everybody. A temporary key is valid
only with its session token and until it expires, as on AWS. IAM users' long-term keys
(CreateAccessKey) are valid until deleted.
"""

from __future__ import annotations

import datetime as dt
import secrets
import string
import threading
import uuid
from dataclasses import dataclass
from xml.sax.saxutils import escape

from moto.iam.models import iam_backends
from moto.sts.models import sts_backends
from werkzeug.wrappers import Response

#: GetSessionToken's DurationSeconds: default and range, as STS documents them.
SESSION_DEFAULT_SECONDS = 43200
SESSION_MIN_SECONDS = 900
SESSION_MAX_SECONDS = 129600


@dataclass(frozen=True)
class Principal:
    """A signing key and who it stands for."""

    access_key_id: str
    secret_access_key: str
    arn: str
    session_token: str | None = None
    expiration: dt.datetime | None = None
    role_name: str | None = None  # for a role session: the role whose policies apply
    policy_key_id: str | None = None  # for an IAM user's session: the user's own key (whose policies apply)

    @property
    def is_root(self) -> bool:
        return self.arn.endswith(":root")

    def expired(self, now: dt.datetime) -> bool:
        return self.expiration is not None and now >= self.expiration


class CredentialRegistry:
    """Access key id -> :class:`Principal`, for one account; thread-safe."""

    def __init__(self, account_id: str, access_key_id: str, secret_access_key: str):
        self.account_id = account_id
        self.root = Principal(access_key_id, secret_access_key, f"arn:aws:iam::{account_id}:root")
        self._sessions: dict[str, Principal] = {}
        self._lock = threading.Lock()

    def lookup(self, access_key_id: str) -> Principal | None:
        if access_key_id == self.root.access_key_id:
            return self.root
        with self._lock:
            found = self._sessions.get(access_key_id)
        return found or self._assumed_role(access_key_id) or self._user_key(access_key_id)

    def issue_session(self, parent: Principal, duration_seconds: int) -> Principal:
        """GetSessionToken: a temporary key acting as ``parent``."""
        now = dt.datetime.now(dt.timezone.utc)
        session = Principal(
            access_key_id="ASIA"
            + "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(16)),
            secret_access_key=secrets.token_urlsafe(30)[:40],
            session_token=secrets.token_urlsafe(96),
            expiration=now + dt.timedelta(seconds=duration_seconds),
            arn=parent.arn,
            role_name=parent.role_name,
            policy_key_id=parent.access_key_id,
        )
        with self._lock:
            self._sessions = {k: p for k, p in self._sessions.items() if not p.expired(now)}
            self._sessions[session.access_key_id] = session
        return session

    def _assumed_role(self, access_key_id: str) -> Principal | None:
        for partition_backend in sts_backends[self.account_id].values():
            role = partition_backend.get_assumed_role_from_access_key(access_key_id)
            if role is not None:
                return Principal(
                    access_key_id=role.access_key_id,
                    secret_access_key=role.secret_access_key,
                    session_token=role.session_token,
                    expiration=role.expiration.replace(tzinfo=dt.timezone.utc),
                    arn=role.arn,
                    role_name=role.role_arn.rsplit("/", 1)[-1],
                )
        return None

    def _user_key(self, access_key_id: str) -> Principal | None:
        for partition_backend in iam_backends[self.account_id].values():
            for user in list(partition_backend.users.values()):
                for key in user.access_keys:
                    if key.access_key_id == access_key_id and key.status == "Active":
                        return Principal(key.access_key_id, key.secret_access_key, user.arn)
        return None


def get_session_token_response(
    registry: CredentialRegistry, caller: Principal, params: dict[str, str]
) -> Response:
    """STS GetSessionToken (query protocol), minting a key the gate will accept."""
    try:
        duration = int(params.get("DurationSeconds") or SESSION_DEFAULT_SECONDS)
    except ValueError:
        duration = -1
    if not SESSION_MIN_SECONDS <= duration <= SESSION_MAX_SECONDS:
        return sts_error(
            "ValidationError",
            f"1 validation error detected: Value '{params.get('DurationSeconds')}' at 'durationSeconds' failed "
            f"to satisfy constraint: Member must have value between {SESSION_MIN_SECONDS} and {SESSION_MAX_SECONDS}",
            400,
        )
    if caller.session_token is not None:
        return sts_error("AccessDenied", "Cannot call GetSessionToken with session credentials", 403)
    session = registry.issue_session(caller, duration)
    expiration = session.expiration.strftime("%Y-%m-%dT%H:%M:%SZ")
    body = (
        '<GetSessionTokenResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
        "<GetSessionTokenResult><Credentials>"
        f"<SessionToken>{escape(session.session_token)}</SessionToken>"
        f"<SecretAccessKey>{escape(session.secret_access_key)}</SecretAccessKey>"
        f"<Expiration>{expiration}</Expiration>"
        f"<AccessKeyId>{session.access_key_id}</AccessKeyId>"
        "</Credentials></GetSessionTokenResult>"
        f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
        "</GetSessionTokenResponse>"
    )
    return Response(body, content_type="text/xml")


def sts_error(code: str, message: str, status: int) -> Response:
    body = (
        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
        f"<Error><Type>Sender</Type><Code>{code}</Code><Message>{escape(message)}</Message></Error>"
        f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    )
    return Response(body, status=status, content_type="text/xml")
