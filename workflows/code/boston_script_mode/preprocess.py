"""Processing job: split the raw Boston housing CSV into train, validation and test sets.

Runs in the Scikit-learn processing container (SKLearnProcessor). Reads every CSV under --input,
writes headerless CSVs with the label (MEDV) first under --output/{train,validation,test}, as
the tutorial's split does (test = 33% of all rows, validation = 33% of the rest, fixed seed).
"""

import argparse
import os

import pandas as pd
from sklearn.model_selection import train_test_split

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--input", default="/opt/ml/processing/input")
    parser.add_argument("--output", default="/opt/ml/processing")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    # The shipped file starts with a line of sizes ("506,13,..."), then the column names.
    frame = pd.concat(
        pd.read_csv(os.path.join(args.input, name), skiprows=1)
        for name in sorted(os.listdir(args.input))
        if name.endswith(".csv")
    )
    labelled = pd.concat([frame["MEDV"], frame.drop(columns=["MEDV"])], axis=1)
    rest, test = train_test_split(labelled, test_size=0.33, random_state=args.seed)
    train, validation = train_test_split(rest, test_size=0.33, random_state=args.seed)
    for name, part in (("train", train), ("validation", validation), ("test", test)):
        os.makedirs(os.path.join(args.output, name), exist_ok=True)
        part.to_csv(os.path.join(args.output, name, f"{name}.csv"), header=False, index=False)
        print(f"{name}: {len(part)} rows")
