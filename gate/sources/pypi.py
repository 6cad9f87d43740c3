"""PyPI's simple repository API as a source of facts: fetch and parse project pages, fetch provenance.

`SimpleClient(base_url, session).project(name)` fetches one project page (PEP 691 JSON preferred, PEP 503
HTML understood) and returns a `ProjectPage` of `SimpleFile`s with what the index said about each file:
hashes, `requires-python`, `yanked` (PEP 592), `upload-time` and `size` (PEP 700), `core-metadata`
(PEP 658/714) and the `provenance` URL (PEP 740); `gate.gather.pypi` turns one row into the `FileFacts` a
policy sees. Everything that goes wrong upstream is an `UpstreamError` saying what went wrong (`Failure`:
a bad answer, unavailable); a missing project is `ProjectNotFoundError` (`Failure.NOT_FOUND`).
"""

from __future__ import annotations

import codecs
import datetime as dt
import json
from dataclasses import dataclass, replace
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urldefrag, urljoin

import msgspec
import requests
from packaging.utils import canonicalize_name

from gate.facts import parse_time
from gate.sources.failure import Failure, UpstreamError
from gate.sources.hosts import HostPolicy
from gate.sources.http import MAX_PAGE_BYTES, Fetched, HttpClient, Validators
from gate.sources.segments import join

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"
ACCEPT = f"{JSON_V1}, {HTML_V1};q=0.2, {TEXT_HTML};q=0.1"
INTEGRITY_ACCEPT = "application/vnd.pypi.integrity.v1+json"
DEFAULT_UPSTREAM = "https://pypi.org/simple/"
MAX_PROVENANCE_BYTES = 4 << 20  # a provenance object holds a few bundles of ~10 kB each
_ABSOLUTE = ("https://", "http://")


class ProjectNotFoundError(UpstreamError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no project {name!r} on the upstream index", Failure.NOT_FOUND)


class SimpleFile(msgspec.Struct, frozen=True, gc=False):
    """One file row of a project page, URLs made absolute.

    A msgspec Struct, as one is made for every file of every page: several times faster to build than a
    frozen dataclass, and (`gc=False`; it holds only strings, numbers, times and a dict of strings, so it
    can be in no reference cycle) not tracked by the garbage collector, whose full passes would otherwise
    walk every file of every page a process keeps."""

    filename: str
    url: str
    hashes: dict[str, str] = {}
    requires_python: str | None = None
    yanked: bool | str = False  # a non-empty string is the yank reason
    upload_time: dt.datetime | None = None
    size: int | None = None
    core_metadata: bool | dict[str, str] = False  # True, or the metadata file's hashes
    provenance: str | None = None

    @property
    def sha256(self) -> str | None:
        value = self.hashes.get("sha256")
        return value.lower() if value else None


@dataclass(frozen=True)
class ProjectPage:
    """A project detail page: its files in index order, and the project-level keys worth passing on."""

    name: str
    files: tuple[SimpleFile, ...]
    api_version: str = "1.0"
    versions: tuple[str, ...] | None = None
    project_status: dict[str, Any] | None = None
    last_serial: int | str | None = None

    def file(self, filename: str) -> SimpleFile | None:
        return next((f for f in self.files if f.filename == filename), None)

# --------------------------------------------------------------------------------------------------
# Parsing



def _iso_time(value: Any, filename: str) -> dt.datetime | None:
    """An upload time in UTC (a time without an offset is taken as UTC)."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise UpstreamError(f"upstream gave a non-string upload-time for {filename}")
    try:
        moment = parse_time(value)
        return moment if moment.tzinfo is dt.UTC else moment.astimezone(dt.UTC)
    except (ValueError, OverflowError) as err:  # OverflowError: an offset that moves it out of years 1-9999
        raise UpstreamError(f"upstream gave an invalid upload-time {value!r} for {filename}") from err


class _WireFile(msgspec.Struct, gc=False):
    """A file row as PEP 691 writes it (types checked by msgspec; unknown keys ignored)."""

    filename: str
    url: str
    hashes: dict[str, str] = {}
    requires_python: str | None = msgspec.field(default=None, name="requires-python")
    yanked: bool | str | None = False
    upload_time: str | None = msgspec.field(default=None, name="upload-time")
    size: int | None = None
    core_metadata: bool | dict[str, str] | msgspec.UnsetType | None = msgspec.field(
        default=msgspec.UNSET, name="core-metadata"
    )
    # the legacy name (PEP 658), read only without `core-metadata`, and then as leniently as before PEP 714
    dist_info_metadata: Any = msgspec.field(default=None, name="data-dist-info-metadata")
    provenance: str | None = None


class _WireMeta(msgspec.Struct):
    api_version: str = msgspec.field(default="1.0", name="api-version")
    last_serial: Any = msgspec.field(default=None, name="_last-serial")  # passed on when an int or a string


class _WirePage(msgspec.Struct):
    files: list[_WireFile]
    meta: _WireMeta | None = None
    name: str | None = None
    versions: list[str] | None = None
    project_status: Any = msgspec.field(default=None, name="project-status")  # passed on when an object


_PAGE_DECODER = msgspec.json.Decoder(_WirePage)


def _json_file(row: _WireFile, base: str) -> SimpleFile:
    filename, yanked, provenance = row.filename, row.yanked, row.provenance
    metadata = row.dist_info_metadata if row.core_metadata is msgspec.UNSET else row.core_metadata
    if isinstance(metadata, dict):
        metadata = {str(k): str(v) for k, v in metadata.items()}
    return SimpleFile(
        filename=filename,
        url=_absolute(base, row.url),
        hashes=row.hashes,
        requires_python=row.requires_python or None,
        # PEP 691 allows only a non-empty reason; pip reads any string (even "") as yanked, and so does gate
        yanked=(yanked or True) if isinstance(yanked, str) else bool(yanked),
        upload_time=_iso_time(row.upload_time, filename),
        size=row.size,
        core_metadata=metadata if isinstance(metadata, dict) else metadata is True,
        provenance=None if provenance is None else _absolute(base, provenance),
    )


def parse_json(body: bytes, base: str, name: str) -> ProjectPage:
    """A PEP 691 project page; anything that is not one raises UpstreamError."""
    try:
        data = _PAGE_DECODER.decode(body.removeprefix(codecs.BOM_UTF8))
    except msgspec.ValidationError as err:
        raise UpstreamError(f"upstream page for {name} is not a PEP 691 project page: {err}") from err
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as err:
        raise UpstreamError(f"upstream page for {name} is not valid JSON: {err}") from err
    meta = data.meta or _WireMeta()
    api_version, serial = meta.api_version, meta.last_serial
    if not api_version.startswith("1."):
        raise UpstreamError(f"upstream speaks simple API {api_version}, gate understands 1.x")
    return ProjectPage(
        name=canonicalize_name(data.name or name),
        files=tuple([_json_file(row, base) for row in data.files]),
        api_version=api_version,
        versions=None if data.versions is None else tuple(data.versions),
        project_status=data.project_status if isinstance(data.project_status, dict) else None,
        last_serial=serial if type(serial) in (int, str) else None,  # not a bool, a float or an object
    )


class _Anchors(HTMLParser):
    """Collects `<a>` attributes and text, and the `pypi:repository-version` meta tag."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[tuple[dict[str, str | None], str]] = []
        self.api_version = "1.0"
        self._open: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "a":
            self._open, self._text = found, []
        elif tag == "meta" and found.get("name") == "pypi:repository-version":
            self.api_version = found.get("content") or "1.0"

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open is not None:
            self.anchors.append((self._open, "".join(self._text).strip()))
            self._open = None

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text.append(data)


def _html_metadata(value: str | None) -> bool | dict[str, str]:
    if value is None or value == "false":
        return False
    algorithm, eq, digest = value.partition("=")
    return {algorithm: digest} if eq else True


def parse_html(body: bytes, base: str, name: str) -> ProjectPage:
    """A PEP 503 project page (with PEP 592/658/714/740 attributes and the common `data-upload-time`)."""
    parser = _Anchors()
    try:
        parser.feed(body.decode("utf-8"))
        parser.close()
    except UnicodeDecodeError as err:
        raise UpstreamError(f"upstream page for {name} is not UTF-8 HTML") from err
    files = []
    for attrs, text in parser.anchors:
        href = attrs.get("href")
        if not href:
            continue
        url, fragment = urldefrag(urljoin(base, href))
        algorithm, _, digest = fragment.partition("=")
        yanked = attrs.get("data-yanked")
        provenance = attrs.get("data-provenance")
        filename = text or url.rsplit("/", 1)[-1]
        files.append(
            SimpleFile(
                filename=filename,
                url=url,
                hashes={algorithm: digest} if algorithm and digest else {},
                requires_python=attrs.get("data-requires-python") or None,
                yanked=False if yanked is None else (yanked or True),
                upload_time=_iso_time(attrs.get("data-upload-time"), filename),
                core_metadata=_html_metadata(attrs.get("data-core-metadata", attrs.get("data-dist-info-metadata"))),
                provenance=urljoin(base, provenance) if provenance else None,
            )
        )
    if not parser.api_version.startswith("1."):
        raise UpstreamError(f"upstream speaks simple API {parser.api_version}, gate understands 1.x")
    return ProjectPage(name=canonicalize_name(name), files=tuple(files), api_version=parser.api_version)


def parse_page(body: bytes, content_type: str, base: str, name: str) -> ProjectPage:
    """A project page in either format, by its content type; relative URLs resolve against `base`."""
    if content_type == JSON_V1:
        return parse_json(body, base, name)
    if content_type in (HTML_V1, TEXT_HTML):
        return parse_html(body, base, name)
    raise UpstreamError(f"upstream answered {base} with unexpected content type {content_type!r}")


def _absolute(base: str, url: str) -> str:
    return url if url.startswith(_ABSOLUTE) else urljoin(base, url)


# --------------------------------------------------------------------------------------------------
# The client


class SimpleClient(HttpClient):
    """A client for one upstream simple index (pages at most `max_bytes` decoded)."""

    def __init__(
        self, base_url: str = DEFAULT_UPSTREAM, session: requests.Session | None = None, *, timeout: float = 20.0,
        hosts: HostPolicy | None = None, max_bytes: int = MAX_PAGE_BYTES,
    ) -> None:
        super().__init__(session, timeout, hosts=hosts, max_bytes=max_bytes)
        self.base_url = base_url.rstrip("/") + "/"

    def project_url(self, name: str) -> str:
        """The project's page URL; a name that cannot be a path segment is a ProjectNotFoundError."""
        try:
            return join(self.base_url, canonicalize_name(name)) + "/"
        except ValueError as err:
            raise ProjectNotFoundError(name) from err

    def project(self, name: str, validators: Validators | None = None) -> Fetched[ProjectPage]:
        """Fetch a project page; with `validators`, a 304 answer gives `Fetched(page=None, ...)`. `meta` holds
        the `content_type` and `url` that `parse_page` needs to parse the body again."""
        url = self.project_url(name)
        response, answer = self.conditional_fetch(url, validators, {"Accept": ACCEPT})
        if response is None:
            return answer
        if response.status == 404:
            raise ProjectNotFoundError(name)
        if response.status != 200:
            raise UpstreamError(f"upstream answered {response.status} for {url}")
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        page = parse_page(response.body, content_type, response.url, name)
        meta = {"content_type": content_type, "url": response.url}
        return replace(answer, page=page, body=response.body, meta=meta)

    def projects(self) -> list[str]:
        """The normalized names on the upstream's `/simple/` list."""
        response = self.fetch(self.base_url, {"Accept": ACCEPT})
        if response.status != 200:
            raise UpstreamError(f"upstream answered {response.status} for {self.base_url}")
        if response.headers.get("Content-Type", "").startswith(JSON_V1):
            try:
                rows = json.loads(response.body)["projects"]
                return [canonicalize_name(str(row["name"])) for row in rows]
            except (ValueError, KeyError, TypeError) as err:
                raise UpstreamError("upstream project list is not a PEP 691 list") from err
        parser = _Anchors()
        parser.feed(response.body.decode("utf-8", "replace"))
        return [canonicalize_name(text) for _, text in parser.anchors if text]

    def fetch_provenance(self, url: str) -> bytes | None:
        """The PEP 740 provenance object at `url` (from a page's `provenance` key); None when there is none."""
        return self.fetch_small(url, MAX_PROVENANCE_BYTES, absent=(403, 404), headers={"Accept": INTEGRITY_ACCEPT})
