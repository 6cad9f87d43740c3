"""A scripted upstream on loopback, for the tests of how gate copes with a hostile or broken one: every path
answers a declared `Reply`, however badly (slow drips of the body or of the status line, gzip whatever the
client accepts, no length, a connection reset mid-body, an endless body, redirects, a different answer each
time), optionally behind basic auth, and every request is kept with its headers.

    with scripted_upstream() as bad:
        bad.page("demo", [row(bad.base, "demo-1.0-py3-none-any.whl", data)])  # a PEP 691 page
        bad.route("/files/demo-1.0-py3-none-any.whl", Reply(body=data, reset_after=1000))
        bad.route("/slow", Reply(body=b"x" * 100, drip=1.0))         # one byte a second
        bad.route("/away", Reply(status=302, headers={"Location": "http://127.0.0.1:1/"}))
        bad.route("/flaky", sequence(Reply(500), Reply(body=b"ok")))  # each request the next reply
        bad.require_auth("user", "secret")                            # 401 without these credentials
        bad.requests                                                  # [(path, headers), ...]

A path without a route answers 404. `Reply.gzip` sends the body gzip-compressed (`Content-Encoding`).
"""

from __future__ import annotations

import base64
import gzip
import json
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from tests.support.loopback import LoopbackServer, QuietHandler, serving
from tests.support.scripted_pages import JSON_V1


@dataclass(frozen=True)
class Reply:
    """What a route answers: `status`, `headers`, `body` (gzip-compressed on the wire when `gzip`; sent
    `repeat` times), sent `piece` bytes (default one) each `drip` seconds when given (headers first, at once;
    `drip_headers`: the status line too), or cut by a TCP reset after its first `reset_after` bytes. A
    header given an empty value is not sent (`Content-Length`, say: the body then ends when the connection
    closes)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drip: float | None = None
    drip_headers: bool = False
    piece: int = 1
    gzip: bool = False
    repeat: int = 1
    reset_after: int | None = None


Route = Reply | Callable[[str], Reply]  # a reply, or a function of the request path (query included)


def sequence(*replies: Reply) -> Route:
    """Each request gets the next reply; the last one repeats."""
    remaining = list(replies)
    lock = threading.Lock()

    def reply(path: str) -> Reply:
        with lock:
            return remaining.pop(0) if len(remaining) > 1 else remaining[0]

    return reply


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

    def page(self, project: str, rows: list[dict[str, Any]]) -> None:
        """Serve a PEP 691 page of `rows` at `/simple/<project>/`."""
        body = json.dumps({"meta": {"api-version": "1.1"}, "name": project, "files": rows}).encode()
        self.route(f"/simple/{project}/", Reply(body=body, headers={"Content-Type": JSON_V1}))

    def asked(self, path: str) -> int:
        """How many requests asked for `path` (query included)."""
        with self.lock:
            return [p for p, _ in self.requests].count(path)


class _Handler(QuietHandler):
    @property
    def scripted(self) -> ScriptedServer:
        assert isinstance(self.server, ScriptedServer)
        return self.server


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
        headers = {"Content-Type": "text/plain", "Content-Length": str(len(body) * reply.repeat),
                   "Connection": "close", **reply.headers}
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
            if reply.reset_after is not None:
                self._reset(body[: reply.reset_after])
            elif reply.drip is not None:
                self._drip(body, reply.drip, reply.piece)
            else:
                for _ in range(reply.repeat):
                    self.wfile.write(body)
        except (ConnectionError, TimeoutError):
            pass
        self.close_connection = True

    def _reset(self, data: bytes) -> None:
        """Send `data`, then reset the connection (TCP RST, not an orderly close)."""
        self.wfile.write(data)
        self.wfile.flush()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()

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
