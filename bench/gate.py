"""What the edge gate costs: InvokeEndpoint and a 1 MB S3 PutObject, with and without it, in one run.

One emulator, one deployed Boston endpoint. Calls alternate gate on / gate off (the edge's switch
that only this benchmark turns), so drift in machine load hits both sides alike. Besides the
end-to-end boto3 latencies, the gate's own work on an InvokeEndpoint request (routing, signature,
bounded body read) is timed in-process, which is the figure the goal (< 0.1 ms) is about: end to
end, a boto3 round trip varies by more than that from call to call.
"""

from __future__ import annotations

import io
import tempfile
import time
from pathlib import Path

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from bench.invoke_latency import deploy_boston, timed
from bench.report import emit, parser, percentiles
from emulation import Emulator, EmulatorConfig

INVOKES = 2000  # per side
PUTS = 200


def _signed_environ(url: str, path: str, body: bytes) -> dict:
    """A WSGI environ for a signed InvokeEndpoint request, as the server would hand it to the edge."""
    request = AWSRequest(method="POST", url=f"{url}{path}", data=body, headers={"Content-Type": "text/csv"})
    SigV4Auth(Credentials("test", "test"), "sagemaker", "us-east-1").add_auth(request)
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "RAW_URI": path,
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "text/csv",
        "HTTP_HOST": url.removeprefix("http://"),
    }
    for name, value in request.headers.items():
        if name.lower() not in ("content-type", "content-length"):
            environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ


def gate_only_samples(edge, url: str, path: str, body: bytes, count: int) -> list[float]:
    """The gate's work alone (route, authenticate, read the body) on one InvokeEndpoint request."""
    template = _signed_environ(url, path, body)
    samples = []
    for _ in range(count):
        environ = {**template, "wsgi.input": io.BytesIO(body)}
        started = time.perf_counter()
        refused = edge.gate.admit(environ, edge.destination(environ))
        samples.append((time.perf_counter() - started) * 1000)
        assert refused is None
    return samples


def main(argv=None) -> dict:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    with (
        tempfile.TemporaryDirectory() as work,
        Emulator(EmulatorConfig(port=0, data_dir=Path(work) / "data")) as emulator,
    ):
        session = boto3.Session(
            aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
        )
        clients: dict = {}

        def client(name):
            return clients.setdefault(name, session.client(name, endpoint_url=emulator.url))

        endpoint, row, _ = deploy_boston(client, Path(work))
        runtime, s3 = client("sagemaker-runtime"), client("s3")
        megabyte = b"m" * (1024 * 1024)

        def invoke():
            runtime.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body=row)["Body"].read()

        def put():
            s3.put_object(Bucket="bench", Key="gate/one-megabyte", Body=megabyte)

        for _ in range(100):  # warm connections and caches
            invoke()
        put()
        samples = {(what, gate): [] for what in ("invoke", "put") for gate in (True, False)}
        for what, call, count in (("invoke", invoke, INVOKES), ("put", put, PUTS)):
            for index in range(2 * count):  # alternate call by call: load spikes hit both sides alike
                gate = index % 2 == 0
                emulator.edge.gate_enabled = gate
                samples[what, gate] += timed(call, 1)
        emulator.edge.gate_enabled = True
        gate_ms = gate_only_samples(
            emulator.edge, emulator.url, f"/endpoints/{endpoint}/invocations", row.encode(), 5000
        )

    p = {key: percentiles(values) for key, values in samples.items()}
    gate_p = percentiles(gate_ms)
    figures = {
        "invoke_endpoint_ms_with_gate": p["invoke", True],
        "invoke_endpoint_ms_without_gate": p["invoke", False],
        "invoke_endpoint_p50_added_ms": p["invoke", True]["p50"] - p["invoke", False]["p50"],
        "put_object_1mb_ms_with_gate": p["put", True],
        "put_object_1mb_ms_without_gate": p["put", False],
        "put_object_1mb_p50_added_ms": p["put", True]["p50"] - p["put", False]["p50"],
        "gate_alone_on_invoke_endpoint_ms": gate_p,
        "invoke_samples_per_side": INVOKES,
        "put_samples_per_side": PUTS,
    }
    emit(
        "The edge gate's cost (calls alternate gate on / off; goal: < 0.1 ms added to InvokeEndpoint)",
        [
            ("invoke_endpoint p50 with gate (ms)", p["invoke", True]["p50"], "boto3, one Boston row"),
            ("invoke_endpoint p50 without gate (ms)", p["invoke", False]["p50"], ""),
            ("  added p50 (ms)", figures["invoke_endpoint_p50_added_ms"], "end to end, noisy at this scale"),
            ("gate alone on InvokeEndpoint p50 (ms)", gate_p["p50"], "in-process: route, SigV4, body read"),
            ("gate alone on InvokeEndpoint p99 (ms)", gate_p["p99"], ""),
            ("put_object 1 MB p50 with gate (ms)", p["put", True]["p50"], "signed payload: SHA-256 checked"),
            ("put_object 1 MB p50 without gate (ms)", p["put", False]["p50"], ""),
            ("  added p50 (ms)", figures["put_object_1mb_p50_added_ms"], ""),
        ],
        args,
        figures,
    )
    return figures


if __name__ == "__main__":
    main()
