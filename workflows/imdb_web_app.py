"""2a: IMDB sentiment web app: XGBoost on a bag of words behind a public REST API.

Prepare the reviews -> bag of words (5,000 words, the shared ``review_text`` module) -> train
(SageMaker SDK Estimator) -> batch transform the test reviews (accuracy) -> deploy a private
endpoint -> build the Lambda package (function + the same text module + vocabulary; the endpoint
name in an environment variable) -> IAM role -> Lambda function -> REST API (POST on ``/``,
Lambda proxy, CORS preflight) -> stage ``prod`` -> the public URL, checked with real reviews.

Fixed defects of the original: the Lambda tokenised with ``str.split()`` while training used
CountVectorizer (skew), the vocabulary and endpoint name were pasted by hand, no error handling.
SDK v1 names replaced (``get_image_uri`` -> ``image_uris.retrieve``). ``eval_metric=error`` is
added so that early stopping works on the 1.7-1 image as it did on the 0.90 image of the original
(1.3-1 and later ignore ``early_stopping_rounds`` without an evaluation metric).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workflows import lambda_package, review_text, steps
from workflows.datasets import imdb
from workflows.evaluation import plot_score_distribution
from workflows.plan import Item, instances
from workflows.registry import WorkflowResult
from workflows.retry import with_backoff
from workflows.target import Target

NAME = "imdb-web-app"
SUMMARY = "IMDB sentiment: train, batch transform, endpoint, Lambda + API Gateway public API"
PREFIX = "sentiment-web-app"
HYPERPARAMETERS = {
    "max_depth": 5,
    "eta": 0.2,
    "gamma": 4,
    "min_child_weight": 6,
    "subsample": 0.8,
    "objective": "binary:logistic",
    "eval_metric": "error",
    "early_stopping_rounds": 10,
    "num_round": 500,
}
#: Names get a timestamp suffix, as the SDK's do: a second deployment (or one kept with --keep)
#: in the same account and region does not collide.
FUNCTION_NAME = "sentiment-analysis"
ROLE_NAME = "sentiment-analysis-lambda-role"
STAGE = "prod"
SEED = 2011
#: The public stage's throttle: a kept (--keep) public API cannot run up the bill unbounded.
THROTTLE_RATE, THROTTLE_BURST = 10, 20
#: How long to retry what AWS makes consistent only after a while (role, permission, deployment).
PROPAGATION_SECONDS = 120
#: Locally only the emulator's own delays (a new role, a Pending function) need waiting out.
LOCAL_PROPAGATION_SECONDS = 15


def plan(instance_type: str) -> list[Item]:
    return [
        instances("training job", "training", 1, instance_type),
        Item("model", "xgboost " + steps.XGBOOST_VERSION),
        instances("transform job", "transform", 1, instance_type),
        instances(
            "endpoint config + endpoint", "endpoint", 1, instance_type, "private: signed requests only"
        ),
        Item("IAM role", f"{ROLE_NAME}-<timestamp> (Lambda; sagemaker:InvokeEndpoint on the endpoint)"),
        Item(
            "Lambda function",
            f"{FUNCTION_NAME}-<timestamp> ({lambda_package.RUNTIME}, {lambda_package.ARCHITECTURE}; per request)",
        ),
        Item(
            "REST API",
            f"POST / (Lambda proxy) + OPTIONS (CORS), stage {STAGE}, "
            f"throttled to {THROTTLE_RATE} requests/s (per request)",
        ),
    ]


SAMPLE_REVIEWS = {
    "positive": "This movie was a wonderful, moving experience. The acting was brilliant and I loved every minute.",
    "negative": "A dull, boring mess. The plot made no sense, the acting was awful and I wanted my money back.",
}


@dataclass
class Prepared:
    directory: Path
    vocabulary: dict[str, int]
    test_labels: np.ndarray
    test_texts: list[str]
    timings: dict[str, float] = field(default_factory=dict)
    test_scores: np.ndarray | None = None  # from the batch transform


@dataclass
class SentimentApp:
    """What a deployed app is: where the public API is and what serves it."""

    api_url: str
    api_id: str
    endpoint_name: str
    function_name: str


def _write_csv(path: Path, matrix, labels=None) -> None:
    """Dense CSV (label first, no header), written from the sparse matrix row by row."""
    columns = matrix.shape[1]
    with path.open("w") as out:
        for row in range(matrix.shape[0]):
            cells = ["0"] * columns
            start, end = matrix.indptr[row], matrix.indptr[row + 1]
            for column, value in zip(matrix.indices[start:end], matrix.data[start:end], strict=True):
                cells[column] = str(value)
            prefix = f"{labels[row]}," if labels is not None else ""
            out.write(prefix + ",".join(cells) + "\n")


def prepare(source: Path, directory: Path, log=print) -> Prepared:
    from sklearn.feature_extraction.text import CountVectorizer

    timings = {}
    started = time.perf_counter()
    reviews = imdb.load_reviews(source)
    validation_size = 10_000 if len(reviews.train_texts) >= 20_000 else 0.4
    split = imdb.shuffle_and_split(reviews, seed=SEED, validation_size=validation_size)
    timings["prepare_s"] = time.perf_counter() - started
    log(
        f"reviews: {len(split.train_texts)} train, {len(split.validation_texts)} validation, {len(split.test_texts)} test"
    )

    started = time.perf_counter()
    vectorizer = CountVectorizer(
        max_features=review_text.VOCABULARY_SIZE,
        tokenizer=review_text.tokenize,
        lowercase=False,
        token_pattern=None,
    )
    train = vectorizer.fit_transform(split.train_texts).tocsr()
    validation = vectorizer.transform(split.validation_texts).tocsr()
    test = vectorizer.transform(split.test_texts).tocsr()
    directory.mkdir(parents=True, exist_ok=True)
    _write_csv(directory / "train.csv", train, split.train_labels)
    _write_csv(directory / "validation.csv", validation, split.validation_labels)
    _write_csv(directory / "test.csv", test)
    timings["vectorize_s"] = time.perf_counter() - started
    vocabulary = {word: int(column) for word, column in vectorizer.vocabulary_.items()}
    return Prepared(directory, vocabulary, np.asarray(split.test_labels), list(split.test_texts), timings)


def train_and_deploy(target: Target, data: Prepared, log=print):
    """Upload, train, batch-transform the test set and deploy; return (estimator, predictor, accuracy)."""
    session = target.sagemaker_session
    started = time.perf_counter()
    locations = {
        name: session.upload_data(
            str(data.directory / f"{name}.csv"), bucket=target.bucket, key_prefix=PREFIX
        )
        for name in ("test", "validation", "train")
    }
    data.timings["upload_s"] = time.perf_counter() - started

    estimator = steps.estimator(target, PREFIX, HYPERPARAMETERS)
    log("training...")
    started = time.perf_counter()
    estimator.fit(steps.training_inputs(locations))
    data.timings["train_s"] = time.perf_counter() - started

    log("batch transform of the test reviews...")
    started = time.perf_counter()
    data.test_scores = np.array(
        steps.sdk_batch_transform(target, estimator, locations["test"]).split(), dtype=float
    )
    accuracy = float(np.mean(np.round(data.test_scores) == data.test_labels))
    data.timings["transform_s"] = time.perf_counter() - started

    log("deploying the private endpoint...")
    predictor = estimator.deploy(1, target.instance_type)
    return estimator, predictor, accuracy


def publish(target: Target, endpoint_name: str, vocabulary: dict[str, int], log=print) -> SentimentApp:
    """The public door: IAM role, Lambda function and a REST API with stage prod."""
    iam, lambda_client, apigateway = (
        target.client("iam"),
        target.client("lambda"),
        target.client("apigateway"),
    )
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + f"-{int(time.time() * 1000) % 1000:03d}"
    function_name, role_name = f"{FUNCTION_NAME}-{stamp}", f"{ROLE_NAME}-{stamp}"
    endpoint_arn = target.arn("sagemaker", f"endpoint/{endpoint_name.lower()}")
    role_arn = iam.create_role(
        RoleName=role_name,
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
    # Least privilege: call this one endpoint, write its own logs.
    iam.put_role_policy(
        RoleName=role_name,
        PolicyName="invoke-sentiment-endpoint",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": "sagemaker:InvokeEndpoint", "Resource": endpoint_arn},
                    {
                        "Effect": "Allow",
                        "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                        "Resource": target.arn("logs", f"log-group:/aws/lambda/{function_name}:*"),
                    },
                ],
            }
        ),
    )
    log(f"Lambda function {function_name} (package of the function, review_text and the vocabulary)...")
    package = lambda_package.build(vocabulary)
    function_arn = with_backoff(
        lambda: _create_function(lambda_client, function_name, role_arn, endpoint_name, package),
        retry_if=lambda outcome: "cannot be assumed" in str(outcome),
        **_propagation(target, log, "the new role"),
    )
    # A new function is Pending for a moment; invoking it meanwhile fails (on AWS and locally).
    lambda_client.get_waiter("function_active_v2").wait(
        FunctionName=function_name, WaiterConfig=_waiter_config(target)
    )

    api_id = apigateway.create_rest_api(
        name=f"sentiment-analysis-api-{stamp}", endpointConfiguration={"types": ["REGIONAL"]}
    )["id"]
    root = next(r["id"] for r in apigateway.get_resources(restApiId=api_id)["items"] if r["path"] == "/")
    apigateway.put_method(restApiId=api_id, resourceId=root, httpMethod="POST", authorizationType="NONE")
    apigateway.put_integration(
        restApiId=api_id,
        resourceId=root,
        httpMethod="POST",
        type="AWS_PROXY",
        integrationHttpMethod="POST",
        uri=target.arn(
            "apigateway", f"path/2015-03-31/functions/{function_arn}/invocations", account="lambda"
        ),
    )
    _enable_cors(apigateway, api_id, root)
    lambda_client.add_permission(
        FunctionName=function_name,
        StatementId="api-gateway-invoke",
        Action="lambda:InvokeFunction",
        Principal="apigateway.amazonaws.com",
        SourceArn=target.arn("execute-api", f"{api_id}/*/POST/"),
    )
    apigateway.create_deployment(restApiId=api_id, stageName=STAGE)
    apigateway.update_stage(
        restApiId=api_id,
        stageName=STAGE,
        patchOperations=[
            {"op": "replace", "path": "/*/*/throttling/rateLimit", "value": str(THROTTLE_RATE)},
            {"op": "replace", "path": "/*/*/throttling/burstLimit", "value": str(THROTTLE_BURST)},
        ],
    )
    return SentimentApp(target.execute_api_url(api_id, STAGE), api_id, endpoint_name, function_name)


def _propagation(target: Target, log, what: str) -> dict:
    """Backoff settings for waiting on AWS's eventual consistency: start at 1 s on AWS, faster locally."""
    return {
        "first_delay": min(target.poll_seconds, 1.0),
        "give_up_after": PROPAGATION_SECONDS if target.name == "aws" else LOCAL_PROPAGATION_SECONDS,
        "log": log,
        "what": what,
    }


def _waiter_config(target: Target) -> dict:
    delay = min(target.poll_seconds, 1.0)  # boto3's own delay for this waiter on AWS; faster locally
    return {"Delay": delay, "MaxAttempts": int(PROPAGATION_SECONDS / delay) + 1}


def _create_function(lambda_client, name: str, role_arn: str, endpoint_name: str, package: bytes) -> str:
    return lambda_client.create_function(
        FunctionName=name,
        Runtime=lambda_package.RUNTIME,
        Architectures=[lambda_package.ARCHITECTURE],
        Role=role_arn,
        Handler=lambda_package.HANDLER,
        Code={"ZipFile": package},
        Timeout=30,
        MemorySize=512,
        Environment={"Variables": {"ENDPOINT_NAME": endpoint_name}},
    )["FunctionArn"]


CORS_HEADERS = {
    "Access-Control-Allow-Headers": "'Content-Type,X-Amz-Date,Authorization,X-Api-Key,X-Amz-Security-Token'",
    "Access-Control-Allow-Methods": "'OPTIONS,POST'",
    "Access-Control-Allow-Origin": "'*'",
}


def _enable_cors(apigateway, api_id: str, resource_id: str) -> None:
    """The console's "Enable CORS": an OPTIONS method answered by a MOCK integration, and CORS
    headers on the errors API Gateway makes itself (DEFAULT_4XX / DEFAULT_5XX), so that a browser
    sees a throttled or failed call as that error, not as an opaque CORS failure."""
    headers = CORS_HEADERS
    for response_type in ("DEFAULT_4XX", "DEFAULT_5XX"):
        apigateway.put_gateway_response(
            restApiId=api_id,
            responseType=response_type,
            responseParameters={f"gatewayresponse.header.{name}": value for name, value in headers.items()},
        )
    apigateway.put_method(
        restApiId=api_id, resourceId=resource_id, httpMethod="OPTIONS", authorizationType="NONE"
    )
    apigateway.put_integration(
        restApiId=api_id,
        resourceId=resource_id,
        httpMethod="OPTIONS",
        type="MOCK",
        requestTemplates={"application/json": '{"statusCode": 200}'},
    )
    apigateway.put_method_response(
        restApiId=api_id,
        resourceId=resource_id,
        httpMethod="OPTIONS",
        statusCode="200",
        responseParameters={f"method.response.header.{name}": False for name in headers},
    )
    apigateway.put_integration_response(
        restApiId=api_id,
        resourceId=resource_id,
        httpMethod="OPTIONS",
        statusCode="200",
        responseParameters={f"method.response.header.{name}": value for name, value in headers.items()},
        responseTemplates={"application/json": ""},
    )


def ask_public_api(api_url: str, review: str) -> tuple[int, str, float | None]:
    """POST a review the way the web page does: raw text, no signature. Returns (status, body, score)."""
    request = urllib.request.Request(
        api_url, data=review.encode(), headers={"Content-Type": "text/plain"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            score = response.headers.get("X-Sentiment-Score")
            return response.status, response.read().decode(), float(score) if score is not None else None
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), None


def endpoint_score(target: Target, endpoint_name: str, vocabulary: dict[str, int], review: str) -> float:
    """The training-side path: the same text module, straight to the endpoint with a signed call."""
    row = review_text.to_csv_row(review_text.bag_of_words(review, vocabulary))
    answer = target.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=endpoint_name, ContentType="text/csv", Body=row
    )
    return float(answer["Body"].read().split()[0])


def deploy(target: Target, output_dir: Path, log=print, source: Path | None = None):
    """Everything up to a public URL; returns (app, prepared data, test accuracy)."""
    source = source or imdb.default_source()
    log(f"reviews from {source}")
    data = prepare(source, output_dir / "data", log)
    _, predictor, accuracy = train_and_deploy(target, data, log)
    log(f"batch transform accuracy on {len(data.test_labels)} test reviews: {accuracy:.4f}")
    app = publish(target, predictor.endpoint_name, data.vocabulary, log)
    return app, data, accuracy


def run(target: Target, output_dir: Path, log=print) -> WorkflowResult:
    app, data, accuracy = deploy(target, output_dir, log)
    log(f"public API: {app.api_url}")
    verdicts = {}
    for expected, review in SAMPLE_REVIEWS.items():
        # A new deployment and Lambda permission may answer 5xx at first on AWS: retry those.
        status, body, score = with_backoff(
            lambda review=review: ask_public_api(app.api_url, review),
            retry_if=lambda outcome: (
                isinstance(outcome, OSError) if isinstance(outcome, Exception) else outcome[0] in (500, 503)
            ),
            **_propagation(target, log, "the public API"),
        )
        if status != 200:
            raise RuntimeError(f"the public API answered {status}: {body}")
        verdicts[expected] = (body, score)
        log(f"  {expected} review -> {'POSITIVE' if body == '1' else 'NEGATIVE'} (score {score:.3f})")
    skew = max(
        abs(score - endpoint_score(target, app.endpoint_name, data.vocabulary, SAMPLE_REVIEWS[name]))
        for name, (_, score) in verdicts.items()
    )
    metrics = {
        "test_accuracy": accuracy,
        "public_path_correct": float(verdicts["positive"][0] == "1") + float(verdicts["negative"][0] == "0"),
        "public_vs_endpoint_max_score_difference": skew,
    }
    plot = plot_score_distribution(
        data.test_scores, data.test_labels, output_dir / "score-distribution.png",
        f"2a: batch transform scores of {len(data.test_labels)} test reviews (accuracy {accuracy:.3f})",
    )  # fmt: skip
    return WorkflowResult(NAME, metrics, [plot], {"api_url": app.api_url, "timings": data.timings})
