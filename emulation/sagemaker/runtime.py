"""SageMaker Runtime's InvokeEndpoint (rest-json): route to a variant's container, map its errors.

A container's 4xx/5xx answer reaches the client as ``ModelError`` (HTTP 424) carrying the
container's status and message, as the real runtime does.
"""

from __future__ import annotations

import re

from werkzeug.wrappers import Request, Response

from emulation.protocol import AwsError, error_response
from emulation.sagemaker.backend import SageMakerBackend
from emulation.sagemaker.hosting import ContainerTimeout, NoHealthyInstance

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
TIMEOUT_MESSAGE = (
    "Your invocation timed out while waiting for a response from container primary. Review the latency "
    "metrics for each container in Amazon CloudWatch, resolve the issue, and try again."
)
_PATH = re.compile(r"^/endpoints/(?P<name>[^/]+)/invocations$")


def payload_too_large() -> Response:
    """The 413 the runtime answers for a body over 6 MB (the edge reads at most that, chunked or not)."""
    return Response(
        f"HTTP content length exceeded {MAX_PAYLOAD_BYTES} bytes.", status=413, content_type="text/plain"
    )


class RuntimeProvider:
    def __init__(self, backend: SageMakerBackend):
        self.backend = backend

    def handle(self, request: Request) -> Response:
        try:
            return self.invoke_endpoint(request)
        except AwsError as error:
            return error_response(error)

    def invoke_endpoint(self, request: Request) -> Response:
        name = _PATH.match(request.path)["name"]
        account = self.backend.config.account_id
        with self.backend.lock:
            host = self.backend.endpoints.get(name)
        if host is None or host.description["EndpointStatus"] not in ("InService", "Updating"):
            raise AwsError("ValidationError", f"Endpoint {name} of account {account} not found.")
        target = request.headers.get("X-Amzn-SageMaker-Target-Variant")
        variant = host.choose_variant(target)
        if variant is None:
            raise AwsError(
                "ValidationError", f"Variant {target} not found for Endpoint {name} of account {account}."
            )
        try:
            reply = variant.invoke(
                request.get_data(), request.headers.get("Content-Type"), request.headers.get("Accept")
            )
        except ContainerTimeout:
            # 424, not a retryable 5xx: an SDK would otherwise resend to a hung model two or three times
            raise self._model_error(host, 0, TIMEOUT_MESSAGE) from None
        except NoHealthyInstance:  # all instances are being replaced: retrying soon will succeed
            raise AwsError(
                "ServiceUnavailable", "The service is unavailable. Try your call again.", status=503
            ) from None
        if reply.status >= 400:
            raise self._model_error(host, reply.status, reply.body.decode("utf-8", "replace"))
        return Response(
            reply.body,
            status=200,
            content_type=reply.content_type or "application/octet-stream",
            headers={"x-amzn-invoked-production-variant": variant.name},
        )

    def _model_error(self, host, status: int, text: str) -> AwsError:
        """The container's error (or, as status 0, its silence) as the runtime words it."""
        region, account = self.backend.region, self.backend.config.account_id
        kind = "client" if 400 <= status < 500 else "server"
        return AwsError(
            "ModelError",
            f'Received {kind} error ({status}) from primary with message "{text}". See '
            f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#logEventViewer:group="
            f"{host.log_group} in account {account} for more information.",
            status=424,
            OriginalStatusCode=status,
            OriginalMessage=text,
            LogStreamArn=f"arn:aws:logs:{region}:{account}:log-group:{host.log_group}",
        )
