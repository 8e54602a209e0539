"""Benchmarks that print figures (never timed tests): `python -m bench` or `tox -e bench`."""
