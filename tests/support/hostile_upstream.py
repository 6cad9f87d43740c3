"""A hostile PyPI-style upstream on loopback: each path answers however a test scripts it (wrong bytes,
gzip-encoded files, a body without any length, a connection reset mid-body, one filename listed twice,
provenance that is broken the first time), for the proxy's fault-handling tests.

    with hostile() as up:
        up.page("demo", [row(up, "demo-1.0-py3-none-any.whl", data, size=None)])
        up.routes["/files/demo-1.0-py3-none-any.whl"] = gzip_encoded(data)
"""

from __future__ import annotations

import gzip
import hashlib
import json
import socket
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.loopback import LoopbackServer, serving

JSON_V1 = "application/vnd.pypi.simple.v1+json"
OLD = "2020-01-01T00:00:00Z"
Answer = Callable[[BaseHTTPRequestHandler], None]


def send(handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
    """A complete answer with a Content-Length."""
    handler.send_response(status)
    for key, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(body)


def plain(body: bytes, content_type: str = "application/octet-stream") -> Answer:
    return lambda handler: send(handler, 200, body, {"Content-Type": content_type})


def gzip_encoded(data: bytes) -> Answer:
    """`data` sent with `Content-Encoding: gzip` whatever the client accepts (Content-Length: compressed)."""
    packed = gzip.compress(data)
    return lambda handler: send(handler, 200, packed, {"Content-Encoding": "gzip"})


def unsized(data: bytes) -> Answer:
    """`data` with no Content-Length, ended by closing the connection (HTTP/1.0 style)."""

    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Connection", "close")
        handler.end_headers()
        for start in range(0, len(data), 1 << 16):
            handler.wfile.write(data[start : start + (1 << 16)])
        handler.close_connection = True

    return answer


def reset_after(data: bytes, sent: int) -> Answer:
    """Announce `len(data)` bytes, send the first `sent`, then reset the connection (TCP RST)."""

    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data[:sent])
        handler.wfile.flush()
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        handler.connection.close()
        handler.close_connection = True

    return answer


def sequence(*answers: Answer) -> Answer:
    """Each request gets the next answer; the last one repeats."""
    remaining = list(answers)

    def answer(handler: BaseHTTPRequestHandler) -> None:
        (remaining.pop(0) if len(remaining) > 1 else remaining[0])(handler)

    return answer


class HostileServer(LoopbackServer):
    def __init__(self) -> None:
        super().__init__(_Handler)
        self.routes: dict[str, Answer] = {}
        self.log: list[str] = []
        self.url = f"{self.base}/simple/"

    def page(self, project: str, rows: list[dict[str, Any]]) -> None:
        """Serve a PEP 691 page of `rows` at `/simple/<project>/`."""
        body = json.dumps({"meta": {"api-version": "1.1"}, "name": project, "files": rows}).encode()
        self.routes[f"/simple/{project}/"] = plain(body, JSON_V1)

    def asked(self, path: str) -> int:
        return self.log.count(path)


def row(server: HostileServer, filename: str, data: bytes, *, size: int | None = None, **extra: Any) -> dict[str, Any]:
    """A page row for `filename` served at `/files/<filename>` (not routed: the test decides how), its
    sha256 that of `data`, uploaded long ago."""
    out = {"filename": filename, "url": f"{server.base}/files/{filename}",
           "hashes": {"sha256": hashlib.sha256(data).hexdigest()}, "upload-time": OLD, **extra}
    if size is not None:
        out["size"] = size
    return out


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        server = self.server
        assert isinstance(server, HostileServer)
        server.log.append(self.path)
        answer = server.routes.get(self.path)
        if answer is None:
            send(self, 404, b"not found\n")
        else:
            answer(self)


@contextmanager
def hostile() -> Iterator[HostileServer]:
    with serving(HostileServer(), "hostile-upstream") as server:
        yield server
