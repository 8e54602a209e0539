"""Each framework container's default handler functions, for what ``inference.py`` leaves out.

The inference toolkit (sagemaker-inference) runs the chain model_fn -> input_fn -> predict_fn ->
output_fn and takes every function the user's module does not define from a
``DefaultInferenceHandler``; its base class decodes application/json, text/csv and
application/x-npy into numpy and encodes the result back. What each framework image adds:

- Scikit-learn: no default model_fn (the user must load the model); predict_fn is
  ``model.predict``; text input becomes float32.
- PyTorch: model_fn loads a TorchScript ``model.pt``; input becomes a tensor; predict_fn runs the
  model in eval mode without gradients; tensors are turned back into lists for the encoder.
- XGBoost: model_fn loads ``xgboost-model`` (pickle or xgboost format) as the algorithm does;
  CSV, LIBSVM and RecordIO-protobuf input becomes a DMatrix; predict_fn is ``Booster.predict``.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
from sagemaker_inference import content_types, decoder, encoder, errors, utils
from sagemaker_inference.default_inference_handler import DefaultInferenceHandler


class SklearnHandler(DefaultInferenceHandler):
    def default_model_fn(self, model_dir, context=None):
        raise NotImplementedError(
            textwrap.dedent(
                """
                Please provide a model_fn implementation.
                See documentation for model_fn at https://sagemaker.readthedocs.io/en/stable/frameworks/sklearn/using_sklearn.html
                """
            )
        )

    def default_input_fn(self, input_data, content_type, context=None):
        array = decoder.decode(input_data, content_type)
        return array.astype(np.float32) if content_type in content_types.UTF8_TYPES else array

    def default_predict_fn(self, data, model, context=None):
        return model.predict(data)


class PyTorchHandler(DefaultInferenceHandler):
    MODEL_FILE = "model.pt"

    def default_model_fn(self, model_dir, context=None):
        import torch

        path = Path(model_dir) / self.MODEL_FILE
        if not path.exists():
            raise ValueError(f"Failed to load model with default model_fn: missing file {self.MODEL_FILE}.")
        return torch.jit.load(str(path), map_location=torch.device("cpu"))

    def default_input_fn(self, input_data, content_type, context=None):
        import torch

        array = decoder.decode(input_data, content_type)
        return (
            torch.FloatTensor(array) if content_type in content_types.UTF8_TYPES else torch.from_numpy(array)
        )

    def default_predict_fn(self, data, model, context=None):
        import torch

        with torch.no_grad():
            model.eval()
            return model(data)

    def default_output_fn(self, prediction, accept, context=None):
        import torch

        if isinstance(prediction, torch.Tensor):
            prediction = prediction.detach().cpu().numpy().tolist()
        for content_type in utils.parse_accept(accept):
            if content_type in encoder.SUPPORTED_CONTENT_TYPES:
                encoded = encoder.encode(prediction, content_type)
                if content_type == content_types.CSV:
                    encoded = encoded.encode("utf-8")
                return encoded, content_type
        raise errors.UnsupportedFormatError(accept)


class XGBoostHandler(DefaultInferenceHandler):
    def default_model_fn(self, model_dir, context=None):
        from emulation.containers.xgboost import inference

        return inference.load_model(Path(model_dir)).booster

    def default_input_fn(self, input_data, content_type, context=None):
        import xgboost

        from emulation.containers.xgboost import inference

        body = input_data.encode("utf-8") if isinstance(input_data, str) else input_data
        features = inference.parse_payload(body, content_type)[0]
        return xgboost.DMatrix(features, missing=math.nan)

    def default_predict_fn(self, data, model, context=None):
        return model.predict(data, validate_features=False)


HANDLERS = {"sklearn": SklearnHandler, "pytorch": PyTorchHandler, "xgboost": XGBoostHandler}
