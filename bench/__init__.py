"""Benchmarks that print figures (never timed tests): `python -m bench` or `tox -e bench`."""

from workflows.target import quiet_sdk

quiet_sdk()
