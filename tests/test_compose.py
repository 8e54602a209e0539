"""docker-compose.yml and the Dockerfile: the structure `docker compose up` relies on.

No Docker engine is needed: the files are read as data. ``docker compose config`` runs only where a
docker CLI with the compose plugin is installed.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
CI_RUN = ROOT / ".ci" / "run"

EMULATOR_PORT = 4566
WEB_PORT = 8080
HEALTH_PATH = "/_sagelocal/health"
CREDENTIAL_VARIABLES = {
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def _command(service: dict) -> list[str]:
    command = service.get("command")
    return shlex.split(command) if isinstance(command, str) else list(command or [])


def _option(command: list[str], name: str) -> str | None:
    return command[command.index(name) + 1] if name in command else None


def _environment(service: dict) -> dict[str, str | None]:
    environment = service.get("environment") or {}
    if isinstance(environment, dict):
        return {k: None if v is None else str(v) for k, v in environment.items()}
    pairs = (item.partition("=") for item in environment)
    return {key: value if sep else None for key, sep, value in pairs}


def _ports(service: dict) -> set[tuple[int, int]]:
    """(published, target) pairs from short ("4566:4566") or long ({published, target}) syntax."""
    ports = set()
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            ports.add((int(port["published"]), int(port["target"])))
        else:
            *_, published, target = str(port).split("/")[0].split(":")
            ports.add((int(published), int(target)))
    return ports


def _mounts(service: dict) -> list[tuple[str, str]]:
    mounts = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            mounts.append((volume.get("source", ""), volume["target"]))
        else:
            source, _, rest = volume.partition(":")
            mounts.append((source, rest.split(":")[0]))
    return mounts


def _logical_lines(text: str) -> list[str]:
    """Join backslash-continued lines and drop comments (shell script and Dockerfile alike)."""
    lines = []
    for line in re.sub(r"\\\n", " ", text).splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            lines.append(stripped)
    return lines


#: The image installs pyproject's dependencies in a step of their own, then the project alone.
_IMAGE_ONLY_FLAGS = ("--no-deps", "--no-build-isolation")


def _project_installs(text: str) -> list[list[str]]:
    """Every `pip install` of this project, normalized: `python -m pip` -> `pip`, extras dropped
    (`.[dev]` -> `.`), the image's own flags dropped (``_IMAGE_ONLY_FLAGS``), so CI's install and
    the image's can be compared for "the same step"."""
    installs = []
    for line in _logical_lines(text):
        line = re.sub(r"^RUN\s+", "", line)
        for part in re.split(r"&&|\|\||;", line):
            try:
                words = shlex.split(part, comments=True)
            except ValueError:  # a quote split by the separators above: not a pip line we can read
                continue
            if "pip" in words or "pip3" in words:
                words = words[max(words.index(w) for w in ("pip", "pip3") if w in words) :]
            if words[:2] not in (["pip", "install"], ["pip3", "install"]):
                continue
            words = [
                "pip",
                *(
                    re.sub(r"^\.\[[^\]]*\]$", ".", word)
                    for word in words[1:]
                    if word not in _IMAGE_ONLY_FLAGS
                ),
            ]
            if "." in words:
                installs.append(words)
    return installs


def test_services_emulator_and_web_built_from_the_dockerfile(services):
    assert {"emulator", "web"} <= set(services)
    for name in ("emulator", "web"):
        build = services[name].get("build")
        assert isinstance(build, dict), f"{name}: build must name context and Dockerfile"
        assert build.get("context") == "."
        assert build.get("dockerfile", "Dockerfile") == "Dockerfile"
        assert "profiles" not in services[name], f"{name} must start with a plain `docker compose up`"
    assert DOCKERFILE.is_file()
    # The base is a build argument (python:3.11-slim by default; offline, a debootstrap base).
    dockerfile = DOCKERFILE.read_text()
    assert re.search(r"^ARG\s+BASE_IMAGE=python:3\.11-slim\s*$", dockerfile, re.MULTILINE)
    assert re.search(r"^FROM\s+\$\{BASE_IMAGE\}\s*$", dockerfile, re.MULTILINE)


def test_emulator_command_and_port(services):
    emulator = services["emulator"]
    command = _command(emulator)
    assert command[:2] == ["sagelocal", "emulator"]
    assert _option(command, "--host") == "0.0.0.0"
    assert _option(command, "--port") == str(EMULATOR_PORT)
    assert (EMULATOR_PORT, EMULATOR_PORT) in _ports(emulator)


def test_web_command_port_and_api_url(services):
    web = services["web"]
    command = _command(web)
    assert command[:2] == ["sagelocal", "web"]
    assert _option(command, "--host") == "0.0.0.0"
    assert _option(command, "--port") == str(WEB_PORT)
    assert (WEB_PORT, WEB_PORT) in _ports(web)
    # The API URL comes from the environment, empty when unset (compose interpolation).
    assert _option(command, "--api-url") == "${SAGELOCAL_API_URL:-}"
    assert web.get("depends_on", {}).get("emulator", {}).get("condition") == "service_healthy"


def test_emulator_health_check_uses_the_health_route_without_curl(services):
    check = services["emulator"]["healthcheck"]["test"]
    assert isinstance(check, list) and check[0] in ("CMD", "CMD-SHELL")
    text = " ".join(check[1:])
    assert (
        f"127.0.0.1:{EMULATOR_PORT}{HEALTH_PATH}" in text or f"localhost:{EMULATOR_PORT}{HEALTH_PATH}" in text
    )
    assert check[1] == "python" and "urllib.request" in text
    assert "curl" not in text and "wget" not in text


def test_state_on_a_named_volume_at_the_data_dir(compose, services):
    emulator = services["emulator"]
    data_dir = _environment(emulator).get("SAGELOCAL_DATA_DIR")
    assert data_dir and data_dir.startswith("/")
    named = set(compose.get("volumes") or {})
    assert any(source in named and target == data_dir for source, target in _mounts(emulator)), (
        f"no named volume at {data_dir}: {_mounts(emulator)}"
    )
    # The image agrees, so `docker run` without compose uses the same place.
    assert f"SAGELOCAL_DATA_DIR={data_dir}" in DOCKERFILE.read_text()


def test_no_aws_credentials_anywhere(services):
    dockerfile = DOCKERFILE.read_text()
    for variable in CREDENTIAL_VARIABLES:
        assert variable not in dockerfile
    for name, service in services.items():
        assert not CREDENTIAL_VARIABLES & set(_environment(service)), name
        assert "env_file" not in service, f"{name}: an env_file could carry credentials"
        assert not any(".aws" in source for source, _ in _mounts(service)), f"{name} mounts ~/.aws"


def test_localstack_profile_is_opt_in_and_takes_the_token_from_the_environment(services):
    localstack = [s for s in services.values() if "localstack" in (s.get("profiles") or [])]
    assert len(localstack) == 1
    service = localstack[0]
    assert service["image"].startswith("localstack/")
    environment = _environment(service)
    # The token is required by LocalStack now; it must come from the user's environment, never the file.
    assert environment["LOCALSTACK_AUTH_TOKEN"].startswith("${LOCALSTACK_AUTH_TOKEN")
    assert set(environment["SERVICES"].split(",")) == {"s3", "lambda", "apigateway"}
    assert (EMULATOR_PORT, EMULATOR_PORT) not in _ports(service), "4566 on the host is sagelocal's"
    assert "not exercised" in COMPOSE.read_text().lower()


def test_the_image_installs_the_project_the_way_ci_does():
    image = _project_installs(DOCKERFILE.read_text())
    assert image == [["pip", "install", "-e", "."]]
    assert "chromium" not in " ".join(_logical_lines(DOCKERFILE.read_text())).lower()
    if not CI_RUN.exists():
        pytest.skip(".ci/run does not exist yet: nothing to compare the Dockerfile's install step with")
    ci = _project_installs(CI_RUN.read_text())
    assert ci, ".ci/run installs the project with no recognizable `pip install ... .[dev]` step"
    assert ci == image, f"Dockerfile installs {image}, CI installs {ci} (extras aside)"


def test_normalization_of_install_steps():
    script = "set -e\napt-get install -y chromium\npython -m pip install -e '.[dev]'  # the project\n"
    assert _project_installs(script) == [["pip", "install", "-e", "."]]
    assert _project_installs("RUN pip install -U pip \\\n && pip install -e .\n") == [
        ["pip", "install", "-e", "."]
    ]
    assert _project_installs("pip install ruff\n") == []


def _compose_command() -> list[str] | None:
    """`docker compose` (v2) where the plugin exists, else Debian's `docker-compose` (v1), else None."""
    if shutil.which("docker") is not None:
        try:
            if (
                subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30).returncode
                == 0
            ):
                return ["docker", "compose"]
        except (OSError, subprocess.TimeoutExpired):
            pass
    return ["docker-compose"] if shutil.which("docker-compose") else None


def test_docker_compose_config_accepts_the_file():
    command = _compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed here")
    result = subprocess.run(
        [*command, "-f", str(COMPOSE), "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", ["emulator", "web"])
def test_ports_are_published_on_loopback_only(compose, name):
    """The emulator's keys are public (test / test): its ports must not face the network by default."""
    for port in compose["services"][name]["ports"]:
        assert str(port).startswith("127.0.0.1:"), port
    assert "127.0.0.1:" in COMPOSE.read_text()  # and the comment says how to open them
