"""Inference script (Scikit-learn container): the model_fn / input_fn / predict_fn / output_fn chain.

Accepts CSV rows of the 13 Boston features (text/csv) or {"instances": [[...], ...]}
(application/json) and answers {"predictions": [...]} as JSON.
"""

import io
import json
import os

import joblib
import numpy as np


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def input_fn(body, content_type):
    if content_type == "text/csv":
        return np.loadtxt(io.StringIO(body), delimiter=",", ndmin=2)
    if content_type == "application/json":
        return np.array(json.loads(body)["instances"], dtype=float)
    raise ValueError(f"unsupported content type {content_type}: send text/csv or application/json")


def predict_fn(features, model):
    if features.shape[1] != 13:
        raise ValueError(f"each row needs the 13 Boston features, got {features.shape[1]}")
    return model.predict(features)


def output_fn(predictions, accept):
    return json.dumps({"predictions": np.round(predictions, 4).tolist()}), "application/json"
