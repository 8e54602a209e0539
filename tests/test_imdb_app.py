"""Workflow 2a on the local target: the public path works, serving and training agree, and the run
cleans up everything it made (endpoint, Lambda, role, REST API)."""

from __future__ import annotations

import time

import pytest
import requests
from sklearn.feature_extraction.text import CountVectorizer

from workflows import imdb_web_app, review_text
from workflows.target import TargetSettings, open_target

pytestmark = pytest.mark.e2e


def inventory(client):
    s3, logs = client("s3"), client("logs")
    return (
        sorted(e["EndpointName"] for e in client("sagemaker").list_endpoints(MaxResults=100)["Endpoints"]),
        sorted(f["FunctionName"] for f in client("lambda").list_functions()["Functions"]),
        sorted(r["RoleName"] for r in client("iam").list_roles()["Roles"]),
        sorted(a["id"] for a in client("apigateway").get_rest_apis()["items"]),
        sorted(
            f"{b['Name']}/{o['Key']}"
            for b in s3.list_buckets()["Buckets"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=b["Name"])
            for o in page.get("Contents", [])
        ),
        sorted(
            f"{g['logGroupName']}/{s['logStreamName']}"
            for page in logs.get_paginator("describe_log_groups").paginate()
            for g in page["logGroups"]
            for s in logs.describe_log_streams(logGroupName=g["logGroupName"])["logStreams"]
        ),
    )


def _wait_for_other_jobs(client, timeout: float = 300) -> None:
    """Jobs other tests started may still finish and write their outputs: wait, so that the
    inventory below sees only what this run does."""
    sagemaker = client("sagemaker")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = sagemaker.list_training_jobs(StatusEquals="InProgress")["TrainingJobSummaries"]
        running += sagemaker.list_transform_jobs(StatusEquals="InProgress")["TransformJobSummaries"]
        if not running:
            return
        time.sleep(0.5)


def test_imdb_web_app_runs_and_cleans_up(emulator, client, tmp_path):
    _wait_for_other_jobs(client)
    before = inventory(client)
    with open_target(TargetSettings(name="local", endpoint_url=emulator.url), log=lambda *_: None) as target:
        result = imdb_web_app.run(target, tmp_path, log=lambda *_: None)
    assert result.metrics["test_accuracy"] > 0.65  # 1,000-review sample; the full set gives ~0.86
    assert result.metrics["public_path_correct"] == 2
    # The same review scored through the public door and straight at the endpoint: identical.
    assert result.metrics["public_vs_endpoint_max_score_difference"] == 0.0
    assert set(result.details["timings"]) == {
        "prepare_s",
        "vectorize_s",
        "upload_s",
        "train_s",
        "transform_s",
    }
    assert [p.name for p in result.plots] == ["score-distribution.png"] and result.plots[0].exists()
    # Nothing left: no endpoint, function, role or API, and neither the uploads, the model
    # artifacts and transform outputs in S3 nor the log streams of its jobs, endpoint and function.
    # Compared as "nothing added": other tests' emulators share moto's state and may remove theirs.
    after = inventory(client)
    assert [sorted(set(now) - set(then)) for now, then in zip(after, before, strict=True)] == [[]] * len(
        before
    )


def test_errors_api_gateway_makes_itself_carry_cors_headers(emulator, client):
    """A browser must see a gateway error (403, 429, 5xx) as that error, not as a CORS failure."""
    apigateway = client("apigateway")
    api_id = apigateway.create_rest_api(name="cors-errors")["id"]
    try:
        root = next(r["id"] for r in apigateway.get_resources(restApiId=api_id)["items"] if r["path"] == "/")
        imdb_web_app._enable_cors(apigateway, api_id, root)
        apigateway.create_deployment(restApiId=api_id, stageName="prod")
        missing = requests.post(
            emulator.execute_api_url(api_id, "prod") + "/no-such-path", data="x", timeout=10
        )
        assert missing.status_code == 403
        assert missing.json() == {"message": "Missing Authentication Token"}
        assert missing.headers["Access-Control-Allow-Origin"] == "*"
        assert missing.headers["Access-Control-Allow-Methods"] == "OPTIONS,POST"
    finally:
        apigateway.delete_rest_api(restApiId=api_id)


def test_lambda_features_equal_training_features():
    """No training/serving skew: the Lambda's bag of words is the training matrix's row."""
    reviews = [
        "I loved this movie!<br /><br />Brilliant - truly/really brilliant acting.",
        "Worst film ever; a boring, stupid (and loud) mess... don't watch it.",
    ]
    vectorizer = CountVectorizer(tokenizer=review_text.tokenize, lowercase=False, token_pattern=None)
    matrix = vectorizer.fit_transform(reviews).toarray()
    vocabulary = {word: int(column) for word, column in vectorizer.vocabulary_.items()}
    for review, row in zip(reviews, matrix, strict=True):
        assert review_text.bag_of_words(review, vocabulary) == row.tolist()
