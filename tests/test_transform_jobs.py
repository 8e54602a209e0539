"""Batch transform jobs run by the SageMaker service code directly (no HTTP, no emulator server):
a real XGBoost serving container, real S3 and CloudWatch Logs (moto), a model made here.

What a user of batch transform relies on: which records go into which request, that every answer
lands in order in ``<output>/<key relative to the input prefix>.out``, how the job's description
fills in what the request left out, that a failing request fails the job and writes nothing, and
that a stop is honoured. test_sagemaker_api.py checks the same through the SDK's API end to end.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
import uuid

import numpy as np
import pytest

from emulation.config import EmulatorConfig
from emulation.moto_bridge import MotoServices, S3Location
from emulation.protocol import ValidationError
from emulation.runners import make_runner
from emulation.sagemaker.backend import SageMakerBackend
from emulation.sagemaker.transform import LOG_GROUP

ACCOUNT = "210987654321"  # moto keeps state per account: this module's own
REGION = "us-east-1"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
BUCKET = "transform-jobs"
MB = 1024 * 1024
CPUS = os.cpu_count() or 1


@pytest.fixture(scope="module")
def booster():
    """A small regression model: the predictions every record's answer must equal."""
    import xgboost

    rng = np.random.default_rng(3)
    features = rng.uniform(0, 10, size=(200, 3))
    labels = features @ np.array([1.0, -2.0, 0.5]) + rng.normal(0, 0.1, 200)
    return xgboost.train(
        {"objective": "reg:squarederror", "max_depth": 3},
        xgboost.DMatrix(features, labels),
        num_boost_round=8,
    )


@pytest.fixture(scope="module")
def backend(tmp_path_factory, booster):
    config = EmulatorConfig(
        port=0, account_id=ACCOUNT, region=REGION, data_dir=tmp_path_factory.mktemp("data")
    )
    moto = MotoServices(ACCOUNT)
    moto.backend("s3", "aws").create_bucket(BUCKET, REGION)  # S3 is global: one backend per partition
    service = SageMakerBackend(config, moto, make_runner(config))
    archive = io.BytesIO()
    model_bytes = bytes(booster.save_raw("json"))
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        info = tarfile.TarInfo("xgboost-model")
        info.size = len(model_bytes)
        tar.addfile(info, io.BytesIO(model_bytes))
    moto.put_object(S3Location.parse(f"s3://{BUCKET}/model/model.tar.gz"), archive.getvalue())
    service.create_model(
        {
            "ModelName": "transform-model",
            "PrimaryContainer": {"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/model/model.tar.gz"},
            "ExecutionRoleArn": f"arn:aws:iam::{ACCOUNT}:role/SageMakerRole",
        }
    )
    yield service
    for run in list(service.transform_jobs.values()):
        run.kill()


def csv_rows(count: int, seed: int, digits: int = 3) -> list[bytes]:
    """Records of different lengths (more digits, longer lines)."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(0, 10, size=(count, 3))
    return [",".join(f"{v:.{digits + i % 7}f}" for v in row).encode() for i, row in enumerate(values)]


def predictions(booster, rows: list[bytes]) -> np.ndarray:
    import xgboost

    matrix = np.loadtxt(io.StringIO(b"\n".join(rows).decode()), delimiter=",", ndmin=2)
    return booster.predict(xgboost.DMatrix(matrix))


def put(backend, key: str, data: bytes) -> None:
    backend.moto.put_object(S3Location.parse(f"s3://{BUCKET}/{key}"), data)


def get(backend, key: str) -> bytes | None:
    return backend.moto.get_object(S3Location.parse(f"s3://{BUCKET}/{key}"))


def run_job(backend, input_prefix: str, *, wait: bool = True, **settings):
    """CreateTransformJob as the service receives it; returns (run, output prefix)."""
    name = f"tj-{uuid.uuid4().hex[:10]}"
    output = f"output/{name}"
    transform_input = {
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/{input_prefix}"}},
        "ContentType": "text/csv",
        **settings.pop("TransformInput", {}),
    }
    request = {
        "TransformJobName": name,
        "ModelName": "transform-model",
        "TransformInput": transform_input,
        "TransformOutput": {"S3OutputPath": f"s3://{BUCKET}/{output}", **settings.pop("TransformOutput", {})},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        **settings,
    }
    run = backend.create_transform_job(request)
    if wait:
        wait_until_done(run)
    return run, output


def wait_until_done(run, statuses=("Completed", "Failed", "Stopped")):
    deadline = time.monotonic() + 240
    while run.describe()["TransformJobStatus"] not in statuses:
        assert time.monotonic() < deadline, run.describe()
        time.sleep(0.05)
    return run.describe()


def log_lines(backend, run, suffix: str = "") -> list[str]:
    logs = backend.moto.backend("logs", REGION)
    streams = [
        name
        for name in logs.groups[LOG_GROUP].streams
        if name.startswith(f"{run.name}/") and name.endswith(suffix)
    ]
    return [event.message for name in streams for event in logs.groups[LOG_GROUP].streams[name].events]


def test_multi_record_cuts_requests_at_max_payload_and_keeps_record_order(backend, booster):
    """With the JSON Accept each request's answer is one line: the output shows the cuts."""
    rows = csv_rows(40_000, seed=1)  # about 1.4 MB: two requests of at most 1 MB
    put(backend, "multi/in.csv", b"\n".join(rows) + b"\n")
    run, output = run_job(
        backend,
        "multi/",
        MaxPayloadInMB=1,
        BatchStrategy="MultiRecord",
        TransformInput={"SplitType": "Line"},
        TransformOutput={"Accept": "application/json", "AssembleWith": "Line"},
    )
    assert run.describe()["TransformJobStatus"] == "Completed", run.describe().get("FailureReason")
    answers = [json.loads(line)["predictions"] for line in get(backend, f"{output}/in.csv.out").splitlines()]
    sizes = [len(answer) for answer in answers]
    assert len(answers) == 2 and sum(sizes) == len(rows)
    first = sum(len(row) + 1 for row in rows[: sizes[0]])
    assert first <= MB < first + len(rows[sizes[0]]) + 1  # the first request was as full as it could be
    got = np.array([p["score"] for answer in answers for p in answer])
    np.testing.assert_allclose(got, predictions(booster, rows), rtol=1e-5)
    data_log = log_lines(backend, run, "/data-log")
    # MaxConcurrentTransforms, left out, is what the XGBoost container advertises: one per CPU
    assert (
        f"[sagemaker logs]: MaxConcurrentTransforms={CPUS}, MaxPayloadInMB=1, BatchStrategy=MULTI_RECORD"
        in data_log
    )


def test_single_record_sends_each_record_alone_and_assembles_lines_per_object(backend, booster):
    first, second = csv_rows(5, seed=2), csv_rows(3, seed=3)
    put(backend, "single/a.csv", b"\n".join(first) + b"\n\n")
    put(backend, "single/nested/b.csv", b"\n".join(second))
    run, output = run_job(
        backend,
        "single/",
        BatchStrategy="SingleRecord",
        MaxConcurrentTransforms=2,
        TransformInput={"SplitType": "Line"},
        TransformOutput={"Accept": "application/json", "AssembleWith": "Line"},
    )
    description = run.describe()
    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    for key, rows in (("a.csv", first), ("nested/b.csv", second)):
        lines = get(backend, f"{output}/{key}.out").decode().split("\n")
        assert lines[-1] == ""  # each answer ends its line
        answers = [json.loads(line)["predictions"] for line in lines[:-1]]
        assert [len(answer) for answer in answers] == [1] * len(rows)
        got = [answer[0]["score"] for answer in answers]
        np.testing.assert_allclose(got, predictions(booster, rows), rtol=1e-5)
    data_log = log_lines(backend, run, "/data-log")
    assert (
        "[sagemaker logs]: MaxConcurrentTransforms=2, MaxPayloadInMB=6, BatchStrategy=SINGLE_RECORD"
        in data_log
    )


def test_without_split_the_object_is_one_request_and_the_answers_are_not_joined(backend, booster):
    rows = csv_rows(4, seed=4)
    put(backend, "whole/in.csv", b"\n".join(rows))
    put(backend, "whole/second.csv", b"\n".join(rows[:2]))
    run, output = run_job(backend, "whole/")
    description = run.describe()
    assert description["TransformJobStatus"] == "Completed", description.get("FailureReason")
    assert description["TransformInput"]["SplitType"] == "None"
    assert description["TransformInput"]["CompressionType"] == "None"
    assert description["TransformOutput"]["AssembleWith"] == "None"
    # what the request left out is what the XGBoost container advertises, or the service default
    assert (description["MaxConcurrentTransforms"], description["MaxPayloadInMB"]) == (CPUS, 6)
    assert description["BatchStrategy"] == "MultiRecord"
    assert description["TransformStartTime"] <= description["TransformEndTime"]
    assert description["ModelName"] == "transform-model" and description["Environment"] == {}
    answer = get(backend, f"{output}/in.csv.out").decode()
    np.testing.assert_allclose(
        [float(v) for v in answer.replace("\n", ",").split(",") if v], predictions(booster, rows), rtol=1e-5
    )
    assert not answer.endswith("\n\n")
    assert get(backend, f"{output}/second.csv.out") is not None


def test_a_request_the_container_refuses_fails_the_job_and_writes_nothing(backend):
    put(backend, "refused/in.csv", b"\n".join(csv_rows(3, seed=5)))
    run, output = run_job(backend, "refused/", TransformInput={"ContentType": "application/x-unknown"})
    description = run.describe()
    assert description["TransformJobStatus"] == "Failed"
    assert description["FailureReason"] == "ClientError: See job logs for more information"
    assert get(backend, f"{output}/in.csv.out") is None
    data_log = " ".join(log_lines(backend, run, "/data-log"))
    assert f"s3://{BUCKET}/refused/: Bad HTTP status received from algorithm: 415" in data_log


def test_a_record_over_max_payload_fails_the_job(backend):
    put(backend, "big/in.csv", b"1," * (MB // 2 + 1) + b"1\n1,2,3\n")
    run, output = run_job(backend, "big/", MaxPayloadInMB=1, TransformInput={"SplitType": "Line"})
    description = run.describe()
    assert description["TransformJobStatus"] == "Failed"
    assert description["FailureReason"] == "A record is larger than MaxPayloadInMB (1 MB)."
    assert get(backend, f"{output}/in.csv.out") is None


def test_a_stop_is_honoured_and_a_finished_job_cannot_be_stopped(backend):
    for index in range(30):
        put(backend, f"stop/part-{index:02}.csv", b"\n".join(csv_rows(50, seed=index)))
    run, output = run_job(
        backend, "stop/", wait=False, BatchStrategy="SingleRecord", TransformInput={"SplitType": "Line"}
    )
    run.request_stop()
    assert run.describe()["TransformJobStatus"] in ("Stopping", "Stopped")
    description = wait_until_done(run)
    assert description["TransformJobStatus"] == "Stopped"
    assert "FailureReason" not in description
    written = [key for key, _ in backend.moto.list_objects(S3Location.parse(f"s3://{BUCKET}/{output}/"))]
    assert len(written) < 30
    with pytest.raises(
        ValidationError, match=r"^The request was rejected because the transform job is in status Stopped\.$"
    ):
        run.request_stop()
