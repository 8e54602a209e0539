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

import hashlib
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
#: What the image needs of this project: the container code and the little it imports. The
#: package's own ``__init__`` (the emulator's entry) stays out: the image gets an empty one.
_CONTAINER_SOURCES = ("nodelay.py", "containers")
#: Where pip in the build finds this machine's CA bundle (networks that intercept TLS need it).
_HOST_CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")

_DOCKERFILE = """\
ARG BASE_IMAGE={base}
FROM ${{BASE_IMAGE}}
# Few steps on purpose: with Docker's vfs storage driver every step copies the whole file system.
# The packages come before the code, so a code change rebuilds only the last two steps.
ENV PATH=/opt/sagelocal/bin:$PATH \\
    PYTHONPATH=/opt/sagelocal/src \\
    PYTHONUNBUFFERED=1 \\
    OMP_WAIT_POLICY=PASSIVE \\
    SAGELOCAL_SERVE_ADDRESS=0.0.0.0:8080 \\
    SAGELOCAL_IMAGE_URI={uri}
COPY setup /opt/sagelocal/setup
# Python and venv from the base image's own distribution when it lacks them; pip trusts the CA
# bundle of the machine that built the image (networks that intercept TLS need it).
RUN set -e; cd /opt/sagelocal/setup; \\
    if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then \\
      apt-get update && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates; \\
      rm -rf /var/lib/apt/lists/*; fi; \\
    if [ -s ca-bundle.crt ]; then export PIP_CERT=$PWD/ca-bundle.crt; fi; \\
    python3 -m venv /opt/sagelocal; \\
    /opt/sagelocal/bin/pip install --no-cache-dir --disable-pip-version-check {packages}; \\
    install -m 0755 train serve /usr/local/bin/; cd /; rm -rf /opt/sagelocal/setup
COPY src /opt/sagelocal/src
LABEL org.opencontainers.image.title="sagelocal stand-in for {uri}" \\
      com.sagelocal.xgboost="{xgboost}" \\
      com.sagelocal.source="{{source}}"
"""

_ENTRY = """\
#!/bin/sh
# SageMaker runs `docker run <image> {mode}`: this image's {mode} command.
exec python3 -m emulation.containers.entrypoints {mode} "$@"
"""


def xgboost_image_uri(version: str, registry: str = XGBOOST_REGISTRY_US_EAST_1) -> str:
    return f"{registry}/{runtimes.runtime_for(version).repository}:{version}"


def _dockerfile(version: str, base: str) -> str:
    runtime = runtimes.runtime_for(version)
    return _DOCKERFILE.format(
        base=base,
        packages=" ".join(runtime.packages),
        uri=xgboost_image_uri(version),
        xgboost=runtime.xgboost,
    )


def source_digest(version: str, base: str) -> str:
    """What the image is made of (Dockerfile, container code): an image whose label differs is stale."""
    digest = hashlib.sha256(_dockerfile(version, base).encode())
    for name in _CONTAINER_SOURCES:
        source = _PACKAGE_ROOT / name
        files = sorted(source.rglob("*.py")) if source.is_dir() else [source]
        for path in files:
            digest.update(str(path.relative_to(_PACKAGE_ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _context(version: str, base: str) -> bytes:
    """The build context as a tar stream: Dockerfile, the container code, entry commands, CA bundle."""
    dockerfile = _dockerfile(version, base).replace("{source}", source_digest(version, base))
    with tempfile.TemporaryDirectory(prefix="sagelocal-image-") as scratch:
        root = Path(scratch)
        (root / "Dockerfile").write_text(dockerfile)
        (root / "src" / "emulation").mkdir(parents=True)
        (root / "src" / "emulation" / "__init__.py").write_text('"""The container code only."""\n')
        for name in _CONTAINER_SOURCES:
            source = _PACKAGE_ROOT / name
            target = root / "src" / "emulation" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(source, target)
        (root / "setup").mkdir()
        for mode in ("train", "serve"):
            (root / "setup" / mode).write_text(_ENTRY.format(mode=mode))
        bundle = next((Path(p) for p in _HOST_CA_BUNDLES if Path(p).is_file()), None)
        (root / "setup" / "ca-bundle.crt").write_bytes(bundle.read_bytes() if bundle else b"")
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


def xgboost_image_current(version: str, base: str, client=None) -> bool:
    """Present and built from this checkout's container code (its source label matches)."""
    import docker
    import docker.errors

    client = client or docker.from_env()
    try:
        labels = client.images.get(xgboost_image_uri(version)).labels or {}
    except docker.errors.ImageNotFound:
        return False
    return labels.get("com.sagelocal.source") == source_digest(version, base)


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
