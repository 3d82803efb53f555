"""Loopback ports and waiting for servers to listen."""

from __future__ import annotations

import socket
import time

LOOPBACK = "127.0.0.1"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port nothing listens on right now (TCP, or UDP with SOCK_DGRAM).

    A second named or haproxy on an occupied port may start without an error, so servers are
    always given a port checked here; for servers that speak both TCP and UDP (DNS) use
    ``free_port_pair``.
    """
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def free_port_pair() -> int:
    """A port free for both TCP and UDP."""
    for _ in range(50):
        port = free_port()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.bind((LOOPBACK, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no port free for both TCP and UDP on %s" % LOOPBACK)


def wait_for_port(port: int, host: str = LOOPBACK, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError("nothing listens on %s:%d after %.0f s"
                                   % (host, port, timeout)) from None
            time.sleep(0.05)
