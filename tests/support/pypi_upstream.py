"""A local, PyPI-shaped upstream index for end-to-end tests and benchmarks.

Builds real minimal wheels, loads the ``mini-pypi`` fixture, and serves the PEP 503/691/700/740
simple API plus files and provenance on 127.0.0.1 with fault-injection knobs.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import html
import io
import json
import threading
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version
from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

from tests.support.loopback import LoopbackServer, QuietHandler, serving

API_VERSION = "1.4"
JSON_V1 = "application/vnd.pypi.simple.v1+json"
JSON_LATEST = "application/vnd.pypi.simple.latest+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"

# (media type a client may ask for, media type we answer with); ties go to the earlier entry.
_OFFERS: tuple[tuple[str, str], ...] = (
    (TEXT_HTML, TEXT_HTML),
    (HTML_V1, HTML_V1),
    (JSON_V1, JSON_V1),
    (JSON_LATEST, JSON_V1),
)
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_MALFORMED_JSON = b'{"meta": {"api-version": "1.4"}, "name": "broken", "files": [{"filename": '


# --------------------------------------------------------------------------------------------------
# Wheels


def dist_name(name: str) -> str:
    """Return the filename/module form of a project name (``Foo.Bar-baz`` -> ``foo_bar_baz``)."""
    return canonicalize_name(name).replace("-", "_")


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode("ascii")


def _wheel_metadata(name: str, version: str, requires_python: str | None) -> bytes:
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}", "Summary: gate test package"]
    if requires_python is not None:
        lines.append(f"Requires-Python: {requires_python}")
    return ("\n".join(lines) + "\n\n").encode()


def _wheel_members(name: str, version: str, requires_python: str | None) -> dict[str, bytes]:
    """Return every archive member of the wheel, RECORD last."""
    module = dist_name(name)
    info = f"{module}-{version}.dist-info"
    members = {
        f"{module}.py": f'"""Test module {name} {version}."""\n\n__version__ = "{version}"\n'.encode(),
        f"{info}/METADATA": _wheel_metadata(name, version, requires_python),
        f"{info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: gate-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    rows = [f"{path},{_record_hash(data)},{len(data)}" for path, data in members.items()]
    members[f"{info}/RECORD"] = ("\n".join([*rows, f"{info}/RECORD,,"]) + "\n").encode()
    return members


def build_wheel(dest_dir: Path, name: str, version: str, *, requires_python: str | None = None) -> Path:
    """Write a minimal installable pure-Python ``py3-none-any`` wheel; same inputs give the same bytes."""
    version = str(Version(version))
    dest_dir.mkdir(parents=True, exist_ok=True)
    path = dest_dir / f"{dist_name(name)}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in _wheel_members(name, version, requires_python).items():
            info = zipfile.ZipInfo(member, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return path


# --------------------------------------------------------------------------------------------------
# The index model


@dataclass(frozen=True)
class UpstreamFile:
    """One distribution file as the upstream index advertises it."""

    filename: str
    project: str
    version: str
    path: Path | None
    sha256: str
    size: int
    upload_time: datetime | None = None
    yanked: bool | str = False
    requires_python: str | None = None
    provenance: Path | None = None
    content: bytes | None = field(default=None, repr=False)
    """In-memory bytes (synthetic files); used instead of ``path`` when set."""

    def read_bytes(self) -> bytes | None:
        """Return the file's bytes, or None when nothing is on disk for it."""
        if self.content is not None:
            return self.content
        if self.path is not None and self.path.is_file():
            return self.path.read_bytes()
        return None


def parse_filename(filename: str) -> tuple[str, str]:
    """Return (normalized project, version) parsed from a wheel or sdist filename."""
    try:
        if filename.endswith(".whl"):
            name, version, _, _ = parse_wheel_filename(filename)
        else:
            name, version = parse_sdist_filename(filename)
    except (InvalidWheelFilename, InvalidSdistFilename) as exc:
        raise ValueError(f"not a distribution filename: {filename}") from exc
    return str(name), str(version)


class UpstreamIndex:
    """Projects and their files; thread-safe, with a generation counter bumped on every change."""

    def __init__(self, work_dir: Path | None = None) -> None:
        self.work_dir = work_dir
        self._lock = threading.Lock()
        self._projects: dict[str, dict[str, UpstreamFile]] = {}
        self._by_filename: dict[str, UpstreamFile] = {}
        self._generation = 0

    @property
    def generation(self) -> int:
        """A counter that changes whenever the index content changes."""
        return self._generation

    def add(self, file: UpstreamFile) -> UpstreamFile:
        """Register one file, or replace the one with the same filename (keeping its position)."""
        with self._lock:
            old = self._by_filename.get(file.filename)
            if old is not None and old.project != file.project:
                self._projects[old.project].pop(old.filename, None)
            self._projects.setdefault(file.project, {})[file.filename] = file
            self._by_filename[file.filename] = file
            self._generation += 1
        return file

    def add_file(
        self,
        path: Path,
        *,
        upload_time: datetime | None = None,
        yanked: bool | str = False,
        requires_python: str | None = None,
        provenance: Path | None = None,
    ) -> UpstreamFile:
        """Register a distribution file on disk; project and version come from its filename."""
        data = path.read_bytes()
        project, version = parse_filename(path.name)
        return self.add(
            UpstreamFile(
                filename=path.name,
                project=project,
                version=version,
                path=path,
                sha256=hashlib.sha256(data).hexdigest(),
                size=len(data),
                upload_time=upload_time,
                yanked=yanked,
                requires_python=requires_python,
                provenance=provenance,
            )
        )

    def add_wheel(
        self,
        name: str,
        version: str,
        *,
        upload_time: datetime | None = None,
        yanked: bool | str = False,
        requires_python: str | None = None,
        provenance: Path | None = None,
    ) -> UpstreamFile:
        """Build a real wheel under ``work_dir`` with :func:`build_wheel` and register it."""
        if self.work_dir is None:
            raise ValueError("UpstreamIndex(work_dir=...) is needed to build wheels")
        path = build_wheel(self.work_dir / "files", name, version, requires_python=requires_python)
        return self.add_file(
            path,
            upload_time=upload_time,
            yanked=yanked,
            requires_python=requires_python,
            provenance=provenance,
        )

    def set_yanked(self, project: str, version: str, yanked: bool | str = True) -> None:
        """Yank (or with ``False`` un-yank) every file of one release, as Warehouse does."""
        project = canonicalize_name(project)
        wanted = Version(version)
        for file in self.files(project):
            if Version(file.version) == wanted:
                self.add(dataclasses.replace(file, yanked=yanked))

    def projects(self) -> list[str]:
        """Return the normalized project names, sorted."""
        with self._lock:
            return sorted(self._projects)

    def has_project(self, project: str) -> bool:
        """Whether ``project`` (any spelling) is known."""
        return canonicalize_name(project) in self._projects

    def files(self, project: str) -> list[UpstreamFile]:
        """Return a snapshot of one project's files (empty if unknown)."""
        with self._lock:
            return list(self._projects.get(canonicalize_name(project), {}).values())

    def get_file(self, filename: str) -> UpstreamFile | None:
        """Look a file up by its exact filename."""
        return self._by_filename.get(filename)

    @classmethod
    def from_mini_pypi(
        cls,
        fixtures_dir: Path,
        *,
        work_dir: Path | None = None,
        include_missing: bool = False,
    ) -> UpstreamIndex:
        """Load the ``mini-pypi`` fixture (``fixtures_dir`` may be it, ``index/`` or the fixtures root).

        Rows whose bytes are not in ``files/`` are skipped unless ``include_missing`` (then they 404).
        """
        root = _locate_mini_pypi(fixtures_dir)
        index = cls(work_dir)
        for page in sorted((root / "simple").glob("*/index.json")):
            detail = json.loads(page.read_text())
            project = canonicalize_name(detail["name"])
            for row in detail["files"]:
                file = _file_from_row(root, project, row)
                if include_missing or file.read_bytes() is not None:
                    index.add(file)
        return index


def _locate_mini_pypi(fixtures_dir: Path) -> Path:
    for candidate in (fixtures_dir, fixtures_dir / "mini-pypi", fixtures_dir / "index" / "mini-pypi"):
        if (candidate / "simple").is_dir() and (candidate / "files").is_dir():
            return candidate
    raise FileNotFoundError(f"no mini-pypi fixture under {fixtures_dir}")


def _file_from_row(root: Path, project: str, row: dict[str, Any]) -> UpstreamFile:
    """Turn one PEP 691 file row of the fixture into an UpstreamFile backed by local paths."""
    filename: str = row["filename"]
    _, version = parse_filename(filename)
    provenance = root / "integrity" / project / version / filename / "provenance"
    upload_time = row.get("upload-time")
    return UpstreamFile(
        filename=filename,
        project=project,
        version=version,
        path=root / "files" / filename,
        sha256=row["hashes"]["sha256"],
        size=int(row["size"]),
        upload_time=datetime.fromisoformat(upload_time) if upload_time else None,
        yanked=row.get("yanked", False),
        requires_python=row.get("requires-python"),
        provenance=provenance if row.get("provenance") and provenance.is_file() else None,
    )


# --------------------------------------------------------------------------------------------------
# Synthetic projects (benchmarks)


def _synthetic_tags() -> Iterator[str]:
    yield "py3-none-any"
    platforms = ("manylinux_2_17_x86_64.manylinux2014_x86_64", "macosx_11_0_arm64", "win_amd64")
    minor = 8
    while True:
        for platform in platforms:
            yield f"cp3{minor}-cp3{minor}-{platform}"
        minor += 1


def _synthetic_filenames(dist: str, version: str, count: int) -> list[str]:
    names = [f"{dist}-{version}.tar.gz"]
    tags = _synthetic_tags()
    names.extend(f"{dist}-{version}-{next(tags)}.whl" for _ in range(count - 1))
    return names[:count]


def synthetic_project(
    index: UpstreamIndex,
    name: str,
    *,
    versions: int = 1000,
    files_per_version: int = 4,
    start: datetime = datetime(2020, 1, 1, tzinfo=UTC),
    step: timedelta = timedelta(days=1),
) -> list[UpstreamFile]:
    """Register ``versions`` x ``files_per_version`` small in-memory files for page benchmarks.

    Versions are ``1.<i>.0`` uploaded at ``start + i * step``; no file has provenance.
    """
    project, dist = canonicalize_name(name), dist_name(name)
    added: list[UpstreamFile] = []
    for i in range(versions):
        version = f"1.{i}.0"
        for filename in _synthetic_filenames(dist, version, files_per_version):
            content = f"synthetic {filename}\n".encode()
            added.append(
                UpstreamFile(
                    filename=filename,
                    project=project,
                    version=version,
                    path=None,
                    sha256=hashlib.sha256(content).hexdigest(),
                    size=len(content),
                    upload_time=start + i * step,
                    requires_python=">=3.8",
                    content=content,
                )
            )
    for file in added:
        index.add(file)
    return added


# --------------------------------------------------------------------------------------------------
# Rendering


def iso_z(moment: datetime) -> str:
    """Format like Warehouse: UTC ISO 8601 with a ``Z`` (naive datetimes are taken as UTC)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat() + "Z"


def file_url(base: str, file: UpstreamFile) -> str:
    """Absolute URL of a file's bytes on the server at ``base``."""
    return f"{base}/files/{quote(file.filename)}"


def provenance_url(base: str, file: UpstreamFile) -> str | None:
    """Absolute Integrity API URL of a file's provenance, or None when it has none."""
    if file.provenance is None:
        return None
    return f"{base}/integrity/{file.project}/{quote(file.version)}/{quote(file.filename)}/provenance"


def _sorted_files(files: Iterable[UpstreamFile]) -> list[UpstreamFile]:
    versions: dict[str, Version] = {}
    for file in files:
        versions.setdefault(file.version, Version(file.version))
    return sorted(files, key=lambda f: (versions[f.version], f.filename))


def _json_row(base: str, file: UpstreamFile) -> dict[str, Any]:
    row: dict[str, Any] = {
        "filename": file.filename,
        "url": file_url(base, file),
        "hashes": {"sha256": file.sha256},
        "requires-python": file.requires_python,
        "size": file.size,
        "yanked": file.yanked,
        "data-dist-info-metadata": False,
        "core-metadata": False,
        "provenance": provenance_url(base, file),
    }
    if file.upload_time is not None:
        row["upload-time"] = iso_z(file.upload_time)
    return row


def render_detail_json(base: str, project: str, files: list[UpstreamFile], serial: int) -> bytes:
    """PEP 691 (api-version 1.4) project detail page."""
    ordered = _sorted_files(files)
    page = {
        "meta": {"api-version": API_VERSION, "_last-serial": serial},
        "name": project,
        "project-status": {"status": "active"},
        "versions": list(dict.fromkeys(f.version for f in ordered)),
        "files": [_json_row(base, f) for f in ordered],
    }
    return json.dumps(page).encode()


def _html_anchor(base: str, file: UpstreamFile) -> str:
    attrs = [f'href="{html.escape(file_url(base, file))}#sha256={file.sha256}"']
    if file.requires_python is not None:
        attrs.append(f'data-requires-python="{html.escape(file.requires_python)}"')
    if file.yanked is not False:
        reason = "" if file.yanked is True else str(file.yanked)
        attrs.append(f'data-yanked="{html.escape(reason)}"')
    prov = provenance_url(base, file)
    if prov is not None:
        attrs.append(f'data-provenance="{html.escape(prov)}"')
    return f"    <a {' '.join(attrs)}>{html.escape(file.filename)}</a><br />"


def _html_page(title: str, lines: Iterable[str]) -> bytes:
    head = [
        "<!DOCTYPE html>",
        "<html>",
        "  <head>",
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">',
        f"    <title>{html.escape(title)}</title>",
        "  </head>",
        "  <body>",
        f"    <h1>{html.escape(title)}</h1>",
    ]
    return ("\n".join([*head, *lines, "  </body>", "</html>"]) + "\n").encode()


def render_detail_html(base: str, project: str, files: list[UpstreamFile]) -> bytes:
    """PEP 503 project detail page with PEP 592/740 data attributes."""
    return _html_page(f"Links for {project}", (_html_anchor(base, f) for f in _sorted_files(files)))


def render_root(projects: list[str], serial: int, *, as_json: bool) -> bytes:
    """The ``/simple/`` project list in either format."""
    if as_json:
        meta = {"api-version": API_VERSION, "_last-serial": serial}
        return json.dumps({"meta": meta, "projects": [{"name": p} for p in projects]}).encode()
    links = (f'    <a href="/simple/{p}/">{html.escape(p)}</a><br />' for p in projects)
    return _html_page("Simple index", links)


# --------------------------------------------------------------------------------------------------
# Content negotiation and caching helpers


def negotiate(accept: str | None) -> str | None:
    """Pick the response content type for an Accept header; None means 406 (ties: HTML first)."""
    if not accept:
        return TEXT_HTML
    best = parse_accept_header(accept, MIMEAccept).best_match([offer for offer, _ in _OFFERS])
    return None if best is None else dict(_OFFERS)[best]


def etag_for(body: bytes) -> str:
    """A strong ETag derived from the body."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an If-None-Match header matches ``etag`` (weak comparison, ``*`` allowed)."""
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


def byte_range(header: str, size: int) -> tuple[int, int] | None:
    """Inclusive (start, end) of a single ``bytes=`` range within ``size`` bytes; None if unsatisfiable."""
    unit, _, spec = header.partition("=")
    first, dash, last = spec.strip().partition("-")
    if unit.strip() != "bytes" or not dash or "," in spec or size == 0:
        return None
    try:
        if not first:
            start, end = max(size - int(last), 0), size - 1
        else:
            start, end = int(first), min(int(last), size - 1) if last else size - 1
    except ValueError:
        return None
    return (start, end) if 0 <= start <= end else None


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
        headers = {"ETag": etag, "Vary": "Accept", "Cache-Control": self.upstream.cache_control}
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


def _retimestamp_zip(data: bytes) -> bytes:
    """Rewrite a zip with the same members and compression but other timestamps."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            clone = zipfile.ZipInfo(info.filename, date_time=(2001, 2, 3, 4, 5, 6))
            clone.compress_type = info.compress_type
            clone.external_attr = info.external_attr
            target.writestr(clone, source.read(info))
    return out.getvalue()


def tamper(data: bytes) -> bytes:
    """Different bytes that still form a valid archive, so only a hash check notices.

    Zips (wheels) are re-written with other timestamps, gzip (sdists) get another header mtime,
    anything else gets its last byte flipped.
    """
    if data.startswith(b"PK\x03\x04"):
        return _retimestamp_zip(data)
    if data.startswith(b"\x1f\x8b") and len(data) > 8:
        return data[:4] + bytes(b ^ 0xFF for b in data[4:8]) + data[8:]
    if not data:
        return b"x"
    return data[:-1] + bytes([data[-1] ^ 0xFF])


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
        """Send ``value`` as the pages' ``Cache-Control`` (default ``max-age=0, must-revalidate``)."""
        self._server.cache_control = value

    def clear_faults(self) -> None:
        """Remove every injected fault."""
        self.faults.clear()


@contextmanager
def serve(index: UpstreamIndex) -> Iterator[RunningUpstream]:
    """Serve ``index`` on 127.0.0.1 (free port) in a thread; stopped and joined on exit."""
    with serving(_UpstreamServer(index), "upstream-pypi") as server:
        yield RunningUpstream(server)
