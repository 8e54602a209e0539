"""What runs inside a framework image: the toolkits' ``train``, ``serve`` and processing commands.

The process runner hands a container to :class:`ScriptRuntime` when it runs user code (see
:meth:`ScriptRuntime.handles`). Each mode does what the framework container does, on the job
directory (the container's /opt/ml, prepared by the service):

- ``train``: install ``code/requirements.txt`` (InstallRequirementsError if pip fails), run the
  ``sagemaker_program`` with the training toolkit's environment and ``--name value`` arguments,
  and write ``output/failure`` (ExecuteUserScriptError with the end of the traceback) if it fails;
- ``serve``: install the inference code's requirements, then run the inference toolkit's handler
  chain behind /ping and /invocations (``emulation.containers.scriptmode.serving``);
- ``process``: run the AppSpecification's entrypoint and arguments from
  ``config/processingjobconfig.json``, ``python3`` being the image's Python (with the
  requirements of the job's code, if it ships any, installed beforehand).

Where bubblewrap runs, the code runs in a sandbox (``emulation.sandbox``): the job directory is
bound at ``/opt/ml`` (the only writable place besides a private /tmp), so unmodified scripts that
hard-code ``/opt/ml/...`` work; the interpreter, its packages (the "image"), the built
environments and this project are visible read-only, the rest of the host not at all. Elsewhere
the code runs directly and finds its paths in the environment variables only (SM_MODEL_DIR,
SM_CHANNEL_*, ...), which point into the job directory; /opt/ml paths in a processing job's
entrypoint and arguments are rewritten to it.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import sys
import tarfile
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from emulation import sandbox
from emulation.containers import HOST_ADDRESSES_VARIABLE
from emulation.containers.environments import EnvironmentCache, RequirementsError, requirement_lines
from emulation.containers.images import ContainerImage
from emulation.containers.scriptmode import training
from emulation.containers.scriptmode.process import Launch, ScriptContainer, SetupFailed
from emulation.runners import ContainerStartError, ExitStatus, Mode

CONTAINER_ROOT = "/opt/ml"
#: The project's own root: serving containers import their server from it.
_PROJECT_ROOT = str(Path(__file__).resolve().parents[3])
#: Variables of the emulator's own environment a container also has (locale, and the OpenBLAS
#: settings some processors need for correct results). Nothing else leaks in: no credentials of
#: the emulator's user, no emulator settings.
_INHERITED = ("LANG", "LC_ALL", "TZ", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "SSL_CERT_FILE")
#: Set in every framework image's Dockerfile; unbuffered output keeps stdout and stderr in order.
_IMAGE_ENVIRONMENT = {
    "PYTHONUNBUFFERED": "TRUE",
    "PYTHONDONTWRITEBYTECODE": "TRUE",
    "OMP_WAIT_POLICY": "PASSIVE",
}
#: How long a serving container may take to install its requirements and load its model.
SERVING_STARTUP_SECONDS = 300


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text())


class ScriptRuntime:
    """Starts framework-image containers as child processes of an environment's interpreter."""

    def __init__(self, environments: EnvironmentCache):
        self.environments = environments

    # -- which containers are ours -------------------------------------------------------------
    @staticmethod
    def handles(image: ContainerImage, mode: Mode, job_dir: Path, environment: Mapping[str, str]) -> bool:
        """Processing always runs a command; a framework image always runs the user's code; the
        XGBoost image only when given a program (otherwise it is the built-in algorithm)."""
        if mode == "process" or image.always_script_mode:
            return True
        if mode == "serve":
            return "SAGEMAKER_PROGRAM" in environment
        hyperparameters = job_dir / "input" / "config" / "hyperparameters.json"
        return hyperparameters.is_file() and training.runs_user_script(image, _read_json(hyperparameters))

    @property
    def sandboxed(self) -> bool:
        if sandbox.available():
            return True
        sandbox.warn_unavailable("Training, processing and serving scripts")
        return False

    def container_path(self, job_dir: Path, path: str = "") -> str:
        """Where ``job_dir/path`` appears to the user's code."""
        root = CONTAINER_ROOT if self.sandboxed else str(job_dir)
        return f"{root}/{path}".rstrip("/")

    def host_path(self, job_dir: Path, container_path: str) -> Path:
        """The host file behind a container path under /opt/ml (other paths stay as given)."""
        if container_path == CONTAINER_ROOT or container_path.startswith(CONTAINER_ROOT + "/"):
            return job_dir / container_path[len(CONTAINER_ROOT) :].lstrip("/")
        return Path(container_path)

    # -- starting -------------------------------------------------------------------------------
    def start(
        self, image: ContainerImage, mode: Mode, job_dir: Path, environment: Mapping[str, str], on_end=None
    ) -> ScriptContainer:
        job_dir = Path(job_dir)
        environment = dict(environment)
        if mode == "train":
            return ScriptContainer(mode, lambda c: self._train(c, image, job_dir, environment), on_end)
        if mode == "process":
            return ScriptContainer(mode, lambda c: self._process(c, job_dir, environment), on_end)
        port_r, port_w = os.pipe()
        container = ScriptContainer(
            mode, lambda c: self._serve(c, image, job_dir, environment, port_w), on_end
        )
        try:
            port = _read_port(port_r, SERVING_STARTUP_SECONDS)
        finally:
            os.close(port_r)
        if port is None:
            container.kill()
            status = container.wait(5)
            tail = "\n".join(list(container.stderr_tail)[-10:])
            raise ContainerStartError(
                f"the serving container {status.describe() if status else 'did not listen in time'}"
                + (f":\n{tail}" if tail else "")
            )
        container.address = ("127.0.0.1", port)
        return container

    def _train(self, container: ScriptContainer, image: ContainerImage, job_dir: Path, environment) -> Launch:
        config = job_dir / "input" / "config"
        job = training.ScriptJob(
            root=self.container_path(job_dir),
            job_name=environment["TRAINING_JOB_NAME"],
            framework=image.framework,
            hyperparameters=_read_json(config / "hyperparameters.json"),
            input_data_config=_read_json(config / "inputdataconfig.json"),
            resource_config=_read_json(config / "resourceconfig.json"),
        )
        failure = job_dir / "output" / "failure"
        code = job_dir / "code"

        def fail(reason: str) -> SetupFailed:
            failure.parent.mkdir(parents=True, exist_ok=True)
            failure.write_text(reason)
            return SetupFailed(1)

        if not job.entry_point:
            raise fail(
                "AlgorithmError: framework error: no sagemaker_program hyperparameter (the script to run)"
            )
        if not (code / job.entry_point).is_file():
            raise fail(f"AlgorithmError: framework error: {job.entry_point} is not in the source directory")
        interpreter = self._interpreter(container, code, failure)
        command = training.user_script_command(interpreter, job.entry_point, job.arguments())

        def on_exit(status: ExitStatus, stderr: list[str]) -> None:
            if not status.succeeded:
                message = training.error_message(stderr)
                failure.write_text(
                    training.failure_reason("ExecuteUserScriptError", status.docker_code, message, command)
                )

        variables = {**environment, **job.environment(), "PYTHONPATH": self.container_path(job_dir, "code")}
        return self._launch(
            command, job_dir, self.container_path(job_dir, "code"), interpreter, variables, on_exit
        )

    def _serve(
        self, container: ScriptContainer, image: ContainerImage, job_dir: Path, environment, port_w: int
    ) -> Launch:
        try:
            code = job_dir / "code" if (job_dir / "code").is_dir() else job_dir / "model" / "code"
            interpreter = self._interpreter(container, code if code.is_dir() else None, None)
            code_path = self.container_path(job_dir, str(code.relative_to(job_dir))) if code.is_dir() else ""
            variables = {
                **environment,
                "SAGELOCAL_FRAMEWORK": image.framework,
                "SAGELOCAL_MODEL_DIR": self.container_path(job_dir, "model"),
                "SAGELOCAL_CODE_DIR": code_path,
                "SAGELOCAL_PORT_FD": str(port_w),
                "PYTHONPATH": os.pathsep.join(p for p in (code_path, _PROJECT_ROOT) if p),
            }
            command = [interpreter, "-m", "emulation.containers.scriptmode.serving"]
            launch = self._launch(
                command, job_dir, self.container_path(job_dir, "model"), interpreter, variables
            )
        except BaseException:
            os.close(port_w)  # the emulator stops waiting for a port
            raise
        launch.pass_fds = (port_w,)
        launch.close_after_start = [port_w]
        return launch

    def _process(self, container: ScriptContainer, job_dir: Path, environment) -> Launch:
        config = _read_json(job_dir / "config" / "processingjobconfig.json")
        interpreter = self._interpreter(container, self._processing_code(job_dir, config), None)
        application = config["AppSpecification"]
        command = [*application.get("ContainerEntrypoint", []), *application.get("ContainerArguments", [])]
        if not self.sandboxed:  # the job directory is not at /opt/ml: point such paths at it
            command = [
                str(self.host_path(job_dir, a)) if a.startswith(CONTAINER_ROOT + "/") else a for a in command
            ]
        network = not config.get("NetworkConfig", {}).get("EnableNetworkIsolation", False)
        return self._launch(command, job_dir, "/", interpreter, environment, network=network)

    def _processing_code(self, job_dir: Path, config: dict) -> Path | None:
        """Where the job's code keeps a requirements.txt: the ``code`` input, or inside the
        ``sourcedir.tar.gz`` FrameworkProcessor puts there (read from a side copy)."""
        for item in config.get("ProcessingInputs", []):
            if item["InputName"] == "code" and "S3Input" in item:
                code = self.host_path(job_dir, item["S3Input"]["LocalPath"])
                archive = code / "sourcedir.tar.gz"
                if not archive.is_file():
                    return code
                unpacked = job_dir / "requirements-source"
                with tarfile.open(archive) as source:
                    source.extractall(unpacked, filter="data")
                return unpacked
        return None

    # -- shared by every mode ------------------------------------------------------------------
    def _interpreter(self, container: ScriptContainer, code_dir: Path | None, failure: Path | None) -> str:
        """This machine's Python, or an environment with ``code_dir/requirements.txt`` over it. A pip
        failure ends the container (with InstallRequirementsError in ``failure`` for training)."""
        requirements = code_dir / "requirements.txt" if code_dir is not None else None
        if requirements is None or not requirements.is_file():
            return sys.executable
        container.log("Installing dependencies from requirements.txt")
        try:
            return str(
                self.environments.interpreter(
                    requirement_lines(requirements.read_text()), source_dir=code_dir, log=container.log
                )
            )
        except RequirementsError as error:
            if failure is not None:
                message = training.error_message(error.output) or "\n".join(
                    line for line in error.output if line.startswith("ERROR")
                )
                failure.parent.mkdir(parents=True, exist_ok=True)
                failure.write_text(
                    training.failure_reason(
                        "InstallRequirementsError", error.exit_code, message, error.command
                    )
                )
            raise SetupFailed(error.exit_code) from None

    def _launch(
        self, command: list[str], job_dir: Path, workdir: str, interpreter: str, variables: dict[str, str],
        on_exit=None, network: bool = True,
    ) -> Launch:  # fmt: skip
        """``command`` in ``workdir`` (a container path), in the sandbox where there is one, with
        only the container's environment variables."""
        inherited = {k: os.environ[k] for k in _INHERITED if k in os.environ}
        home = (
            "/tmp" if self.sandboxed else os.environ.get("HOME", "/tmp")
        )  # the host's home is not in the sandbox
        path = os.pathsep.join([os.path.dirname(interpreter), os.environ.get("PATH", "/usr/bin:/bin")])
        environment = {**inherited, "HOME": home, "PATH": path, **_IMAGE_ENVIRONMENT, **variables}
        if not self.sandboxed:
            setpriv = shutil.which("setpriv")  # util-linux: SIGKILL it when its owner thread ends
            wrapped = [setpriv, "--pdeathsig", "KILL", "--", *command] if setpriv else command
            return Launch(wrapped, self.host_path(job_dir, workdir), environment, on_exit=on_exit)
        # A private /tmp first, so that binds of paths under /tmp (a cache there) sit inside it.
        private_tmp = Path(tempfile.mkdtemp(prefix="sagelocal-container-tmp-"))
        binds = [
            sandbox.Bind(private_tmp, "/tmp", writable=True),
            *sandbox.system_binds(),
            *self._image_binds(),
            sandbox.Bind(job_dir, CONTAINER_ROOT, writable=True),
        ]
        remove_after = [private_tmp]
        if HOST_ADDRESSES_VARIABLE in variables:  # a host of a multi-instance job: the others by name
            hosts_dir = Path(tempfile.mkdtemp(prefix="sagelocal-container-etc-"))
            (hosts_dir / "hosts").write_text(_hosts_file(json.loads(variables[HOST_ADDRESSES_VARIABLE])))
            binds.append(sandbox.Bind(hosts_dir / "hosts", "/etc/hosts"))
            remove_after.append(hosts_dir)
        view = sandbox.Sandbox(
            binds=binds,
            workdir=workdir,
            network=network,
            die_with_parent=True,  # started by the container's owner thread, which outlives it
        )
        return Launch(view.command(command), job_dir, environment, on_exit=on_exit, remove_after=remove_after)

    def _image_binds(self) -> list[sandbox.Bind]:
        """What the "image" holds, read-only: the interpreter with its installed packages (the
        frameworks), the environments built over it, and this project (its serving code)."""
        paths = [Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), Path(_PROJECT_ROOT)]
        if self.environments.root.is_dir():
            paths.append(self.environments.root.resolve())
        unique = [p for p in dict.fromkeys(paths) if not any(p != q and q in p.parents for q in paths)]
        return [sandbox.Bind(path, str(path)) for path in unique]


def _hosts_file(addresses: dict[str, str]) -> str:
    """This machine's /etc/hosts with the job's hosts added, as Docker writes a container's."""
    try:
        own = Path("/etc/hosts").read_text()
    except OSError:
        own = "127.0.0.1\tlocalhost\n"
    return own.rstrip("\n") + "\n" + "".join(f"{address}\t{host}\n" for host, address in addresses.items())


def _read_port(fd: int, timeout: float) -> int | None:
    """The port a serving container writes once it listens; None if it ends or times out first."""
    deadline = time.monotonic() + timeout
    text = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(fd, 64)
        if not chunk:
            break
        text += chunk
        if text.endswith(b"\n"):
            return int(text)
    return None
