# The sagelocal emulator (and, with another command, the web page) for `docker compose up`.
# No AWS credentials go in: the emulator accepts only its own (test / test, account 000000000000).
#
# The base image is a build argument: any Debian-like image with Python 3.10+ (or none: Debian's
# python3 is then installed), e.g. where Docker Hub cannot be reached, a base made locally with
#   sagelocal build-image --debootstrap-base ...   (tags sagelocal/debian-base:bookworm)
#   docker-compose build --build-arg BASE_IMAGE=sagelocal/debian-base:bookworm
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SAGEMAKER_SUPPRESS_V2_WARNING=1 \
    SAGELOCAL_DATA_DIR=/var/lib/sagelocal \
    PATH=/opt/sagelocal/bin:$PATH

# The emulator keeps its state (and job directories, endpoint model copies, Lambda runtimes) under
# SAGELOCAL_DATA_DIR (a named volume in docker-compose.yml), so it survives a restart; created here
# so that a fresh volume is owned by the user below.
RUN if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then \
      apt-get update && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
      && rm -rf /var/lib/apt/lists/*; fi \
    && useradd --create-home --uid 1000 sagelocal \
    && mkdir -p /var/lib/sagelocal \
    && chown sagelocal:sagelocal /var/lib/sagelocal

WORKDIR /app
# The dependencies first, from pyproject.toml alone, so that a change to the code does not install
# them again (with Docker's vfs storage driver that is minutes). In a virtual environment: Debian's
# own Python refuses system-wide pip installs (PEP 668). Behind a TLS-intercepting proxy, put its CA
# bundle at docker-ca-bundle.crt (git-ignored) before building.
COPY pyproject.toml docker-ca-bundle.cr[t] /app/
RUN python3 -m venv /opt/sagelocal \
    && if [ -s docker-ca-bundle.crt ]; then export PIP_CERT=/app/docker-ca-bundle.crt; fi \
    && python3 -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
       > /tmp/dependencies.txt \
    && pip install -r /tmp/dependencies.txt "setuptools>=64" wheel && rm /tmp/dependencies.txt

# Owned by the user, so `docker compose run emulator sagelocal demo` can write sagelocal-output/.
COPY --chown=sagelocal:sagelocal . /app

# The same editable install of the project that CI runs (.ci/run: pip install -e '.[dev]'), minus
# the dev extra (pytest, tox, ruff, playwright) and minus CI's `apt-get install -y chromium`: both
# exist only for the tests, and this image serves, it does not test. Editable as in CI, so the
# image runs this checked-out tree (lambda/ and web/ are read from it); --no-deps because the step
# above installed them, and no build isolation because that step also installed setuptools and
# wheel (no network needed). tests/test_compose.py checks that this line stays CI's line.
RUN pip install --no-deps --no-build-isolation -e .

USER sagelocal
EXPOSE 4566 8080
CMD ["sagelocal", "emulator", "--host", "0.0.0.0", "--port", "4566"]
