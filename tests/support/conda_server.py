"""Serve a local conda channel directory on loopback (built with :mod:`tests.support.conda_channel`), with a
request log, paths that answer 404 or 500 on demand, and the validators rattler's cache needs.

API::

    serve_channel(channel_dir, *, request_log=None, not_found=()) -> ContextManager[str]   # base URL
    ChannelServer(channel_dir, *, not_found=(), request_log=None)   # .url .requests .paths() .not_found .failing

Conditional requests: with a warm cache rattler sends ``If-None-Match``/``If-Modified-Since``. For the shard
index a 304 must repeat the cached 200's validator (``ETag`` or ``Last-Modified``): the bare 304 of
``http.server.SimpleHTTPRequestHandler`` makes rattler fail with "received unexpected status code (304 Not
Modified)" (the plain-repodata path copes). This server sends a strong ``ETag`` (sha256 of the file), answers
``If-None-Match`` with 304 + validators and ignores ``If-Modified-Since`` (1 s resolution would report a file
rewritten within the same second as unchanged).
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import threading
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

from tests.support.loopback import LoopbackServer, serving
from tests.support.pypi_pages import etag_matches

__all__ = ["ChannelServer", "ServedRequest", "serve_channel"]


@dataclass(frozen=True)
class ServedRequest:
    """One request the channel server answered."""

    method: str
    path: str
    status: int


class _ChannelHandler(SimpleHTTPRequestHandler):
    """Static file handler that records requests and can pretend files are missing."""

    server: _ChannelHTTPServer

    def send_head(self) -> BinaryIO | None:
        """Serve a file with a strong ETag, answering If-None-Match with 304, hidden paths with 404 and
        failing ones with 500."""
        if self.server.owner.hidden(self._url_path()):
            self.send_error(404, "hidden by test")
            return None
        if self.server.owner.failed(self._url_path()):
            self.send_error(500, "failure injected by test")
            return None
        file = Path(self.translate_path(self.path))
        if not file.is_file():
            return super().send_head()  # directories and plain 404s
        data = file.read_bytes()
        etag = f'"{hashlib.sha256(data).hexdigest()}"'
        if etag_matches(self.headers.get("If-None-Match"), etag):
            self._send_status(304, etag, file)
            return None
        self._send_status(200, etag, file)
        return io.BytesIO(data)

    def _send_status(self, status: int, etag: str, file: Path) -> None:
        """Send the status line and the headers of a file response (body follows for 200)."""
        self.send_response(status)
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", self.date_time_string(int(file.stat().st_mtime)))
        if self.server.owner.cache_control:
            self.send_header("Cache-Control", self.server.owner.cache_control)
        if status == 200:
            self.send_header("Content-Type", self.guess_type(str(file)))
            self.send_header("Content-Length", str(file.stat().st_size))
        self.end_headers()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Record the request instead of printing it."""
        status = int(code) if isinstance(code, int) or code.isdigit() else 0
        self.server.owner.record(ServedRequest(self.command, self._url_path(), status))

    def log_message(self, format: str, *args: Any) -> None:
        """Stay silent; the request log is the record."""

    def _url_path(self) -> str:
        """Return the decoded path of the request URL without query string."""
        return unquote(urlsplit(self.path).path)


class _ChannelHTTPServer(LoopbackServer):
    """Loopback server carrying the owning ChannelServer."""

    def __init__(self, owner: ChannelServer) -> None:
        self.owner = owner
        super().__init__(self._handler)

    def _handler(self, *args: Any) -> _ChannelHandler:
        """Create a request handler rooted at the channel directory."""
        return _ChannelHandler(*args, directory=str(self.owner.channel_dir))


class ChannelServer:
    """Context manager serving a channel directory on 127.0.0.1 from a background thread."""

    def __init__(
        self,
        channel_dir: Path,
        *,
        not_found: Iterable[str] = (),
        request_log: list[ServedRequest] | None = None,
    ) -> None:
        """Configure; not_found: fnmatch patterns of URL paths to answer 404; requests go to request_log."""
        self.channel_dir = channel_dir
        self.not_found = set(not_found)  # live: tests may change it while serving
        self.failing: set[str] = set()  # fnmatch patterns of URL paths to answer 500 (live too)
        self.cache_control: str | None = None  # sent with every file when set (live too)
        self.url = ""  # set on __enter__
        self._log: list[ServedRequest] = [] if request_log is None else request_log
        self._lock = threading.Lock()
        self._running = ExitStack()

    @property
    def requests(self) -> list[ServedRequest]:
        """Return a snapshot of the requests served so far."""
        with self._lock:
            return list(self._log)

    def paths(self, method: str = "GET") -> list[str]:
        """Return the URL paths requested with the given method, in order."""
        return [r.path for r in self.requests if r.method == method]

    def hidden(self, path: str) -> bool:
        """Tell whether a URL path matches one of the not-found patterns."""
        return any(fnmatch.fnmatchcase(path, pattern) for pattern in self.not_found)

    def failed(self, path: str) -> bool:
        """Tell whether a URL path matches one of the failing patterns."""
        return any(fnmatch.fnmatchcase(path, pattern) for pattern in self.failing)

    def record(self, request: ServedRequest) -> None:
        """Append a request to the log (called from handler threads)."""
        with self._lock:
            self._log.append(request)

    def __enter__(self) -> ChannelServer:
        """Bind a free port and start serving."""
        self.url = self._running.enter_context(serving(_ChannelHTTPServer(self), "conda-channel")).base
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop serving (cutting open connections) and close the listening socket."""
        self._running.close()


@contextmanager
def serve_channel(
    channel_dir: Path, *, request_log: list[ServedRequest] | None = None, not_found: Iterable[str] = ()
) -> Iterator[str]:
    """Serve channel_dir on a free loopback port and yield its base URL; log requests to request_log."""
    with ChannelServer(channel_dir, not_found=not_found, request_log=request_log) as server:
        yield server.url
