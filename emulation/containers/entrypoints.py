"""What runs inside an image, per mode: the image's ``train`` and ``serve`` commands.

A runner calls :func:`run` inside the container process (for the process runner: a fork of the
warm zygote). ``job_dir`` plays ``/opt/ml``. This is the one place that maps an image to its code.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from emulation.containers import images, serving
from emulation.containers.images import ContainerImage
from emulation.containers.xgboost import training


def run(image: ContainerImage, mode: str, job_dir: str | Path, ready: Callable[[int], None]) -> int:
    """Run ``image``'s ``mode`` command; returns its exit code. ``serve`` calls ``ready(port)`` once listening."""
    job_dir = Path(job_dir)
    if image.framework != "xgboost":
        raise ValueError(f"no local implementation of image {image.uri}")
    if mode == "train":
        return _train_xgboost(job_dir, image.version)
    if mode == "serve":
        serving.serve(job_dir / "model", image.version, on_listening=ready)
        return 0
    raise ValueError(f"image {image.uri} has no {mode} command")


def _train_xgboost(job_dir: Path, version: str) -> int:
    """Exit 0 on success; else write ``output/failure`` (the job's FailureReason) and exit 1, as the image does."""
    try:
        training.train(job_dir, version)
    except Exception as error:
        if not isinstance(error, (training.UserError, training.AlgorithmError)):
            traceback.print_exc()
        (job_dir / "output").mkdir(parents=True, exist_ok=True)
        (job_dir / "output" / "failure").write_text(training.failure_reason(error))
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """``train`` / ``serve`` in a Docker image made by ``sagelocal build-image``: /opt/ml is the job."""
    arguments = sys.argv[1:] if argv is None else argv
    if len(arguments) != 1 or arguments[0] not in ("train", "serve"):
        print("usage: train | serve", file=sys.stderr)
        return 2
    image = images.resolve(os.environ["SAGELOCAL_IMAGE_URI"])
    return run(image, arguments[0], "/opt/ml", ready=lambda port: None)


if __name__ == "__main__":
    sys.exit(main())
