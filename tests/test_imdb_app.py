"""Workflow 2a on the local target: the public path works, serving and training agree, and the run
cleans up everything it made (endpoint, Lambda, role, REST API)."""

from __future__ import annotations

import pytest
from sklearn.feature_extraction.text import CountVectorizer

from workflows import imdb_web_app, review_text
from workflows.target import TargetSettings, open_target

pytestmark = pytest.mark.e2e


def inventory(client):
    return (
        sorted(e["EndpointName"] for e in client("sagemaker").list_endpoints(MaxResults=100)["Endpoints"]),
        sorted(f["FunctionName"] for f in client("lambda").list_functions()["Functions"]),
        sorted(r["RoleName"] for r in client("iam").list_roles()["Roles"]),
        sorted(a["id"] for a in client("apigateway").get_rest_apis()["items"]),
    )


def test_imdb_web_app_runs_and_cleans_up(emulator, client, tmp_path):
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
    assert inventory(client) == before


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
