"""The serving side of the built-in XGBoost image: model loading and ``POST /invocations``.

``invoke`` answers as the image's Flask handler does, status codes and message texts included,
because clients (and the SageMaker runtime's ModelError) show them verbatim: 204 for an empty
body, 415 for a payload it cannot read, 400 when prediction fails, 406 for an unknown Accept
(from 1.2-2, the first image that honours Accept). A single CSV row is the common request, so
its path avoids pandas and DMatrix and predicts in place.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xgboost
from scipy.sparse import csr_matrix

from emulation.containers.xgboost import data, version_at_least

MODEL_NAME = "xgboost-model"
SUPPORTED_ACCEPTS = [
    "application/json",
    "application/jsonlines",
    "application/x-recordio-protobuf",
    "text/csv",
]
# Flask's default for a Response without a mimetype, which is what the image's error responses use.
_FLASK_DEFAULT = "text/html; charset=utf-8"
_CSV = "text/csv; charset=utf-8"


class ModelLoadError(Exception):
    """``xgboost-model`` is missing or neither a pickled Booster nor an xgboost model file."""


@dataclass(frozen=True)
class InvocationResult:
    status: int
    body: bytes
    content_type: str


@dataclass(frozen=True)
class LoadedModel:
    """A Booster ready to serve, with what every request needs worked out once at load time."""

    booster: Any
    num_features: int
    #: Trees to predict with: all of them, or up to the best iteration of a pickled model that
    #: stopped early but kept every tree (the images predicted with its ``best_ntree_limit``).
    iteration_range: tuple[int, int]
    #: gblinear models cannot predict in place and need a DMatrix.
    in_place: bool

    def predict(self, features) -> np.ndarray:
        if self.in_place:
            return self.booster.inplace_predict(
                features, iteration_range=self.iteration_range, missing=math.nan, validate_features=False
            )
        return self.booster.predict(xgboost.DMatrix(features, missing=math.nan), validate_features=False)


def load_model(model_dir: Path) -> LoadedModel:
    """Load ``xgboost-model`` as the image does: as a pickle first, then as an xgboost model file."""
    path = Path(model_dir) / MODEL_NAME
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ModelLoadError(f"Model at {path} cannot be loaded:\n{error}") from None
    pickled = True
    try:
        booster = pickle.loads(raw)
    except Exception as pickle_error:
        pickled = False
        try:
            booster = xgboost.Booster()
            booster.load_model(bytearray(raw))
        except xgboost.core.XGBoostError as xgboost_error:
            message = str(xgboost_error).split("\nStack trace:", 1)[0]
            raise ModelLoadError(f"Model at {path} cannot be loaded:\n{pickle_error}\n{message}") from None
    if not isinstance(booster, xgboost.Booster):
        raise ModelLoadError(
            f"Model at {path} cannot be loaded:\nit holds a {type(booster).__name__}, not a Booster"
        )
    booster.set_param("nthread", 1)  # the image serves with one worker process per CPU, each single-threaded
    best_iteration = booster.attr("best_iteration")
    iteration_range = (0, int(best_iteration) + 1) if pickled and best_iteration is not None else (0, 0)
    in_place = json.loads(booster.save_config())["learner"]["gradient_booster"]["name"] != "gblinear"
    return LoadedModel(booster, booster.num_features(), iteration_range, in_place)


def execution_parameters() -> dict[str, Any]:
    """What ``GET /execution-parameters`` tells batch transform about this container."""
    return {
        "MaxConcurrentTransforms": os.cpu_count() or 1,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 6,
    }


def invoke(
    model: LoadedModel, body: bytes, content_type: str | None, accept: str | None, version: str
) -> InvocationResult:
    """Answer one ``POST /invocations`` as image ``version`` would."""
    if not body:
        return InvocationResult(204, b"", _FLASK_DEFAULT)
    try:
        features, data_format = parse_payload(body, content_type)
    except Exception as error:
        return InvocationResult(415, str(error).encode(), _FLASK_DEFAULT)
    try:
        predictions = _predict(model, features, data_format)
    except Exception as error:
        message = str(error).split("\nStack trace:", 1)[0]
        return InvocationResult(
            400, f"Unable to evaluate payload provided: {message}".encode(), _FLASK_DEFAULT
        )
    if not version_at_least(version, "1.2-2"):
        if os.environ.get("SAGEMAKER_BATCH"):
            return InvocationResult(200, _lines(predictions.tolist()), _CSV)
        return InvocationResult(200, ",".join(map(str, predictions.tolist())).encode(), _CSV)
    try:
        accept_type = _accept_type(accept)
    except ValueError as error:
        return InvocationResult(406, str(error).encode(), _FLASK_DEFAULT)
    return _encode(predictions, accept_type)


def parse_payload(body: bytes, content_type: str | None):
    """The request's features and format; any failure here is the image's 415."""
    data_format = data.data_format(content_type)
    if data_format == data.CSV:
        try:
            return _csv_features(body.strip().decode("utf-8")), data_format
        except Exception as error:
            raise ValueError(
                f"Loading csv data failed with Exception, please ensure data is in csv format:\n {type(error)}\n {error}"
            ) from None
    if data_format == data.LIBSVM:
        try:
            return _libsvm_features(body.strip().decode("utf-8")), data_format
        except Exception as error:
            raise ValueError(
                "Loading libsvm data failed with Exception, please ensure data is in libsvm format:\n"
                f" {type(error)}\n {error}"
            ) from None
    if data_format == data.RECORDIO_PROTOBUF:
        try:
            return data.decode_recordio_protobuf(body)[0], data_format
        except Exception as error:
            raise ValueError(
                "Loading recordio-protobuf data failed with Exception, please ensure data is in "
                f"recordio-protobuf format: {type(error)} {error}"
            ) from None
    raise ValueError(f"Content-type {content_type} is not supported.")


def _csv_features(text: str) -> np.ndarray:
    """Rows of floats, no label column; the delimiter is sniffed from the first line and an empty
    cell is a missing value."""
    lines = text.split("\n")
    delimiter = _csv_delimiter(lines[0][:512])
    if len(lines) == 1:
        cells = lines[0].split(delimiter)
        return np.array([float(cell) if cell else math.nan for cell in cells]).reshape(1, len(cells))
    if "\n\n" not in text:  # numpy's C parser skips blank lines, which the image rejects as ragged rows
        try:
            return np.loadtxt(
                io.StringIO(text), delimiter=delimiter, dtype=np.float64, ndmin=2, comments=None
            )
        except ValueError:
            pass  # empty cells or bad values: the image's own parse below says which
    return np.array(
        [["nan" if cell == "" else cell for cell in line.split(delimiter)] for line in lines]
    ).astype(np.float64)


def _csv_delimiter(line: str) -> str:
    """What the image's ``csv.Sniffer`` picks (a letter or digit meaning ","), without its ~70 µs
    for the usual line: with no quotes, the Sniffer settles on "," whenever the line has one."""
    if "," in line and '"' not in line and "'" not in line:
        return ","
    sniffed = csv.Sniffer().sniff(line).delimiter
    return "," if sniffed.isalnum() else sniffed


def _libsvm_features(text: str):
    """``[label] index:value ...`` rows as CSR; tokens without a colon (the label) are ignored."""
    rows, columns, values = [], [], []
    lines = text.split("\n")
    for row, line in enumerate(lines):
        for item in line.split(" "):
            if ":" in item:
                column, value = item.split(":")[:2]
                rows.append(row)
                columns.append(int(column))
                values.append(float(value))
    width = max(columns) + 1 if columns else 0
    return csr_matrix(
        (np.array(values), (np.array(rows, dtype=np.int64), np.array(columns))), shape=(len(lines), width)
    )


def _predict(model: LoadedModel, features, data_format: str) -> np.ndarray:
    expected, width = model.num_features, features.shape[1]
    if data_format == data.LIBSVM:
        if width > expected + 1:
            raise ValueError(
                f"Feature size of libsvm inference data {width} is larger than feature size of trained model {expected}."
            )
        if width < expected:
            features.resize((features.shape[0], expected))
    elif width not in (expected, expected - 1):
        raise ValueError(
            f"Feature size of {data_format} inference data {width} is not consistent with feature size of "
            f"trained model {expected}."
        )
    elif width < expected:
        # xgboost 1.x predicted on one column fewer than the model knows, as if the last were missing.
        if hasattr(features, "tocsr"):
            features = features.tocsr()
            features.resize((features.shape[0], expected))
        else:
            features = np.hstack([features, np.full((features.shape[0], 1), math.nan)])
    return model.predict(features)


def _accept_type(accept: str | None) -> str:
    kind = (accept or "").split(";", 1)[0].strip()
    if not kind or kind == "*/*":
        return os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "text/csv")
    if kind.lower() not in SUPPORTED_ACCEPTS:
        raise ValueError(
            f"Accept type {kind} is not supported. Please use supported accept types: {SUPPORTED_ACCEPTS}."
        )
    return kind.lower()


def _lines(values: list) -> bytes:
    return ("\n".join(map(str, values)) + "\n").encode()


def _encode(predictions: np.ndarray, accept_type: str) -> InvocationResult:
    if accept_type == "application/json":
        scores = [{"score": value} for value in predictions.tolist()]
        return InvocationResult(200, json.dumps({"predictions": scores}).encode(), "application/json")
    if accept_type == "application/jsonlines":
        body = "".join(json.dumps({"score": value}) + "\n" for value in predictions.tolist())
        return InvocationResult(200, body.encode(), "application/jsonlines")
    if accept_type == "application/x-recordio-protobuf":
        return InvocationResult(200, data.encode_recordio_protobuf(predictions), accept_type)
    return InvocationResult(200, _lines(predictions.tolist()), _CSV)
