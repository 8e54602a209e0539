"""TCP_NODELAY for every HTTP server we run.

A keep-alive HTTP/1.1 server that writes headers and body in separate small writes makes each
request wait ~40 ms for the client's delayed ACK (Nagle). Turning Nagle off removes that wait.
"""

import socket


def disable_nagle(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:  # not a TCP socket (e.g. a Unix socket in tests)
        pass
