"""Content negotiation and rendering of filtered simple-API pages (PEP 503 HTML, PEP 691 JSON)."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

import msgspec
from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

from gate.facts import iso_z
from gate.memo import MISSING, Memo
from gate.sources.pypi import HTML_V1, JSON_V1, TEXT_HTML, ProjectPage, SimpleFile

JSON_LATEST = "application/vnd.pypi.simple.latest+json"
HTML_LATEST = "application/vnd.pypi.simple.latest+html"
# media type a client may ask for -> the concrete type answered, in order of preference
_ANSWERS = {JSON_V1: JSON_V1, JSON_LATEST: JSON_V1, HTML_V1: HTML_V1, HTML_LATEST: HTML_V1, TEXT_HTML: TEXT_HTML}


def negotiate(accept: str | None, format_param: str | None = None) -> str | None:
    """The content type to answer with (`?format=` wins over `Accept`); None means 406. On equal
    preference the earlier offer wins, so JSON is preferred (werkzeug's Accept matching)."""
    if format_param:
        wanted = format_param.lower().replace(" ", "+")  # an unescaped "+" in a query string reads as " "
        return _ANSWERS.get(wanted)
    if not accept:
        return TEXT_HTML
    found = _NEGOTIATED.get(accept)
    if found is MISSING:
        best = parse_accept_header(accept, MIMEAccept).best_match(_ANSWERS)
        found = None if best is None else _ANSWERS[best]
        _NEGOTIATED.put(accept, found)
    return found


# Accept header -> the answer negotiated for it: most clients send one of a few (pip's, uv's); kept by size
_NEGOTIATED: Memo[str, str | None] = Memo(64 << 10, lambda accept, _: len(accept) + 1)


class Urls:
    """Where gate serves a project's files, metadata and provenance (absolute, under `root`)."""

    def __init__(self, root: str, project: str) -> None:
        self._files = f"{root}files/{project}/"
        self._provenance = f"{root}provenance/{project}/"

    def file(self, filename: str) -> str:
        return self._files + _quote(filename)

    def provenance(self, filename: str) -> str:
        return self._provenance + _quote(filename)


_SAFE = re.compile(r"[A-Za-z0-9._+~-]*")


def _quote(filename: str) -> str:
    return filename if _SAFE.fullmatch(filename) else quote(filename)


def _metadata(file: SimpleFile) -> bool | dict[str, str]:
    """Metadata is advertised only with a sha256, because gate serves it only after checking that."""
    value = file.core_metadata
    return {"sha256": value["sha256"]} if isinstance(value, dict) and value.get("sha256") else False


class _JsonRow(msgspec.Struct, omit_defaults=True):
    """One file of a PEP 691 page, keys in this order; `size` and `upload-time` only when known."""

    filename: str
    url: str
    hashes: dict[str, str]
    requires_python: str | None = msgspec.field(name="requires-python")
    yanked: bool | str
    core_metadata: bool | dict[str, str] = msgspec.field(name="core-metadata")
    dist_info_metadata: bool | dict[str, str] = msgspec.field(name="data-dist-info-metadata")
    provenance: str | None
    size: int | None = None
    upload_time: dt.datetime | str | None = msgspec.field(default=None, name="upload-time")


_ENCODER = msgspec.json.Encoder()


def _json_row(file: SimpleFile, urls: Urls) -> _JsonRow:
    filename, moment = file.filename, file.upload_time
    metadata = _metadata(file)
    return _JsonRow(
        filename, urls.file(filename), file.hashes, file.requires_python, file.yanked, metadata, metadata,
        urls.provenance(filename) if file.provenance else None, file.size,
        # msgspec writes a UTC datetime as iso_z does ("...Z"); the parser gives every upstream time in UTC
        moment if moment is None or moment.tzinfo is dt.UTC else iso_z(moment),
    )


def _versions(page: ProjectPage, versions: list[str]) -> list[str]:
    """The versions that still have a listed file, in the upstream's order when it gave one."""
    listed = dict.fromkeys(versions)
    if page.versions is None:
        return list(listed)
    return [v for v in page.versions if v in listed]


def render_json(page: ProjectPage, files: list[SimpleFile], urls: Urls, versions: list[str]) -> bytes:
    """The PEP 691 page of `files` (with `versions`, each listed file's version, for PEP 700), compact
    UTF-8 JSON written by msgspec (tests/proxy/test_render.py checks it against `json.dumps`)."""
    meta: dict[str, Any] = {"api-version": page.api_version}
    if page.last_serial is not None:
        meta["_last-serial"] = page.last_serial
    out: dict[str, Any] = {"meta": meta, "name": page.name}
    if page.project_status is not None:
        out["project-status"] = page.project_status
    out["versions"] = _versions(page, versions)
    out["files"] = [_json_row(f, urls) for f in files]
    return _ENCODER.encode(out)


def _metadata_attr(value: bool | dict[str, str]) -> str | None:
    if value is False:
        return None
    if value is True or not value:
        return "true"
    algorithm = "sha256" if "sha256" in value else next(iter(value))
    return f"{algorithm}={value[algorithm]}"


def _anchor(file: SimpleFile, urls: Urls) -> str:
    href = urls.file(file.filename)
    if file.hashes:
        algorithm = "sha256" if "sha256" in file.hashes else next(iter(file.hashes))
        href += f"#{algorithm}={file.hashes[algorithm]}"
    attrs = [("href", href)]
    if file.requires_python:
        attrs.append(("data-requires-python", file.requires_python))
    if file.yanked is not False:
        attrs.append(("data-yanked", "" if file.yanked is True else str(file.yanked)))
    metadata = _metadata_attr(_metadata(file))
    if metadata is not None:
        attrs += [("data-core-metadata", metadata), ("data-dist-info-metadata", metadata)]
    if file.provenance:
        attrs.append(("data-provenance", urls.provenance(file.filename)))
    if file.upload_time is not None:
        attrs.append(("data-upload-time", iso_z(file.upload_time)))  # not standard; mirrors emit it
    shown = " ".join(f'{key}="{html.escape(value)}"' for key, value in attrs)
    return f"    <a {shown}>{html.escape(file.filename)}</a><br />"


def _status_meta(status: dict[str, Any] | None) -> list[str]:
    """PEP 792's `pypi:project-status` and `pypi:project-status-reason` meta tags (strings only)."""
    tags = []
    for key, name in (("status", "pypi:project-status"), ("reason", "pypi:project-status-reason")):
        value = (status or {}).get(key)
        if isinstance(value, str):
            tags.append(f'    <meta name="{name}" content="{html.escape(value)}">')
    return tags


def _html(title: str, api_version: str, lines: Iterable[str], status: dict[str, Any] | None = None) -> bytes:
    head = [
        "<!DOCTYPE html>",
        "<html>",
        "  <head>",
        f'    <meta name="pypi:repository-version" content="{html.escape(api_version)}">',
        *_status_meta(status),
        f"    <title>{html.escape(title)}</title>",
        "  </head>",
        "  <body>",
        f"    <h1>{html.escape(title)}</h1>",
    ]
    return ("\n".join([*head, *lines, "  </body>", "</html>"]) + "\n").encode()


def render_html(page: ProjectPage, files: list[SimpleFile], urls: Urls) -> bytes:
    return _html(f"Links for {page.name}", page.api_version, (_anchor(f, urls) for f in files), page.project_status)


def render_root(names: list[str], content_type: str) -> bytes:
    if content_type == JSON_V1:
        return json.dumps({"meta": {"api-version": "1.1"}, "projects": [{"name": n} for n in names]}).encode()
    return _html("Simple index", "1.1", (f'    <a href="{quote(n)}/">{html.escape(n)}</a><br />' for n in names))
