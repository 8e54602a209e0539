"""The request path: InvokeEndpoint next to the trivial-server floor, the public path's warm
latency, and concurrent throughput against one and two endpoint instances.

The emulator runs in its own process, as ``sagelocal emulator``, ``run`` and ``exec`` run it.
Baselines measured in the same run:
- the floor: a trivial HTTP/1.1 keep-alive server in its own process (standard library, one
  write per answer, no Nagle) answering the very same boto3 ``invoke_endpoint`` call with a fixed
  prediction; the client code is identical, only ``endpoint_url`` differs. What sagelocal adds is
  the ratio.
- throughput: 8 client threads, each with its own boto3 client, against the Boston endpoint with
  one instance and then with two (UpdateEndpoint), the same rows.
The public path is the IMDB sample app (POST -> API Gateway -> Lambda -> endpoint), warm.
"""

from __future__ import annotations

import multiprocessing
import socket
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import psutil

from bench.imdb_full_scale import post_latencies
from bench.invoke_latency import deploy_boston, timed
from bench.report import emit, parser, percentiles
from emulation.child import EmulatorProcess
from emulation.config import EmulatorConfig
from workflows import imdb_web_app
from workflows.target import TargetSettings, open_target

SEQUENTIAL, THREADS, PER_THREAD, PUBLIC = 2000, 8, 300, 500


class _Trivial(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self):  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b"24.5"
        self.wfile.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nx-amzn-invoked-production-variant: AllTraffic\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )

    def log_message(self, *args):
        pass


def _serve_trivial(ports) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Trivial)
    server.daemon_threads = True
    ports.put(server.server_port)
    server.serve_forever()


def floor_samples(session: boto3.Session, row: str) -> list[float]:
    context = multiprocessing.get_context("spawn")
    ports = context.Queue()
    server = context.Process(target=_serve_trivial, args=(ports,), daemon=True)
    server.start()
    try:
        runtime = session.client(
            "sagemaker-runtime", endpoint_url=f"http://127.0.0.1:{ports.get(timeout=60)}"
        )
        return invoke_samples(runtime, "bench", row, SEQUENTIAL)
    finally:
        server.kill()
        server.join()


def invoke_samples(runtime, endpoint: str, row: str, count: int, warm: int = 200) -> list[float]:
    def invoke():
        runtime.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body=row)["Body"].read()

    timed(invoke, warm)  # the connection, the client's and the server's caches
    return timed(invoke, count)


def throughput(session: boto3.Session, url: str, endpoint: str, row: str) -> float:
    """Invocations per second with THREADS clients calling at once."""
    clients = [session.client("sagemaker-runtime", endpoint_url=url) for _ in range(THREADS)]
    for runtime in clients:  # connect, and let every instance see traffic before timing
        invoke_samples(runtime, endpoint, row, 0, warm=10)
    start = threading.Barrier(THREADS + 1)

    def worker(runtime):
        start.wait()
        for _ in range(PER_THREAD):
            runtime.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body=row)["Body"].read()

    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(worker, runtime) for runtime in clients]
        start.wait()
        started = time.perf_counter()
        for future in futures:
            future.result()
    return THREADS * PER_THREAD / (time.perf_counter() - started)


def scale(sagemaker, endpoint: str, instances: int) -> None:
    config = f"{endpoint}-{instances}"
    current = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint)["ProductionVariants"][0]
    sagemaker.create_endpoint_config(
        EndpointConfigName=config, ProductionVariants=[{**current, "InitialInstanceCount": instances}]
    )
    sagemaker.update_endpoint(EndpointName=endpoint, EndpointConfigName=config)
    sagemaker.get_waiter("endpoint_in_service").wait(EndpointName=endpoint, WaiterConfig={"Delay": 1})


def _cpu_seconds(pid: int) -> float:
    """CPU time used so far by a process and its descendants (the endpoint's containers)."""
    root = psutil.Process(pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def public_path_samples(url: str, work: Path) -> list[float]:
    with open_target(TargetSettings(name="local", endpoint_url=url), log=lambda *_: None) as target:
        app, _, _ = imdb_web_app.deploy(target, work / "imdb", log=lambda *_: None)
        review = imdb_web_app.SAMPLE_REVIEWS["positive"]
        post_latencies(app.api_url, review, 50)  # Lambda cold start and warm-up
        return post_latencies(app.api_url, review, PUBLIC)


def main(argv=None) -> dict:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    session = boto3.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
    with (
        tempfile.TemporaryDirectory() as work,
        EmulatorProcess(EmulatorConfig(port=0, data_dir=Path(work) / "data")) as emulator,
    ):
        clients: dict = {}

        def client(name):
            return clients.setdefault(name, session.client(name, endpoint_url=emulator.url))

        endpoint, row, _ = deploy_boston(client, Path(work))
        emulator_cpu = _cpu_seconds(emulator.process.pid)
        invoke = percentiles(invoke_samples(client("sagemaker-runtime"), endpoint, row, SEQUENTIAL))
        # CPU per call barely depends on how busy the machine is; wall latency does.
        cpu_ms = (_cpu_seconds(emulator.process.pid) - emulator_cpu) / (SEQUENTIAL + 200) * 1000
        floor = percentiles(floor_samples(session, row))
        one_instance = throughput(session, emulator.url, endpoint, row)
        scale(client("sagemaker"), endpoint, 2)
        two_instances = throughput(session, emulator.url, endpoint, row)
        public = percentiles(public_path_samples(emulator.url, Path(work)))

    figures = {
        "invoke_endpoint_ms": invoke,
        "trivial_server_floor_ms": floor,
        "invoke_over_floor_p50": invoke["p50"] / floor["p50"],
        "emulator_and_container_cpu_ms_per_invoke": cpu_ms,
        "public_path_warm_ms": public,
        "throughput_per_s": {"1_instance": one_instance, "2_instances": two_instances},
        "throughput_2_over_1": two_instances / one_instance,
        "threads": THREADS,
    }
    emit(
        "Request path: InvokeEndpoint vs the trivial-server floor, public path, concurrency",
        [
            ("InvokeEndpoint p50 (ms)", invoke["p50"], f"{SEQUENTIAL} sequential calls, one Boston row"),
            ("InvokeEndpoint p99 (ms)", invoke["p99"], ""),
            ("baseline: trivial server p50 (ms)", floor["p50"], "same boto3 call, fixed answer"),
            ("InvokeEndpoint / floor p50", figures["invoke_over_floor_p50"], "x (goal <= 1.5)"),
            ("emulator + container CPU per invoke (ms)", cpu_ms, "psutil, the emulator's process tree"),
            ("public path warm p50 (ms)", public["p50"], f"IMDB sample app, {PUBLIC} POSTs (goal <= 5)"),
            ("public path warm p99 (ms)", public["p99"], ""),
            (f"{THREADS} threads, 1 instance (invocations/s)", one_instance, ""),
            (f"{THREADS} threads, 2 instances (invocations/s)", two_instances, ""),
            ("2 instances / 1 instance", figures["throughput_2_over_1"], "x"),
        ],
        args,
        figures,
    )
    return figures


if __name__ == "__main__":
    main()
