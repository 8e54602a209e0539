"""Training script (Scikit-learn container, script mode): gradient-boosted trees on Boston housing.

Reads the train and validation channels (headerless CSV, label first), prints the validation RMSE
in the form the estimator's metric definition reads ("validation_rmse=<value>"), and saves the
model where SageMaker uploads it from (SM_MODEL_DIR).
"""

import argparse
import glob
import os

import joblib
import numpy as np
import pandas as pd
from sklearn.ensemble import GradientBoostingRegressor


def load(channel):
    files = glob.glob(os.path.join(os.environ[f"SM_CHANNEL_{channel.upper()}"], "*.csv"))
    frame = pd.concat(pd.read_csv(name, header=None) for name in files)
    return frame.iloc[:, 1:].values, frame.iloc[:, 0].values


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-estimators", type=int, default=200)
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument("--max-depth", type=int, default=3)
    parser.add_argument("--subsample", type=float, default=0.8)
    args = parser.parse_args()
    X_train, y_train = load("train")
    X_validation, y_validation = load("validation")
    model = GradientBoostingRegressor(
        n_estimators=args.n_estimators,
        learning_rate=args.learning_rate,
        max_depth=args.max_depth,
        subsample=args.subsample,
        random_state=0,
    ).fit(X_train, y_train)
    rmse = float(np.sqrt(np.mean((model.predict(X_validation) - y_validation) ** 2)))
    print(f"validation_rmse={rmse:.4f}")
    joblib.dump(model, os.path.join(os.environ["SM_MODEL_DIR"], "model.joblib"))
