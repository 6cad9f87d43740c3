"""A scripted upstream on loopback: every path answers a declared `Reply`, however badly (slow drips of the
body or of the status line, gzip, redirects), optionally behind basic auth, and every request is kept with
its headers. (`hostile_upstream` scripts answers at the handler level instead: resets, bodies without a
length, sequences.)

    with scripted_upstream() as bad:
        bad.route("/simple/demo/", Reply(body=page, headers={"Content-Type": JSON_V1}))
        bad.route("/slow", Reply(body=b"x" * 100, drip=1.0))         # one byte a second
        bad.route("/away", Reply(status=302, headers={"Location": "http://127.0.0.1:1/"}))
        bad.require_auth("user", "secret")                            # 401 without these credentials
        bad.requests                                                  # [(path, headers), ...]

A path without a route answers 404. `Reply.gzip` sends the body gzip-compressed (`Content-Encoding`).
"""

from __future__ import annotations

import base64
import gzip
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from tests.support.loopback import LoopbackServer, serving


@dataclass(frozen=True)
class Reply:
    """What a route answers: `status`, `headers`, `body` (gzip-compressed on the wire when `gzip`), sent
    `piece` bytes (default one) each `drip` seconds when given (headers first, at once; `drip_headers`: the
    status line too). A header given an empty value is not sent (`Content-Length`, say)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drip: float | None = None
    drip_headers: bool = False
    piece: int = 1
    gzip: bool = False


Route = Reply | Callable[[str], Reply]  # a reply, or a function of the request path (query included)


class ScriptedServer(LoopbackServer):
    def __init__(self) -> None:
        super().__init__(_Handler)
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.auth: str | None = None
        self.lock = threading.Lock()

    def route(self, path: str, reply: Route) -> None:
        """Answer `path` (without query) with `reply`."""
        self.routes[path] = reply

    def require_auth(self, user: str, password: str) -> None:
        """Answer 401 to any request without these basic-auth credentials."""
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def url(self, path: str) -> str:
        return self.base + path


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    @property
    def scripted(self) -> ScriptedServer:
        assert isinstance(self.server, ScriptedServer)
        return self.server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        server = self.scripted
        with server.lock:
            server.requests.append((self.path, dict(self.headers.items())))
        if server.auth is not None and self.headers.get("Authorization") != server.auth:
            self._send(Reply(401, b"who are you?\n", {"WWW-Authenticate": 'Basic realm="x"'}))
            return
        route = server.routes.get(urlsplit(self.path).path)
        if route is None:
            self._send(Reply(404, b"not found\n"))
            return
        self._send(route(self.path) if callable(route) else route)

    def _send(self, reply: Reply) -> None:
        body = gzip.compress(reply.body) if reply.gzip else reply.body
        headers = {"Content-Type": "text/plain", "Content-Length": str(len(body)), "Connection": "close",
                   **reply.headers}
        if reply.gzip:
            headers["Content-Encoding"] = "gzip"
        headers = {k: v for k, v in headers.items() if v}  # an empty value leaves a header out
        head = f"HTTP/1.1 {reply.status} X\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        try:
            if reply.drip_headers:
                self._drip(head.encode(), reply.drip or 1.0, 1)
            else:
                self.wfile.write(head.encode())
                self.wfile.flush()
            if reply.drip is None:
                self.wfile.write(body)
            else:
                self._drip(body, reply.drip, reply.piece)
        except (ConnectionError, TimeoutError):
            pass
        self.close_connection = True

    def _drip(self, data: bytes, pause: float, piece: int) -> None:
        for i in range(0, len(data), piece):
            self.wfile.write(data[i : i + piece])
            self.wfile.flush()
            if self.scripted.stopping.wait(pause):
                return


@contextmanager
def scripted_upstream() -> Iterator[ScriptedServer]:
    """A scripted upstream on a free 127.0.0.1 port, stopped (hung replies cut) on exit."""
    with serving(ScriptedServer(), "scripted-upstream") as server:
        yield server
