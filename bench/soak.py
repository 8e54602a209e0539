"""Soak: InvokeEndpoint and the public path under sustained load from 8 threads, and what it costs.

The emulator runs as its own process (``sagelocal emulator``), as an operator runs it, so its
resident memory, open files and process tree are its own, measured before and after the load.
The endpoint serves the Boston model; the public path is the IMDB app's shape: API Gateway
(REST API, Lambda proxy integration) -> a Lambda function -> InvokeEndpoint on that endpoint.
Every error counts (the goal is 0): a client error, a non-200 answer or a wrong body.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import psutil
import requests
from botocore.config import Config

from bench.invoke_latency import deploy_boston
from bench.report import emit, parser, percentiles

THREADS = 8
FUNCTION_SOURCE = """
import os
import boto3

RUNTIME = boto3.client("sagemaker-runtime")

def handler(event, context):
    answer = RUNTIME.invoke_endpoint(
        EndpointName=os.environ["ENDPOINT_NAME"], ContentType="text/csv", Body=event["body"]
    )
    return {"statusCode": 200, "headers": {"Content-Type": "text/plain"}, "body": answer["Body"].read().decode()}
"""
PROJECT_ROOT = Path(__file__).resolve().parents[1]


class EmulatorProcess:
    """``sagelocal emulator --port 0`` in a process of its own."""

    def __init__(self, data_dir: Path):
        environment = {
            **os.environ,
            "SAGELOCAL_DATA_DIR": str(data_dir),
            "SAGELOCAL_ROLE_PROPAGATION_SECONDS": "0",  # the load, not IAM's propagation delay, is measured here
            "PYTHONPATH": os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p),
        }
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "workflows.cli", "emulator", "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
            env=environment,
        )
        self.url = re.search(r"(http://\S+)", self.popen.stdout.readline())[1]
        self.process = psutil.Process(self.popen.pid)

    def footprint(self) -> dict[str, float]:
        tree = [self.process, *self.process.children(recursive=True)]
        return {
            "emulator_rss_mb": self.process.memory_info().rss / 2**20,
            "tree_rss_mb": sum(_rss(p) for p in tree) / 2**20,
            "open_files": self.process.num_fds(),
            "threads": self.process.num_threads(),
            "processes": len(tree),
        }

    def stop(self) -> None:
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(30)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


def _rss(process: psutil.Process) -> int:
    try:
        return process.memory_info().rss
    except psutil.NoSuchProcess:
        return 0


def publish(client, endpoint: str, emulator_url: str) -> str:
    """Role, Lambda function and REST API (POST / -> the function); returns the public URL."""
    iam, lam, apigateway = client("iam"), client("lambda"), client("apigateway")
    role = iam.create_role(
        RoleName="soak",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]["Arn"]
    iam.put_role_policy(
        RoleName="soak",
        PolicyName="invoke",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "sagemaker:InvokeEndpoint", "Resource": "*"}],
            }
        ),
    )
    package = io.BytesIO()
    with zipfile.ZipFile(package, "w") as archive:
        entry = zipfile.ZipInfo("app.py")
        entry.external_attr = 0o644 << 16  # readable, as Lambda requires of a package's files
        archive.writestr(entry, FUNCTION_SOURCE)
    function_arn = lam.create_function(
        FunctionName="soak",
        Runtime="python3.12",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": package.getvalue()},
        Timeout=30,
        Environment={"Variables": {"ENDPOINT_NAME": endpoint}},
    )["FunctionArn"]
    lam.get_waiter("function_active_v2").wait(FunctionName="soak", WaiterConfig={"Delay": 0.2})
    api_id = apigateway.create_rest_api(name="soak")["id"]
    root = next(r["id"] for r in apigateway.get_resources(restApiId=api_id)["items"] if r["path"] == "/")
    apigateway.put_method(restApiId=api_id, resourceId=root, httpMethod="POST", authorizationType="NONE")
    apigateway.put_integration(
        restApiId=api_id,
        resourceId=root,
        httpMethod="POST",
        type="AWS_PROXY",
        integrationHttpMethod="POST",
        uri=f"arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{function_arn}/invocations",
    )
    lam.add_permission(
        FunctionName="soak",
        StatementId="api-gateway",
        Action="lambda:InvokeFunction",
        Principal="apigateway.amazonaws.com",
        SourceArn=f"arn:aws:execute-api:us-east-1:000000000000:{api_id}/*/POST/",
    )
    apigateway.create_deployment(restApiId=api_id, stageName="prod")
    return f"{emulator_url}/_aws/execute-api/{api_id}/prod/"


def hammer(call, total: int) -> tuple[list[float], int, float]:
    """``total`` calls from THREADS threads; returns (latencies in ms, errors, seconds)."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    local = threading.local()

    def one(_):
        nonlocal errors
        started = time.perf_counter()
        try:
            ok = call(local)
        except Exception:
            ok = False
        elapsed = (time.perf_counter() - started) * 1000
        with lock:
            latencies.append(elapsed)
            errors += not ok

    started = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(one, range(total)))
    return latencies, errors, time.perf_counter() - started


def main(argv=None) -> dict:
    arguments = parser(__doc__.splitlines()[0])
    arguments.add_argument("--invocations", type=int, default=10_000)
    arguments.add_argument("--posts", type=int, default=2_000)
    args = arguments.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        emulator = EmulatorProcess(Path(work) / "data")
        try:
            session = boto3.Session(
                aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
            )
            settings = Config(max_pool_connections=THREADS, retries={"mode": "standard", "max_attempts": 1})

            def client(name):
                return session.client(name, endpoint_url=emulator.url, config=settings)

            endpoint, row, _ = deploy_boston(client, Path(work))
            url = publish(client, endpoint, emulator.url)
            expected = (
                client("sagemaker-runtime")
                .invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body=row)["Body"]
                .read()
            )
            assert requests.post(url, data=row, timeout=60).content == expected, "the public path answers"
            before = emulator.footprint()

            def invoke(local) -> bool:
                if not hasattr(local, "runtime"):
                    local.runtime = client("sagemaker-runtime")
                answer = local.runtime.invoke_endpoint(
                    EndpointName=endpoint, ContentType="text/csv", Body=row
                )
                return answer["Body"].read() == expected

            def post(local) -> bool:
                if not hasattr(local, "http"):
                    local.http = requests.Session()
                answer = local.http.post(url, data=row, timeout=60)
                return answer.status_code == 200 and answer.content == expected

            invoke_ms, invoke_errors, invoke_seconds = hammer(invoke, args.invocations)
            post_ms, post_errors, post_seconds = hammer(post, args.posts)
            after = emulator.footprint()
        finally:
            emulator.stop()

    invoke_p, post_p = percentiles(invoke_ms), percentiles(post_ms)
    figures = {
        "invoke_endpoint": {
            "calls": args.invocations,
            "errors": invoke_errors,
            "ms": invoke_p,
            "per_s": args.invocations / invoke_seconds,
        },
        "public_path_post": {
            "calls": args.posts,
            "errors": post_errors,
            "ms": post_p,
            "per_s": args.posts / post_seconds,
        },
        "before": before,
        "after": after,
        "threads": THREADS,
    }
    rows = [
        (f"InvokeEndpoint: {args.invocations} calls, errors", invoke_errors, "goal: 0"),
        ("InvokeEndpoint p50 / p99 (ms)", f"{invoke_p['p50']:.2f} / {invoke_p['p99']:.2f}", ""),
        ("InvokeEndpoint throughput (calls/s)", figures["invoke_endpoint"]["per_s"], f"{THREADS} threads"),
        (f"public path POST: {args.posts} calls, errors", post_errors, "API Gateway -> Lambda -> endpoint"),
        ("public path p50 / p99 (ms)", f"{post_p['p50']:.2f} / {post_p['p99']:.2f}", ""),
        ("public path throughput (calls/s)", figures["public_path_post"]["per_s"], f"{THREADS} threads"),
    ]
    for key, label in (
        ("emulator_rss_mb", "emulator RSS (MB)"),
        ("tree_rss_mb", "emulator + its processes RSS (MB)"),
        ("open_files", "emulator open files"),
        ("threads", "emulator threads"),
        ("processes", "processes (emulator and all it started)"),
    ):
        rows.append((f"{label} before -> after", f"{before[key]:.0f} -> {after[key]:.0f}", ""))
    emit(
        f"Soak: {args.invocations} InvokeEndpoint and {args.posts} public-path POSTs from {THREADS} threads",
        rows,
        args,
        figures,
    )
    return figures


if __name__ == "__main__":
    main()
