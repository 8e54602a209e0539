"""Benchmarks that print figures (never timed tests): `python -m bench` or `tox -e bench`."""

import os

from emulation.runners.process import CONTAINER_ENVIRONMENT
from workflows.target import quiet_sdk

quiet_sdk()
# In-process baselines (the algorithm's own training time, raw Booster.predict) run with the
# containers' OpenMP settings, set before anything here loads xgboost.
for _name, _value in CONTAINER_ENVIRONMENT.items():
    os.environ.setdefault(_name, _value)
