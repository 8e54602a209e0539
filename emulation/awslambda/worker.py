"""The first program of an execution environment: open the Runtime API's door, then become the runtime.

The emulator starts ``python -I -S worker.py <control fd> <runtime kind> [edge port]`` inside the
sandbox, with the function's environment. This program

1. listens on the loopback address where the runtime will find the Runtime API (127.0.0.1:9001,
   as on AWS, in the sandbox's own network namespace; any free port where there is no sandbox) and,
   inside a sandbox, on the emulator's port too, so that ``AWS_ENDPOINT_URL`` leads to the emulator;
2. hands those listening sockets to the emulator over the control socket (the emulator accepts and
   serves the connections, so only programs in this sandbox can reach this environment's API), with
   its process id attached (the emulator reads the runtime's memory use from it);
3. becomes the runtime: for a Python function, AWS's runtime interface client (``awslambdaric``) in
   this same process, with ``sys.path`` as on AWS: the task root, the runtime directory (awslambdaric
   and the SDK the runtime bundles) and the standard library, nothing from the host; for a custom
   runtime, the package's ``bootstrap`` executable.

This file imports only the standard library, which is all there is to import until step 3.
"""

from __future__ import annotations

import os
import socket
import struct
import sys

RUNTIME_API_PORT = 9001


def _listen(port: int) -> socket.socket:
    listener = socket.create_server(("127.0.0.1", port), backlog=64)
    return listener


def _hand_over(control: socket.socket, listeners: list[socket.socket]) -> None:
    credentials = struct.pack("3i", os.getpid(), os.getuid(), os.getgid())
    control.sendmsg(
        [b"L"],
        [
            (
                socket.SOL_SOCKET,
                socket.SCM_RIGHTS,
                struct.pack(f"{len(listeners)}i", *(s.fileno() for s in listeners)),
            ),
            (socket.SOL_SOCKET, socket.SCM_CREDENTIALS, credentials),
        ],
    )
    for listener in listeners:
        listener.close()  # from now on only the emulator accepts on them


def _run_python(handler: str) -> None:
    import _sitebuiltins
    import builtins

    sys.path[:0] = [os.environ["LAMBDA_TASK_ROOT"], os.environ["LAMBDA_RUNTIME_DIR"]]
    # -S skips ``site``, which is also where ``exit`` and ``quit`` come from; the runtime has them.
    builtins.exit = _sitebuiltins.Quitter("exit", "Ctrl-D (i.e. EOF)")
    builtins.quit = _sitebuiltins.Quitter("quit", "Ctrl-D (i.e. EOF)")
    sys.argv = ["/var/runtime/bootstrap", handler]
    from awslambdaric.__main__ import main

    main(sys.argv)


def _exec_bootstrap(control: socket.socket) -> None:
    """Become the package's ``bootstrap``; if that cannot be done, tell the emulator why, as AWS words it."""
    bootstrap = os.path.join(os.environ["LAMBDA_TASK_ROOT"], "bootstrap")
    try:
        os.execv(bootstrap, [bootstrap])
    except FileNotFoundError:
        reason = f"Couldn't find valid bootstrap(s): [{bootstrap} /opt/bootstrap]"
    except OSError as error:
        reason = f"fork/exec {bootstrap}: {os.strerror(error.errno).lower()}"
    control.sendall(reason.encode())
    os._exit(127)


def main(argv: list[str]) -> None:
    control = socket.socket(fileno=int(argv[1]))
    control.set_inheritable(False)  # the runtime never sees it
    kind = argv[2]
    isolated = len(argv) > 3
    runtime_api = _listen(RUNTIME_API_PORT if isolated else 0)
    os.environ["AWS_LAMBDA_RUNTIME_API"] = f"127.0.0.1:{runtime_api.getsockname()[1]}"
    listeners = [runtime_api]
    if isolated:
        listeners.append(_listen(int(argv[3])))
    _hand_over(control, listeners)
    if kind == "python":
        control.close()
        _run_python(os.environ["_HANDLER"])
    else:
        _exec_bootstrap(control)


if __name__ == "__main__":
    main(sys.argv)
