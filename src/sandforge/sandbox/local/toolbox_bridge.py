"""The toolbox daemon's preview bridge: host connections to a port inside the sandbox.

Part of the daemon (toolbox.py loads it from next to itself), so standard library only.
The host creates a listening socket for a port in its own directory and passes the
descriptor with a `forward` request (SCM_RIGHTS); the daemon bridges every connection on
it to 127.0.0.1:<port> inside (or [::1]). No host port is opened and every sandbox can
serve on port 3000.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .. import wire
else:
    import sandforge_wire as wire  # toolbox.py loads it before this module

BRIDGE_CONNECT_TIMEOUT_S = 10.0

Reply = dict[str, Any]


class Bridge:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.forwards: dict[int, socket.socket] = {}

    def forward(self, req: dict[str, Any], fds: list[int]) -> Reply:
        port = int(req["port"])
        if not 1 <= port <= 65535:
            raise wire.Failure("bad_port", f"{port} is not a TCP port")
        with self.lock:
            active = port in self.forwards
            if not fds or active:
                return {"active": active, "adopted": False}
            listener = socket.socket(fileno=fds.pop(0))
            if listener.family != socket.AF_UNIX or listener.type != socket.SOCK_STREAM:
                listener.close()
                raise wire.Failure("bad_request", "forward needs a listening unix stream socket")
            listener.setblocking(True)
            self.forwards[port] = listener
        start_thread(self._accept_forward, listener, port)
        return {"active": True, "adopted": True}

    def _accept_forward(self, listener: socket.socket, port: int) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                break
            try:
                start_thread(_bridge, conn, port)
            except RuntimeError:  # no thread can start (pids limit): drop this one, stay up
                conn.close()
        with self.lock:
            if self.forwards.get(port) is listener:
                del self.forwards[port]


def relay_outbound(port: int, socket_path: str) -> None:
    """Serve 127.0.0.1:`port` inside by relaying each connection to the host's unix socket
    at `socket_path` (the package bridge, which answers for the package registries only)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    start_thread(_accept_outbound, listener, socket_path)


def _accept_outbound(listener: socket.socket, socket_path: str) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        try:
            start_thread(_relay_out, conn, socket_path)
        except RuntimeError:  # no thread can start (pids limit): drop this one, stay up
            conn.close()


def _relay_out(conn: socket.socket, socket_path: str) -> None:
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    upstream.settimeout(BRIDGE_CONNECT_TIMEOUT_S)
    try:
        upstream.connect(socket_path)
    except OSError:
        conn.close()
        upstream.close()
        return
    upstream.settimeout(None)
    _join(conn, upstream)


def _join(conn: socket.socket, upstream: socket.socket) -> None:
    try:
        other = start_thread(_pump, upstream, conn)
    except RuntimeError:  # no thread can start (pids limit)
        conn.close()
        upstream.close()
        return
    _pump(conn, upstream)
    other.join()
    conn.close()
    upstream.close()


def _bridge(conn: socket.socket, port: int) -> None:
    upstream: socket.socket | None = None
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        candidate = socket.socket(family, socket.SOCK_STREAM)
        candidate.settimeout(BRIDGE_CONNECT_TIMEOUT_S)
        try:
            candidate.connect((host, port))
        except OSError:
            candidate.close()
            continue
        candidate.settimeout(None)
        upstream = candidate
        break
    if upstream is None:
        conn.close()
        return
    _join(conn, upstream)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while chunk := src.recv(65536):
            dst.sendall(chunk)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


def start_thread(target: Callable[..., None], *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread
