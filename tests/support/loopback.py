"""A threaded HTTP server on a free 127.0.0.1 port, run from a background thread, that stops cleanly even
while handlers hang or clients keep connections open (the test upstreams and the relay build on it)."""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import BaseRequestHandler, TCPServer
from typing import Any, TypeVar

Server = TypeVar("Server", bound="LoopbackServer")


class QuietHandler(BaseHTTPRequestHandler):
    """The base of the test servers' handlers: HTTP/1.1 (keep-alive unless a reply closes), nothing printed
    (each server keeps its own record of the requests)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


class LoopbackServer(ThreadingHTTPServer):
    """Threaded server on 127.0.0.1 (free port) whose :meth:`stop` also cuts open connections."""

    daemon_threads = True
    block_on_close = True

    def __init__(self, handler: Callable[..., BaseRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.base = f"http://127.0.0.1:{self.server_address[1]}"
        self.stopping = threading.Event()  # set by stop(); handlers that sleep wait on it instead
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse-DNS lookup of the host name."""
        TCPServer.server_bind(self)
        self.server_name = "127.0.0.1"
        self.server_port = self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        """Track the connection so :meth:`stop` can unblock its handler."""
        if isinstance(request, socket.socket):
            with self._connections_lock:
                self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        """Forget and close a finished connection."""
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore clients that went away (timeouts, aborted downloads); report anything else."""
        if not self.stopping.is_set() and not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)

    def stop(self) -> None:
        """Stop serving, wake hung handlers, cut open connections and join every handler thread."""
        self.stopping.set()
        self.shutdown()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self.server_close()


@contextmanager
def serving(server: Server, name: str) -> Iterator[Server]:
    """Run `server` in a daemon thread called `name` while the context is open; stop and join it after."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop()
        thread.join()
