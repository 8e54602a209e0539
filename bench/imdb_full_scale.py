"""Workflow 2a at full scale (25,000 train / 25,000 test reviews): each stage's time, peak memory,
test accuracy, and the public path's latency (POST -> API Gateway -> Lambda -> endpoint).

Needs the full labelled set: SAGELOCAL_IMDB (directory or .tar.gz) or --data. Goals: accuracy >=
0.85 (0.86152 on AWS), whole run under 10 minutes on a 2-core machine (training alone took 355 s
on AWS), warm public-path p50 under 15 ms. The baseline measured in the same run is the endpoint
alone (a signed InvokeEndpoint with the same bag of words), i.e. what the public door adds.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path

import psutil
import requests

from bench.report import emit, parser, percentiles
from emulation import Emulator, EmulatorConfig
from workflows import imdb_web_app, review_text
from workflows.target import TargetSettings, open_target

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "aclImdb_labeled.tar.gz"


class PeakMemory:
    """Peak resident memory of this process and all its descendants (containers, Lambda workers)."""

    def __init__(self, interval: float = 0.2):
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(interval,), daemon=True)

    def _sample(self, interval: float) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for process in [me, *me.children(recursive=True)]:
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def post_latencies(url: str, review: str, count: int) -> list[float]:
    with requests.Session() as http:
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            answer = http.post(url, data=review.encode(), headers={"Content-Type": "text/plain"}, timeout=60)
            samples.append((time.perf_counter() - started) * 1000)
            answer.raise_for_status()
    return samples


def main(argv=None) -> dict:
    arguments = parser(__doc__.splitlines()[0])
    arguments.add_argument(
        "--data", type=Path, default=Path(os.environ.get("SAGELOCAL_IMDB") or DEFAULT_DATA)
    )
    arguments.add_argument("--requests", type=int, default=500, help="warm public-path requests")
    args = arguments.parse_args(argv)
    if not args.data.exists():
        print(f"imdb_full_scale: no data at {args.data}; set SAGELOCAL_IMDB or --data (skipped)")
        return {"skipped": f"no data at {args.data}"}
    review = imdb_web_app.SAMPLE_REVIEWS["positive"]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as work, PeakMemory() as memory:
        with Emulator(EmulatorConfig(port=0, data_dir=Path(work) / "data")) as emulator:
            settings = TargetSettings(name="local", endpoint_url=emulator.url)
            with open_target(settings, log=lambda *_: None) as target:
                app, data, accuracy = imdb_web_app.deploy(
                    target, Path(work) / "imdb", log=print, source=args.data
                )
                deployed_s = time.perf_counter() - started
                cold_started = time.perf_counter()
                post_latencies(app.api_url, review, 1)
                cold_ms = (time.perf_counter() - cold_started) * 1000
                warm_ms = post_latencies(app.api_url, review, args.requests)
                row = review_text.to_csv_row(review_text.bag_of_words(review, data.vocabulary))
                runtime = target.client("sagemaker-runtime")
                direct_ms = []
                for _ in range(args.requests):
                    begun = time.perf_counter()
                    runtime.invoke_endpoint(EndpointName=app.endpoint_name, ContentType="text/csv", Body=row)[
                        "Body"
                    ].read()
                    direct_ms.append((time.perf_counter() - begun) * 1000)
    total_s = time.perf_counter() - started
    warm, direct = percentiles(warm_ms), percentiles(direct_ms)
    figures = {
        "reviews": {"test": len(data.test_labels)},
        "test_accuracy": accuracy,
        "stages_s": data.timings,
        "deploy_total_s": deployed_s,
        "run_total_s": total_s,
        "peak_memory_mb": memory.peak / 1e6,
        "public_path_ms": {"cold": cold_ms, **warm},
        "endpoint_direct_ms": direct,
    }
    rows = [
        ("test accuracy", accuracy, f"{len(data.test_labels)} test reviews; 0.86152 on AWS, goal >= 0.85")
    ]
    rows += [(f"stage {name.removesuffix('_s')} (s)", value, "") for name, value in data.timings.items()]
    rows += [
        ("up to a public URL (s)", deployed_s, "data, train, transform, endpoint, Lambda, API"),
        ("whole run incl. latency tests (s)", total_s, "goal < 600 s"),
        ("peak memory, all processes (MB)", memory.peak / 1e6, ""),
        ("public path cold start (ms)", cold_ms, "first POST: Lambda init (imports nltk)"),
        ("public path warm p50 (ms)", warm["p50"], "goal < 15 ms"),
        ("public path warm p99 (ms)", warm["p99"], ""),
        ("baseline: endpoint alone p50 (ms)", direct["p50"], "signed InvokeEndpoint, same row"),
    ]
    emit("Workflow 2a at full scale", rows, args, figures)
    return figures


if __name__ == "__main__":
    main()
