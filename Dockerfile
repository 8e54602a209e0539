# The sagelocal emulator (and, with another command, the web page) for `docker compose up`.
# No AWS credentials go in: the emulator accepts only its own (test / test, account 000000000000).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SAGEMAKER_SUPPRESS_V2_WARNING=1 \
    SAGELOCAL_DATA_DIR=/var/lib/sagelocal

# The emulator keeps its state (and job directories, endpoint model copies, Lambda runtimes) under
# SAGELOCAL_DATA_DIR (a named volume in docker-compose.yml), so it survives a restart; created here
# so that a fresh volume is owned by the user below.
RUN useradd --create-home --uid 1000 sagelocal \
    && mkdir -p /var/lib/sagelocal \
    && chown sagelocal:sagelocal /var/lib/sagelocal

WORKDIR /app
# Owned by the user, so `docker compose run emulator sagelocal demo` can write sagelocal-output/.
COPY --chown=sagelocal:sagelocal . /app

# The same editable install of the project that CI runs (.ci/run: pip install -e '.[dev]'), minus
# the dev extra (pytest, tox, ruff, playwright) and minus CI's `apt-get install -y chromium`: both
# exist only for the tests, and this image serves, it does not test. Editable as in CI, so the
# image runs this checked-out tree (lambda/ and web/ are read from it). tests/test_compose.py
# checks that this line stays CI's line.
RUN pip install -e .

USER sagelocal
EXPOSE 4566 8080
CMD ["sagelocal", "emulator", "--host", "0.0.0.0", "--port", "4566"]
