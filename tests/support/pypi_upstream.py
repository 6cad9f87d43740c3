"""A local, PyPI-shaped upstream index for end-to-end tests and benchmarks.

Serves an :class:`~tests.support.pypi_model.UpstreamIndex` (the PEP 503/691/700/740 simple API of
:mod:`tests.support.pypi_pages`, plus files and provenance) on 127.0.0.1 with fault-injection knobs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import parse_qs, quote, unquote, urlsplit

from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.support.loopback import LoopbackServer, QuietHandler, serving
from tests.support.pypi_model import UpstreamIndex
from tests.support.pypi_pages import (
    JSON_V1,
    byte_range,
    etag_for,
    etag_matches,
    negotiate,
    render_detail_html,
    render_detail_json,
    render_root,
)
from tests.support.pypi_wheels import tamper

_MALFORMED_JSON = b'{"meta": {"api-version": "1.4"}, "name": "broken", "files": [{"filename": '


# --------------------------------------------------------------------------------------------------
# Faults and request log


@dataclass
class Faults:
    """Fault-injection settings read by the server on every request (project keys are normalized)."""

    status: dict[str, int] = field(default_factory=dict)
    hang: dict[str, float] = field(default_factory=dict)
    malformed: set[str] = field(default_factory=set)
    tampered: dict[str, bytes] = field(default_factory=dict)
    provenance_status: dict[str, int] = field(default_factory=dict)  # by filename

    def clear(self) -> None:
        """Remove every fault."""
        self.status.clear()
        self.hang.clear()
        self.malformed.clear()
        self.tampered.clear()
        self.provenance_status.clear()


@dataclass(frozen=True)
class LoggedRequest:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]


# --------------------------------------------------------------------------------------------------
# HTTP server


class _PageCache:
    """Rendered pages keyed by (project or '', format); dropped when the index generation changes."""

    def __init__(self, index: UpstreamIndex, base: str) -> None:
        self._index = index
        self._base = base
        self._lock = threading.Lock()
        self._generation = -1
        self._pages: dict[tuple[str, bool], tuple[bytes, str]] = {}

    def get(self, project: str, *, as_json: bool) -> tuple[bytes, str]:
        """Return (body, etag) for a project detail page, or the root list when ``project`` is ''."""
        with self._lock:
            generation = self._index.generation
            if generation != self._generation:
                self._pages.clear()
                self._generation = generation
            key = (project, as_json)
            if key not in self._pages:
                body = self._render(project, generation, as_json=as_json)
                self._pages[key] = (body, etag_for(body))
            return self._pages[key]

    def _render(self, project: str, serial: int, *, as_json: bool) -> bytes:
        if not project:
            return render_root(self._index.projects(), serial, as_json=as_json)
        files = self._index.files(project)
        if as_json:
            return render_detail_json(self._base, project, files, serial)
        return render_detail_html(self._base, project, files)


class _UpstreamServer(LoopbackServer):
    """The loopback server of one index, with its fault knobs, request log and page cache."""

    def __init__(self, index: UpstreamIndex) -> None:
        super().__init__(_Handler)
        self.index = index
        self.faults = Faults()
        self.cache_control = "max-age=0, must-revalidate"
        self.requests: list[LoggedRequest] = []
        self.pages = _PageCache(index, self.base)


class _Handler(QuietHandler):
    """Routes ``/simple/``, ``/files/`` and ``/integrity/`` requests."""

    server_version = "gate-test-upstream/1"
    _head = False

    @property
    def upstream(self) -> _UpstreamServer:
        """The server this handler belongs to, with its precise type."""
        assert isinstance(self.server, _UpstreamServer)
        return self.server


    def handle_one_request(self) -> None:
        """Handle one request, treating a vanished client as a closed connection."""
        try:
            super().handle_one_request()
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def do_GET(self) -> None:
        """Serve a GET."""
        self._dispatch(head=False)

    def do_HEAD(self) -> None:
        """Serve a HEAD (headers only)."""
        self._dispatch(head=True)

    def _dispatch(self, *, head: bool) -> None:
        self.upstream.requests.append(LoggedRequest(self.command, self.path, dict(self.headers.items())))
        self._head = head
        url = urlsplit(self.path)
        if url.path == "/simple/":
            self._serve_root(url.query)
        elif url.path.startswith("/simple/"):
            self._serve_project(url.path.removeprefix("/simple/"), url.query)
        elif url.path.startswith("/files/"):
            self._serve_file(unquote(url.path.removeprefix("/files/")))
        elif url.path.startswith("/integrity/"):
            self._serve_provenance(url.path.removeprefix("/integrity/").split("/"))
        else:
            self._send(404, b"not found\n", "text/plain")

    # -- responses ---------------------------------------------------------------------------------

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not self._head:
            self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self._send(301, b"", "text/plain", {"Location": location})

    def _negotiated(self, query: str) -> str | None:
        """Content type from ``?format=`` or the Accept header; None means 406."""
        formats = parse_qs(query.replace("+", "%2B")).get("format")  # a literal "+" is not a space here
        return negotiate(formats[0] if formats else self.headers.get("Accept"))

    def _send_page(self, body: bytes, etag: str, content_type: str) -> None:
        headers = {"ETag": etag, "Vary": "Accept"}
        if self.upstream.cache_control:  # none at all: an upstream that states no freshness
            headers["Cache-Control"] = self.upstream.cache_control
        if etag_matches(self.headers.get("If-None-Match"), etag):
            self.send_response(304)
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            return
        self._send(200, body, content_type, headers)

    # -- routes ------------------------------------------------------------------------------------

    def _serve_root(self, query: str) -> None:
        content_type = self._negotiated(query)
        if content_type is None:
            self._send(406, b"not acceptable\n", "text/plain", {"Vary": "Accept"})
            return
        body, etag = self.upstream.pages.get("", as_json=content_type == JSON_V1)
        self._send_page(body, etag, content_type)

    def _serve_project(self, rest: str, query: str) -> None:
        name, slash, extra = rest.partition("/")
        project = canonicalize_name(unquote(name))
        if extra or not name:
            self._send(404, b"not found\n", "text/plain")
        elif name != project or not slash:
            self._redirect(f"/simple/{project}/" + (f"?{query}" if query else ""))
        elif self._apply_page_faults(project):
            pass
        elif not self.upstream.index.has_project(project):
            self._send(404, b"no such project\n", "text/plain")
        elif (content_type := self._negotiated(query)) is None:
            self._send(406, b"not acceptable\n", "text/plain", {"Vary": "Accept"})
        else:
            body, etag = self.upstream.pages.get(project, as_json=content_type == JSON_V1)
            self._send_page(body, etag, content_type)

    def _apply_page_faults(self, project: str) -> bool:
        """Sleep, fail or garble as configured; True when a response (or none) has been decided."""
        faults = self.upstream.faults
        delay = faults.hang.get(project)
        if delay is not None and self.upstream.stopping.wait(delay):
            self.close_connection = True
            return True
        status = faults.status.get(project)
        if status is not None:
            self._send(status, b"injected failure\n", "text/plain")
            return True
        if project in faults.malformed:
            self._send(200, _MALFORMED_JSON, JSON_V1, {"Vary": "Accept"})
            return True
        return False

    def _serve_file(self, filename: str) -> None:
        file = self.upstream.index.get_file(filename)
        data = self.upstream.faults.tampered.get(filename)
        if data is None and file is not None:
            data = file.read_bytes()
        if data is None:
            self._send(404, b"no such file\n", "text/plain")
            return
        self._send_bytes(data)

    def _send_bytes(self, data: bytes) -> None:
        """Send a file, honouring a single-range ``Range: bytes=...`` header like a CDN does."""
        headers = {"Accept-Ranges": "bytes", "ETag": etag_for(data)}
        header = self.headers.get("Range")
        if header is None:
            self._send(200, data, "application/octet-stream", headers)
            return
        span = byte_range(header, len(data))
        if span is None:
            self._send(416, b"", "text/plain", {**headers, "Content-Range": f"bytes */{len(data)}"})
            return
        start, end = span
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        self._send(206, data[start : end + 1], "application/octet-stream", headers)

    def _serve_provenance(self, parts: list[str]) -> None:
        file = None
        if len(parts) == 4 and parts[3] == "provenance":
            project, version, filename = (unquote(p) for p in parts[:3])
            file = self.upstream.index.get_file(filename)
            if file is not None and (
                file.project != canonicalize_name(project) or Version(file.version) != Version(version)
            ):
                file = None
        if file is None or file.provenance is None:
            self._send(404, b"no provenance\n", "text/plain")
            return
        status = self.upstream.faults.provenance_status.get(file.filename)
        if status is not None:
            self._send(status, b"injected failure\n", "text/plain")
            return
        self._send(200, file.provenance.read_bytes(), "application/json")


# --------------------------------------------------------------------------------------------------
# Public handle on a running server


class RunningUpstream:
    """A started upstream server: its URLs, fault knobs and request log."""

    def __init__(self, server: _UpstreamServer) -> None:
        self._server = server
        self.index = server.index
        self.base = server.base
        self.url = f"{server.base}/simple/"
        self.faults = server.faults

    @property
    def port(self) -> int:
        """The TCP port on 127.0.0.1."""
        return int(self._server.server_address[1])

    @property
    def requests(self) -> list[LoggedRequest]:
        """Every request received so far, in order (live list)."""
        return self._server.requests

    @property
    def request_log(self) -> list[str]:
        """Paths (with query) of every request received so far."""
        return [r.path for r in self._server.requests]

    def clear_log(self) -> None:
        """Forget the requests received so far."""
        self._server.requests.clear()

    def project_url(self, project: str) -> str:
        """URL of a project's detail page (normalized)."""
        return f"{self.url}{canonicalize_name(project)}/"

    def file_url(self, filename: str) -> str:
        """URL of a file's bytes."""
        return f"{self.base}/files/{quote(filename)}"

    def fail_project(self, project: str, status: int = 500) -> None:
        """Make ``/simple/<project>/`` answer ``status``."""
        self.faults.status[canonicalize_name(project)] = status

    def hang_project(self, project: str, seconds: float) -> None:
        """Make ``/simple/<project>/`` sleep ``seconds`` before answering (cut short by shutdown)."""
        self.faults.hang[canonicalize_name(project)] = seconds

    def fail_provenance(self, filename: str, status: int = 500) -> None:
        """Make the provenance URL of ``filename`` answer ``status``."""
        self.faults.provenance_status[filename] = status

    def malform_project(self, project: str) -> None:
        """Make ``/simple/<project>/`` answer 200 with truncated JSON."""
        self.faults.malformed.add(canonicalize_name(project))

    def tamper_file(self, filename: str, body: bytes | None = None) -> bytes:
        """Serve ``body`` for ``filename`` instead of its bytes (default: :func:`tamper` of them)."""
        if body is None:
            file = self.index.get_file(filename)
            original = file.read_bytes() if file is not None else None
            if original is None:
                raise KeyError(f"no bytes to tamper with for {filename}")
            body = tamper(original)
        self.faults.tampered[filename] = body
        return body

    def set_cache_control(self, value: str) -> None:
        """Send ``value`` as the pages' ``Cache-Control`` (default ``max-age=0, must-revalidate``; empty: none)."""
        self._server.cache_control = value

    def clear_faults(self) -> None:
        """Remove every injected fault."""
        self.faults.clear()


@contextmanager
def serve(index: UpstreamIndex) -> Iterator[RunningUpstream]:
    """Serve ``index`` on 127.0.0.1 (free port) in a thread; stopped and joined on exit."""
    with serving(_UpstreamServer(index), "upstream-pypi") as server:
        yield RunningUpstream(server)
