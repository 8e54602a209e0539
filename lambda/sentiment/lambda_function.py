"""Sentiment Lambda function of workflow 2a (handler ``lambda_function.lambda_handler``).

API Gateway (REST API, Lambda proxy integration, POST on the root resource) hands this function
the raw review text as the request body. The function turns it into the bag of words the model
was trained on, asks the private SageMaker endpoint for a score and answers ``"1"`` (positive)
or ``"0"`` (negative) as plain text; the raw score goes in the ``X-Sentiment-Score`` header.

Deployment package: this file, ``review_text.py`` (copied verbatim from
``workflows/review_text.py``, the same code that made the training data, so serving and training
tokenize alike) and ``vocabulary.json`` (``{"word": column, ...}`` from training). The endpoint
name comes from the ``ENDPOINT_NAME`` environment variable. Nothing is pasted into the code.

Fixes against the original function: no ``str.split()`` tokenizer (training/serving skew), no
hand-pasted vocabulary or endpoint name, and errors are answered as errors (400 for an empty
review, 502 when the endpoint fails), never as a verdict.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import os
from pathlib import Path

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from review_text import bag_of_words, to_csv_row

logger = logging.getLogger()
logger.setLevel(logging.INFO)

_VOCABULARY_PATH = Path(__file__).resolve().parent / "vocabulary.json"

# Loaded and created once per execution environment; warm invocations reuse them.
with _VOCABULARY_PATH.open(encoding="utf-8") as _handle:
    VOCABULARY: dict[str, int] = {word: int(column) for word, column in json.load(_handle).items()}
RUNTIME = boto3.client("sagemaker-runtime")

SCORE_HEADER = "X-Sentiment-Score"


def _response(status: int, body: str, extra_headers: dict[str, str] | None = None) -> dict:
    headers = {"Content-Type": "text/plain", "Access-Control-Allow-Origin": "*"}
    if extra_headers:
        headers.update(extra_headers)
    return {"statusCode": status, "headers": headers, "body": body}


def _review_text(event: dict) -> str:
    body = event.get("body") if isinstance(event, dict) else None
    if not body:
        return ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body, validate=True).decode("utf-8", errors="replace")
    return body


def _parse_score(payload: str) -> tuple[str, float]:
    """First value of the endpoint's answer, e.g. ``"0.93\\n"`` -> ``("0.93", 0.93)``."""
    for line in payload.replace(",", "\n").splitlines():
        if line.strip():
            text = line.strip()
            score = float(text)
            if not math.isfinite(score):
                raise ValueError(f"not a finite score: {text}")
            return text, score
    raise ValueError("empty answer")


def lambda_handler(event, context):
    try:
        review = _review_text(event)
    except (binascii.Error, ValueError):
        return _response(400, "Bad request: the body is marked base64 but does not decode.")
    if not review.strip():
        return _response(400, "Bad request: send the review text as the request body.")

    row = to_csv_row(bag_of_words(review, VOCABULARY))
    endpoint = os.environ["ENDPOINT_NAME"]
    try:
        answer = RUNTIME.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body=row)
        payload = answer["Body"].read().decode("utf-8")
    except ClientError as exc:
        error = exc.response.get("Error", {})
        logger.error("invoke_endpoint(%s) failed: %s", endpoint, exc)
        return _response(
            502,
            f"The model endpoint {endpoint} failed: {error.get('Code', 'Error')}: {error.get('Message', exc)}",
        )
    except BotoCoreError as exc:
        logger.error("invoke_endpoint(%s) failed: %s", endpoint, exc)
        return _response(502, f"The model endpoint {endpoint} could not be reached: {exc}")

    try:
        score_text, score = _parse_score(payload)
    except ValueError:
        logger.error("endpoint %s answered %r, not a score", endpoint, payload[:200])
        return _response(502, f"The model endpoint {endpoint} answered something that is not a score.")

    verdict = "1" if round(score) >= 1 else "0"
    return _response(
        200,
        verdict,
        {SCORE_HEADER: score_text, "Access-Control-Expose-Headers": SCORE_HEADER},
    )
