"""moto, for the services it really implements, and direct access to its state.

Requests for S3, IAM, STS, CloudWatch Logs and the Lambda / API Gateway control planes go to moto's
own WSGI application. Our services read and write the same state in-process (an S3 object is a
dictionary lookup, not an HTTP round trip), so a training job reads what ``upload_data`` wrote.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from moto.backends import get_backend
from moto.core.config import default_user_config
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.s3.exceptions import MissingBucket

from emulation.protocol import AwsError
from emulation.state import Persistence, changes_state


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        if not uri.startswith("s3://"):
            raise ValueError(f"not an S3 URI: {uri}")
        bucket, _, key = uri[5:].partition("/")
        return cls(bucket, key)

    def relative(self, key: str) -> str:
        """An object's path under this prefix, as channels and transform outputs name it; an
        S3Uri naming one object gives its file name."""
        return key[len(self.key) :].lstrip("/") or key.rsplit("/", 1)[-1]


class MotoServices:
    """moto's WSGI app and backends for one account.

    With a state store (``persistence``), a request that changed a service returns only once the
    service is saved, and changes our own code makes (uploads, log lines) are saved soon after.
    """

    def __init__(self, account_id: str, persistence: Persistence | None = None):
        self.account_id = account_id
        self.persistence = persistence
        # AWS-managed policies (arn:aws:iam::aws:policy/...) exist in every account: notebooks attach
        # AmazonSageMakerFullAccess to their roles. moto loads them (~0.1 s) when IAM is first used.
        default_user_config["iam"]["load_aws_managed_policies"] = True
        self._app = DomainDispatcherApplication(self._create_app)

    def _create_app(self, service: str):
        app = create_backend_app(service)
        if self.persistence is None:
            return app
        persistence = self.persistence

        def saving_app(environ, start_response):
            status = []

            def recording_start_response(code, headers, *exc_info):
                status.append(int(code.split(" ", 1)[0]))
                return start_response(code, headers, *exc_info)

            writes = changes_state(environ)
            body = app(environ, recording_start_response)  # moto computes the whole answer here
            if writes and status and status[0] < 400:
                persistence.moto_wrote(service)
            return body

        return saving_app

    def changed(self, service: str) -> None:
        """Our code changed moto's ``service`` directly (not through a request)."""
        if self.persistence is not None:
            self.persistence.moto_changed(service)

    def __call__(self, environ: dict[str, Any], start_response):
        # moto picks the account per request; pin it to the emulator's account.
        environ["HTTP_X_MOTO_ACCOUNT_ID"] = self.account_id
        return self._app(environ, start_response)

    def backend(self, service: str, region: str) -> Any:
        return get_backend(service)[self.account_id][region]

    # -- S3 -------------------------------------------------------------------------------------
    @property
    def _s3(self):
        return get_backend("s3")[self.account_id]["aws"]

    def list_objects(self, location: S3Location) -> list[tuple[str, bytes]]:
        """All objects under a prefix as (key, bytes), like the S3Prefix data source reads them."""
        try:
            bucket = self._s3.get_bucket(location.bucket)
        except MissingBucket:
            return []
        return [
            (key, obj.value)
            for key, obj in sorted(bucket.keys.items())
            if key.startswith(location.key) and obj is not None
        ]

    def get_object(self, location: S3Location) -> bytes | None:
        try:
            obj = self._s3.get_object(location.bucket, location.key)
        except MissingBucket:
            return None
        return obj.value if obj is not None else None

    def put_object(self, location: S3Location, data: bytes) -> None:
        try:
            self._s3.put_object(location.bucket, location.key, data)
        except MissingBucket as error:
            raise AwsError(
                "NoSuchBucket", f"The specified bucket does not exist: {location.bucket}"
            ) from error
        self.changed("s3")

    # -- CloudWatch Logs ------------------------------------------------------------------------
    def log_stream(self, region: str, group: str, stream: str) -> LogStream:
        logs = self.backend("logs", region)
        if group not in logs.groups:
            logs.create_log_group(group, {})
        logs.ensure_log_stream(group, stream)
        self.changed("logs")
        return LogStream(logs, group, stream, lambda: self.changed("logs"))


class LogStream:
    """Append-only writer to one CloudWatch Logs stream."""

    def __init__(self, backend, group: str, stream: str, on_write=lambda: None):
        self._backend, self.group, self.stream = backend, group, stream
        self._on_write = on_write

    def write(self, *messages: str) -> None:
        now = int(time.time() * 1000)
        self._backend.put_log_events(
            self.group, self.stream, [{"timestamp": now, "message": m} for m in messages]
        )
        self._on_write()
