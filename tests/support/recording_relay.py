"""A loopback HTTP relay that forwards GET and HEAD to another server and records each request's status.

    with RecordingRelay("http://127.0.0.1:8080") as relay:   # relay.url: the address to give the client
        ...
        relay.requests   # [RelayedRequest(method, path, status), ...] in the order answered

Bodies and headers pass unchanged (a compressed body stays compressed); hop-by-hop headers are dropped.
"""

from __future__ import annotations

import threading
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import Any

import requests

from tests.support.loopback import LoopbackServer, QuietHandler, serving

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host", "content-length"}


@dataclass(frozen=True)
class RelayedRequest:
    method: str
    path: str
    status: int


class _RelayHandler(QuietHandler):
    def __init__(self, relay: RecordingRelay, *args: Any) -> None:
        self.relay = relay
        super().__init__(*args)

    def do_GET(self) -> None:
        self._relay()

    def do_HEAD(self) -> None:
        self._relay()

    def _relay(self) -> None:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        with requests.request(
            self.command, self.relay.target + self.path, headers=headers, stream=True, allow_redirects=False,
            timeout=30,
        ) as response:
            body = b"" if self.command == "HEAD" else response.raw.read(decode_content=False)
            self.send_response(response.status_code)
            for key, value in response.headers.items():
                if key.lower() not in _HOP_BY_HOP:
                    self.send_header(key, value)
            length = response.headers.get("Content-Length") if self.command == "HEAD" else str(len(body))
            if length is not None:
                self.send_header("Content-Length", length)
            self.end_headers()
            self.wfile.write(body)
        self.relay.record(RelayedRequest(self.command, self.path.split("?")[0], response.status_code))


class RecordingRelay:
    """Serves on a free 127.0.0.1 port from a background thread while the context is open."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.url = ""  # set on __enter__
        self._log: list[RelayedRequest] = []
        self._lock = threading.Lock()
        self._running = ExitStack()

    @property
    def requests(self) -> list[RelayedRequest]:
        with self._lock:
            return list(self._log)

    def record(self, request: RelayedRequest) -> None:
        with self._lock:
            self._log.append(request)

    def __enter__(self) -> RecordingRelay:
        server = LoopbackServer(partial(_RelayHandler, self))
        self.url = self._running.enter_context(serving(server, "recording-relay")).base
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._running.close()
