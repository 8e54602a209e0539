"""The Docker runner: each container is a real Docker container of the job's own image.

It keeps the rules of :mod:`emulation.runners` with Docker's means: the Engine API (docker-py)
starts ``<image> train|serve`` with the job directory bound at ``/opt/ml`` and, to serve, port
8080 published on the loopback interface; one watcher thread per container is the only reader of
its exit status (``docker wait``); ``stop`` is ``docker stop`` (SIGTERM, then SIGKILL after the
grace period) and ``kill`` is ``docker kill``; both go to the daemon, not to anything of ours.

A Docker container cannot be tied to the emulator's process the way a child process is, so every
container carries the label of the emulator that started it: ``shutdown`` removes them, and a new
runner removes those whose emulator is gone (a SIGKILLed emulator's leftovers).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from emulation.containers.images import ContainerImage
from emulation.runners import ContainerStartError, ExitStatus, Limits, Mode, answers_ping

#: Labels on every container this runner starts: which emulator process (pid@boot-relative start).
OWNER_LABEL = "com.sagelocal.emulator"
SERVING_PORT = 8080
SERVE_START_TIMEOUT_SECONDS = 60
API_TIMEOUT_SECONDS = 600


def _process_identity(pid: int) -> str | None:
    """A pid plus its start time: stays unique when pids are reused."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return f"{pid}@{stat.read().rsplit(')', 1)[1].split()[19]}"
    except OSError:
        return None


class DockerUnavailable(RuntimeError):
    pass


def daemon_answers(timeout: float = 2.0) -> bool:
    """Whether a Docker daemon answers (``--runner auto`` picks docker then)."""
    try:
        import docker

        client = docker.from_env(timeout=timeout)
        client.ping()
        client.close()
        return True
    except Exception:  # no package, no socket, no permission: no Docker for us
        return False


class DockerContainer:
    def __init__(self, container, mode: Mode, on_end=None):
        self._container = container
        self.mode = mode
        self.address: tuple[str, int] | None = None
        self._exit_status: ExitStatus | None = None
        self._signal_sent: int | None = None
        self._ended = threading.Event()
        self._logs_read = threading.Event()
        self._on_end = on_end
        self._watcher = threading.Thread(target=self._watch, name=f"docker-{container.short_id}", daemon=True)
        self._watcher.start()

    @property
    def id(self) -> str:
        return self._container.id

    def _watch(self) -> None:
        """The one reader of the exit status: ``docker wait``, retried if the daemon connection drops."""
        code = None
        while code is None:
            try:
                code = int(self._container.wait()["StatusCode"])
            except Exception:
                if not self._still_exists():
                    break
                time.sleep(0.5)
        if code is not None and code > 128 and self._signal_sent == code - 128:
            status = ExitStatus(signal=code - 128)
        else:
            status = ExitStatus(code=code)
        self._exit_status = status
        self._ended.set()
        if self._on_end is not None:
            self._on_end(self)
        self._remove_when_done()

    def _still_exists(self) -> bool:
        import docker.errors

        try:
            self._container.reload()
            return True
        except docker.errors.NotFound:
            return False
        except Exception:
            return True  # the daemon is unreachable for now; keep waiting

    @property
    def exit_status(self) -> ExitStatus | None:
        return self._exit_status if self._ended.is_set() else None

    def logs(self) -> Iterator[str]:
        pending = b""
        for chunk in self._container.logs(stream=True, follow=True, stdout=True, stderr=True):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line.decode("utf-8", "replace")
        if pending:
            yield pending.decode("utf-8", "replace")
        self._logs_read.set()
        self._remove_when_done()

    def _remove_when_done(self) -> None:
        """An ended container goes once its logs were read (Docker keeps them only while it exists)."""
        if self._ended.is_set() and self._logs_read.is_set():
            self.remove()

    def wait(self, timeout: float | None = None) -> ExitStatus | None:
        self._ended.wait(timeout)
        return self.exit_status

    def health(self, timeout: float = 2.0) -> bool:
        if self._ended.is_set():
            return False
        if self.mode != "serve":
            return True
        return answers_ping(self.address, timeout)

    def stop(self, grace: float = 10.0) -> None:
        if self._ended.is_set():
            return
        self._signal_sent = 15
        threading.Thread(target=self._quietly, args=(self._container.stop, int(grace)), daemon=True).start()

    def kill(self) -> None:
        if self._ended.is_set():
            return
        self._signal_sent = 9
        self._quietly(self._container.kill)

    @staticmethod
    def _quietly(call, *args) -> None:
        try:
            call(*args)
        except Exception:  # already gone: nothing left to stop
            pass

    def remove(self) -> None:
        self._quietly(lambda: self._container.remove(force=True))


class DockerRunner:
    """Starts the job's own image; ``shutdown`` removes every container it started."""

    runs_any_image = True

    def __init__(self, client=None):
        import docker

        try:
            # Creating a container copies the image's files with the vfs storage driver: slow on a
            # busy machine, so the API calls get minutes, not docker-py's default minute.
            self._client = client or docker.from_env(timeout=API_TIMEOUT_SECONDS)
            self._client.ping()
        except Exception as error:
            raise DockerUnavailable(f"no Docker daemon answers ({error})") from error
        self._owner = _process_identity(os.getpid()) or str(os.getpid())
        self._lock = threading.Lock()
        self._running: set[DockerContainer] = set()
        self._started: list[DockerContainer] = []  # removed at shutdown if still there
        self._remove_orphans()

    def _remove_orphans(self) -> None:
        """Containers of emulators that are gone (killed without a chance to clean up)."""
        for container in self._client.containers.list(all=True, filters={"label": OWNER_LABEL}):
            owner = container.labels.get(OWNER_LABEL, "")
            pid = owner.split("@", 1)[0]
            if not pid.isdigit() or _process_identity(int(pid)) != owner:
                DockerContainer._quietly(lambda c=container: c.remove(force=True))

    def _ensure_image(self, uri: str) -> None:
        import docker.errors

        try:
            self._client.images.get(uri)
            return
        except docker.errors.ImageNotFound:
            pass
        try:
            self._client.images.pull(uri, auth_config=_registry_auth(uri))
        except docker.errors.APIError as error:
            hint = (
                " For the built-in XGBoost images, `sagelocal build-image xgboost:<version>` builds a "
                "local stand-in with this name."
                if "sagemaker-xgboost" in uri
                else ""
            )
            raise ContainerStartError(
                f"The image '{uri}' is not present and could not be pulled: {error}.{hint}"
            ) from None

    def start(
        self,
        image: ContainerImage,
        mode: Mode,
        job_dir: Path,
        environment: Mapping[str, str] | None = None,
        limits: Limits | None = None,
    ) -> DockerContainer:
        self._ensure_image(image.uri)
        options = {}
        if limits is not None and limits.cpus:
            options["nano_cpus"] = int(limits.cpus * 1e9)
        if mode == "serve":
            options["ports"] = {f"{SERVING_PORT}/tcp": ("127.0.0.1", None)}
        try:
            raw = self._client.containers.run(
                image.uri,
                command=[mode],
                detach=True,
                volumes={str(Path(job_dir).resolve()): {"bind": "/opt/ml", "mode": "rw"}},
                environment=dict(environment or {}),
                labels={OWNER_LABEL: self._owner},
                **options,
            )
        except Exception as error:
            raise ContainerStartError(f"Docker could not start {image.uri} {mode}: {error}") from None
        with self._lock:
            container = DockerContainer(raw, mode, on_end=self._forget)
            self._running.add(container)
            self._started.append(container)
        if mode == "serve":
            self._await_serving(container, raw)
        return container

    def _await_serving(self, container: DockerContainer, raw) -> None:
        deadline = time.monotonic() + SERVE_START_TIMEOUT_SECONDS
        raw.reload()
        binding = (raw.attrs["NetworkSettings"]["Ports"] or {}).get(f"{SERVING_PORT}/tcp") or []
        if binding:
            container.address = ("127.0.0.1", int(binding[0]["HostPort"]))
        while time.monotonic() < deadline:
            if container.exit_status is not None:
                raise ContainerStartError(
                    f"the serving container {container.exit_status.describe()} during start-up"
                )
            if container.health(timeout=1.0):
                return
            time.sleep(0.1)
        container.kill()
        raise ContainerStartError(
            f"the serving container did not answer /ping within {SERVE_START_TIMEOUT_SECONDS} s"
        )

    def host_addresses(self, hosts: list[str]) -> None:
        """Not built: the hosts of a multi-instance job would need a user network with each
        container's name as an alias; such a job runs on one host."""
        return None

    def _forget(self, container: DockerContainer) -> None:
        with self._lock:
            self._running.discard(container)

    def running(self) -> list[DockerContainer]:
        with self._lock:
            return list(self._running)

    def shutdown(self) -> None:
        for container in self.running():
            container.kill()
        for container in self.running():
            container.wait(10)
        with self._lock:
            started, self._started = self._started, []
        for container in started:
            container.remove()


def _registry_auth(uri: str) -> dict | None:
    """ECR wants a token from the caller's AWS credentials; other registries use Docker's own login."""
    registry = uri.split("/", 1)[0]
    if ".dkr.ecr." not in registry:
        return None
    import base64

    import boto3

    region = registry.split(".dkr.ecr.", 1)[1].split(".", 1)[0]
    try:
        token = boto3.client("ecr", region_name=region).get_authorization_token()["authorizationData"][0]
    except Exception:  # no credentials or no network: the pull then fails with the registry's reason
        return None
    username, password = base64.b64decode(token["authorizationToken"]).decode().split(":", 1)
    return {"username": username, "password": password}
