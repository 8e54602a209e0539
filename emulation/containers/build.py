"""Build Docker images that follow the SageMaker container contract, from this project's code.

Nothing can be pulled from ECR without an AWS account, so ``sagelocal build-image xgboost:1.7-1``
makes a stand-in for AWS's image: this project's XGBoost container code on that version's own
XGBoost (the pins come from :mod:`emulation.containers.runtimes`, the one table of versions),
with ``train`` and ``serve`` on the PATH as SageMaker runs them. It is tagged with the real ECR
repository and tag, so requests (and the SDK's local mode) naming the real image use it.

The base image is a build argument. Where Docker Hub answers, ``debian:bookworm-slim`` works; on
machines that reach only Debian's archive, :func:`build_debootstrap_base` makes one with
debootstrap and ``docker import``.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from emulation.containers import runtimes

DEFAULT_BASE = "debian:bookworm-slim"
DEBOOTSTRAP_BASE = "sagelocal/debian-base:bookworm"
#: The account that publishes the built-in XGBoost images in us-east-1 (each region has its own;
#: ``sagemaker.image_uris.retrieve`` knows them all).
XGBOOST_REGISTRY_US_EAST_1 = "683313688378.dkr.ecr.us-east-1.amazonaws.com"
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # emulation/
#: What the image needs of this project: the container code and the little it imports.
_CONTAINER_SOURCES = ("__init__.py", "config.py", "nodelay.py", "containers")
#: Where pip in the build finds this machine's CA bundle (networks that intercept TLS need it).
_HOST_CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")

_DOCKERFILE = """\
ARG BASE_IMAGE={base}
FROM ${{BASE_IMAGE}}
# Python and venv from the base image's own distribution when it lacks them.
RUN if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then \\
      apt-get update && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \\
      && rm -rf /var/lib/apt/lists/*; fi
COPY ca-bundle.crt /etc/sagelocal/ca-bundle.crt
RUN python3 -m venv /opt/sagelocal \\
    && if [ -s /etc/sagelocal/ca-bundle.crt ]; then export PIP_CERT=/etc/sagelocal/ca-bundle.crt; fi \\
    && /opt/sagelocal/bin/pip install --no-cache-dir --disable-pip-version-check {packages}
COPY src /opt/sagelocal/src
COPY bin/ /usr/local/bin/
ENV PATH=/opt/sagelocal/bin:$PATH \\
    PYTHONPATH=/opt/sagelocal/src \\
    PYTHONUNBUFFERED=1 \\
    OMP_WAIT_POLICY=PASSIVE \\
    SAGELOCAL_IMAGE_URI={uri}
WORKDIR /opt/ml
LABEL org.opencontainers.image.title="sagelocal stand-in for {uri}" \\
      com.sagelocal.xgboost="{xgboost}"
"""

_ENTRY = """\
#!/bin/sh
# SageMaker runs `docker run <image> {mode}`: this image's {mode} command.
exec python3 -m emulation.containers.entrypoints {mode} "$@"
"""


def xgboost_image_uri(version: str, registry: str = XGBOOST_REGISTRY_US_EAST_1) -> str:
    return f"{registry}/{runtimes.runtime_for(version).repository}:{version}"


def _context(version: str, base: str) -> bytes:
    """The build context as a tar stream: Dockerfile, the container code, entry commands, CA bundle."""
    runtime = runtimes.runtime_for(version)
    uri = xgboost_image_uri(version)
    dockerfile = _DOCKERFILE.format(
        base=base, packages=" ".join(runtime.packages), uri=uri, xgboost=runtime.xgboost
    )
    with tempfile.TemporaryDirectory(prefix="sagelocal-image-") as scratch:
        root = Path(scratch)
        (root / "Dockerfile").write_text(dockerfile)
        for name in _CONTAINER_SOURCES:
            source = _PACKAGE_ROOT / name
            target = root / "src" / "emulation" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(source, target)
        (root / "bin").mkdir()
        for mode in ("train", "serve"):
            entry = root / "bin" / mode
            entry.write_text(_ENTRY.format(mode=mode))
            entry.chmod(0o755)
        bundle = next((Path(p) for p in _HOST_CA_BUNDLES if Path(p).is_file()), None)
        (root / "ca-bundle.crt").write_bytes(bundle.read_bytes() if bundle else b"")
        stream = io.BytesIO()
        with tarfile.open(fileobj=stream, mode="w") as archive:
            archive.add(root, arcname=".")
        return stream.getvalue()


def build_xgboost_image(
    version: str,
    *,
    base: str = DEFAULT_BASE,
    extra_tags: tuple[str, ...] = (),
    client=None,
    progress: Callable[[str], None] = print,
) -> str:
    """Build the stand-in for ``sagemaker-xgboost:<version>``; returns its URI (also its tag)."""
    import docker

    client = client or docker.from_env()
    uri = xgboost_image_uri(version)
    progress(f"building {uri} on {base} (xgboost {runtimes.runtime_for(version).xgboost})")
    for line in _stream_build(client, _context(version, base), uri, base):
        progress(line)
    for tag in extra_tags:
        client.images.get(uri).tag(tag)
    return uri


def _stream_build(client, context: bytes, tag: str, base: str) -> Iterator[str]:
    """docker build through the Engine API, yielding its output lines; raises on a failed step."""
    import docker.errors

    for chunk in client.api.build(
        fileobj=io.BytesIO(context),
        custom_context=True,
        tag=tag,
        buildargs={"BASE_IMAGE": base},
        rm=True,
        decode=True,
        pull=False,
    ):
        if "error" in chunk:
            raise docker.errors.BuildError(chunk["error"], [chunk])
        text = chunk.get("stream", "").rstrip()
        if text:
            yield text


def image_present(name: str, client=None) -> bool:
    import docker
    import docker.errors

    client = client or docker.from_env()
    try:
        client.images.get(name)
    except docker.errors.ImageNotFound:
        return False
    return True


def build_debootstrap_base(
    tag: str = DEBOOTSTRAP_BASE,
    *,
    suite: str = "bookworm",
    mirror: str = "http://deb.debian.org/debian",
    client=None,
    progress: Callable[[str], None] = print,
) -> str:
    """A Debian base image made locally (root and debootstrap needed): ``debootstrap`` + ``docker import``."""
    import docker

    client = client or docker.from_env()
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is not installed (apt-get install debootstrap)")
    with tempfile.TemporaryDirectory(prefix="sagelocal-rootfs-") as scratch:
        rootfs = Path(scratch) / "rootfs"
        progress(f"debootstrap --variant=minbase {suite} (a few minutes)")
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3,python3-venv,ca-certificates",
                suite,
                str(rootfs),
                mirror,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        progress(f"docker import -> {tag}")
        packed = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        repository, _, version = tag.partition(":")
        client.api.import_image_from_stream(packed.stdout, repository=repository, tag=version or "latest")
        if packed.wait() != 0:
            raise RuntimeError("packing the debootstrap root filesystem failed")
    return tag
