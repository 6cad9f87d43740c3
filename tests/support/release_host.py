"""A loopback stand-in for GitHub's release download host (a fake: github.com cannot be reached here):
`GET /<owner>/<repo>/releases/download/<tag>/<asset>` serves the assets it was given (real evidence files
from the fixtures), 404 for others; it can redirect every request elsewhere, and logs the paths asked for."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.support.loopback import LoopbackServer, QuietHandler, serving


@dataclass
class ReleaseHost:
    assets: dict[str, bytes] = field(default_factory=dict)  # path -> bytes
    redirect_to: str | None = None
    requests: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, repository: str, tag: str, asset: str, data: bytes) -> None:
        self.assets[f"/{repository}/releases/download/{tag}/{asset}"] = data


class _Handler(QuietHandler):
    server: _Server

    def do_GET(self) -> None:
        host = self.server.host
        with host.lock:
            host.requests.append(self.path)
        if host.redirect_to is not None:
            self.send_response(302)
            self.send_header("Location", host.redirect_to + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = host.assets.get(self.path)
        self.send_response(200 if data is not None else 404)
        body = data if data is not None else b"Not Found"
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(LoopbackServer):
    def __init__(self, host: ReleaseHost) -> None:
        super().__init__(_Handler)
        self.host = host


@contextmanager
def release_host(host: ReleaseHost) -> Iterator[_Server]:
    with serving(_Server(host), "release-host") as server:
        yield server
