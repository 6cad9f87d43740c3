"""The pages of the local upstream index: PEP 503 HTML and PEP 691 JSON (api-version 1.4, with PEP 700 and
PEP 740 fields), content negotiation, ETags and byte ranges."""

from __future__ import annotations

import hashlib
import html
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from packaging.version import Version
from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

from tests.support.pypi_model import UpstreamFile

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
