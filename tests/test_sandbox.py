"""emulation.sandbox: a program sees only what it is given (bubblewrap), and private directories stay private."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from emulation import sandbox

needs_bwrap = pytest.mark.skipif(
    not sandbox.available(), reason=f"no sandbox here: {sandbox.unavailable_reason()}"
)


def run_python(view: sandbox.Sandbox, code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        view.command([sys.executable, "-I", "-S", "-c", code]),
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        timeout=60,
    )


def python_view(*binds: sandbox.Bind, **options) -> sandbox.Sandbox:
    interpreter, hidden = sandbox.python_binds()
    return sandbox.Sandbox(
        [*sandbox.system_binds(), *interpreter, *binds], empty=[*hidden, "/tmp"], **options
    )


@needs_bwrap
def test_only_bound_paths_are_visible_and_read_only_binds_are_read_only(tmp_path):
    job, secret = tmp_path / "job", tmp_path / "secret"
    job.mkdir()
    secret.write_text("host secret")
    (job / "input.txt").write_text("input")
    view = python_view(sandbox.Bind(job, "/opt/ml"), workdir="/opt/ml")
    answer = run_python(
        view,
        f"""
import os
print(open("input.txt").read())
print(os.path.exists({str(secret)!r}))
try:
    open("/opt/ml/out.txt", "w")
except OSError as error:
    print(type(error).__name__)
""",
    )
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.split() == ["input", "False", "OSError"]


@needs_bwrap
def test_writable_bind_and_own_ids(tmp_path):
    view = python_view(sandbox.Bind(tmp_path, "/opt/ml", writable=True), uid=993, gid=990)
    answer = run_python(
        view, "import os; open('/opt/ml/model', 'w').write('m'); print(os.getuid(), os.getgid())"
    )
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.split() == ["993", "990"]
    assert (tmp_path / "model").read_text() == "m"


@needs_bwrap
def test_host_processes_packages_and_network_are_out_of_sight():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        answer = run_python(
            python_view(),
            f"""
import os, socket, importlib.util
print({os.getpid()} in [int(p) for p in os.listdir("/proc") if p.isdigit()])
print(importlib.util.find_spec("pytest") is not None)
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2)
    print("connected")
except OSError:
    print("refused")
""",
        )
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.split() == ["False", "False", "refused"]


@needs_bwrap
def test_shared_network_reaches_the_host():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        answer = run_python(
            python_view(network=True),
            f"import socket; socket.create_connection(('127.0.0.1', {port})); print('ok')",
        )
    assert answer.stdout.split() == ["ok"], answer.stderr


def test_private_directory_is_made_0700_and_tightened(tmp_path):
    made = sandbox.private_directory(tmp_path / "a" / "cache")
    assert (made.stat().st_mode & 0o777) == 0o700
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    os.chmod(loose, 0o777)
    sandbox.private_directory(loose)
    assert (loose.stat().st_mode & 0o777) == 0o700


def test_private_directory_refuses_a_symbolic_link(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(PermissionError, match="not a directory"):
        sandbox.private_directory(tmp_path / "link")


@pytest.mark.skipif(os.getuid() != 0, reason="making a directory owned by another user needs root")
def test_private_directory_refuses_another_users_directory(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    os.chown(foreign, 12345, 12345)
    with pytest.raises(PermissionError, match="belongs to user id 12345"):
        sandbox.private_directory(foreign)


@pytest.mark.skipif(os.getuid() != 0, reason="only root has capabilities to drop")
def test_without_capabilities_root_obeys_file_modes(tmp_path):
    private = tmp_path / "private.txt"
    private.write_text("not yours")
    os.chown(private, 12345, 12345)
    os.chmod(private, 0o600)
    read = [sys.executable, "-I", "-S", "-c", f"print(open({str(private)!r}).read())"]
    assert subprocess.run(read, capture_output=True, text=True).stdout.strip() == "not yours"
    dropped = subprocess.run(sandbox.without_capabilities(read), capture_output=True, text=True)
    assert "PermissionError" in dropped.stderr


def test_remove_tree_removes_what_denies_its_owner(tmp_path):
    tree = tmp_path / "unpacked"
    (tree / "closed" / "inner").mkdir(parents=True)
    (tree / "closed" / "inner" / "file").write_text("x")
    os.chmod(tree / "closed" / "inner" / "file", 0)
    os.chmod(tree / "closed" / "inner", 0)
    os.chmod(tree / "closed", 0o555)
    sandbox.remove_tree(tree)
    assert not tree.exists()
