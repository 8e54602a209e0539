"""The zygote: a warm process that forks containers in milliseconds, and reaps them.

A tuning run is dozens of short training jobs, so paying an interpreter start and an xgboost import
(~2 s) per container would dominate. The zygote imports the container code once; each container is
a ``fork`` of it. It is single-threaded, so forking it is safe (forking the threaded emulator is not).

It runs ``main(CONTROL_FD, LIFELINE_FD)`` in a fresh interpreter. Over CONTROL (a SOCK_SEQPACKET socket) the
emulator sends one JSON request per container with two file descriptors: the container's output
pipe and its status pipe. The zygote forks, puts the child in its own process group (pgid = pid)
and answers with the pid. It is the child's parent, so it alone reaps it (one owner of each exit
status), and writes ``wait <status>`` on the status pipe. The child itself writes ``ready <port>``
when a ``serve`` container listens and ``exit <code>`` before it exits, so a status is known even
if the zygote was killed in the meantime.

Children die with the emulator, however it ends: each holds the read end of the LIFELINE pipe,
whose only write end is in the emulator; a thread in the child blocks on it and kills the child's
process group when it reads end-of-file. The zygote exits when CONTROL closes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import traceback

#: Modules imported once in the zygote, so that every container starts with them loaded.
PRELOAD = ("emulation.containers.entrypoints",)
_MAX_REQUEST_BYTES = 1 << 20


def main(control_fd: int, lifeline_fd: int) -> None:
    for module in PRELOAD:
        __import__(module)
    control = socket.socket(fileno=control_fd)
    status_pipes: dict[int, int] = {}  # pid -> the write end of its status pipe

    def reap(*_):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            fd = status_pipes.pop(pid, None)
            if fd is not None:
                _write_line(fd, f"wait {status}")
                os.close(fd)

    signal.signal(signal.SIGCHLD, reap)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the emulator decides when containers stop
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(control, _MAX_REQUEST_BYTES, 2)
        except OSError:
            message, fds = b"", []
        if not message:
            os._exit(0)  # the emulator is gone; its containers see their lifeline close too
        output_fd, status_fd = fds
        # no reaping between fork and registering the pid: a child that exits at once keeps its status
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        try:
            pid = os.fork()
            if pid == 0:
                control.close()
                for fd in status_pipes.values():  # other containers' pipes: their end must not wait for us
                    os.close(fd)
                _child(json.loads(message), output_fd, status_fd, lifeline_fd)
            try:
                os.setpgid(pid, pid)  # also done by the child: whichever runs first, it holds on reply
            except OSError:
                pass  # the child already exec'd or exited: its own setpgid took effect
            status_pipes[pid] = status_fd
            os.close(output_fd)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        control.send(str(pid).encode())


def _write_line(fd: int, line: str) -> None:
    try:
        os.write(fd, (line + "\n").encode())
    except OSError:
        pass  # nobody reads any more


def _child(request: dict, output_fd: int, status_fd: int, lifeline_fd: int) -> None:
    """The container process: run the image's entry point for the mode, then ``_exit``."""
    code = 1
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        for number in (signal.SIGCHLD, signal.SIGINT):
            signal.signal(number, signal.SIG_DFL)
        os.setpgid(0, 0)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(output_fd, 1)
        os.dup2(output_fd, 2)
        for fd in (devnull, output_fd):
            os.close(fd)
        sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
        sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
        threading.Thread(target=_die_with_emulator, args=(lifeline_fd,), daemon=True).start()
        os.environ.update(request["environment"])
        from emulation.containers import entrypoints
        from emulation.containers.images import ContainerImage

        code = entrypoints.run(
            ContainerImage(**request["image"]),
            request["mode"],
            request["job_dir"],
            ready=lambda port: _write_line(status_fd, f"ready {port}"),
        )
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        _write_line(status_fd, f"exit {code}")
        os._exit(code)


def _die_with_emulator(lifeline_fd: int) -> None:
    while os.read(lifeline_fd, 1):
        pass
    os.killpg(0, signal.SIGKILL)
