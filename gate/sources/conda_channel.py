"""Conda channel repodata: parsed, its records found, and copied with the records a caller rejects removed.

Pure (no I/O). What the proxy serves from it, and how, is `gate.proxy.conda_paths`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin

import zstandard

from gate.sources.failure import UpstreamError
from gate.sources.segments import quote_segment

SECTIONS = ("packages", "packages.conda")
KNOWN_KEYS = frozenset({*SECTIONS, "info", "removed", "repodata_version"})  # top-level keys of repodata
MAX_REPODATA_BYTES = 512 << 20  # decoded; conda-forge's largest subdir (linux-64) is a few hundred MB

Record = dict[str, Any]


def parse_repodata(data: bytes) -> dict[str, Any]:
    """A repodata document; an empty file is `{}`; raise ValueError for anything but a JSON object."""
    if not data.strip():
        return {}
    try:
        document = json.loads(data)
    except RecursionError:  # hostile nesting: the C parser's guard, turned into the error callers expect
        raise ValueError("repodata nests too deep") from None
    if not isinstance(document, dict):
        raise ValueError("repodata is not a JSON object")
    return document


def decompress_zst(data: bytes, limit: int = MAX_REPODATA_BYTES) -> bytes:
    """Decompress a `.zst` body (streaming, so frames without a content size work); raise ValueError."""
    try:
        declared = zstandard.frame_content_size(data)
    except zstandard.ZstdError as err:
        raise ValueError(f"not zstd: {err}") from err
    if 0 <= declared <= limit:  # one frame of known size: decoded in place, no second copy
        try:
            return zstandard.ZstdDecompressor().decompress(data)
        except zstandard.ZstdError as err:
            raise ValueError(f"not zstd: {err}") from err
    reader = zstandard.ZstdDecompressor().stream_reader(data)
    chunks, size = [], 0
    try:
        while chunk := reader.read(4 << 20):
            size += len(chunk)
            if size > limit:
                raise ValueError(f"decompressed repodata exceeds {limit} bytes")
            chunks.append(chunk)
    except zstandard.ZstdError as err:
        raise ValueError(f"not zstd: {err}") from err
    return b"".join(chunks)


def compress_zst(data: bytes, level: int = 3) -> bytes:
    return zstandard.ZstdCompressor(level=level).compress(data)


def find_record(repodata: Mapping[str, Any], filename: str) -> Record | None:
    """The one record listed under `filename` (None: not listed); ValueError with `duplicate_problem`'s
    reason when it is listed more than once with records that differ (as the proxy judges it)."""
    found = find_records(repodata, filename)
    if not found:
        return None
    problem = duplicate_problem(found)
    if problem is not None:
        raise ValueError(problem)
    return found[0]


def find_records(repodata: Mapping[str, Any], filename: str) -> list[Record]:
    """Every record listed under `filename` (in `packages` and `packages.conda`: more than one is a
    duplicate, denied unless identical: `duplicate_problem`)."""
    found = []
    for section in SECTIONS:
        records = repodata.get(section)
        record = records.get(filename) if isinstance(records, dict) else None
        if isinstance(record, dict):
            found.append(record)
    return found


def duplicate_problem(records: list[Record]) -> str | None:
    """Why the records listed under one filename cannot be judged (None: one record, or identical ones):
    a client may install from either, so which one gate judged must not be a matter of order."""
    if any(r != records[0] for r in records[1:]):
        return f"the repodata lists this filename {len(records)} times with different records"
    return None


def package_url(subdir_url: str, repodata: Mapping[str, Any], filename: str) -> str:
    """Where the upstream serves `filename`: beside its repodata, or under `info.base_url` (CEP 15); the
    filename percent-encoded as one path segment (ValueError when it cannot be one; an UpstreamError when
    `base_url` cannot be resolved)."""
    info = repodata.get("info")
    base = info.get("base_url") if isinstance(info, dict) else None
    root = subdir_url.rstrip("/") + "/"
    if isinstance(base, str) and base:
        try:
            root = urljoin(root, base.rstrip("/") + "/")
        except ValueError as err:  # `http://[`: the upstream's, not the client's, fault
            raise UpstreamError(f"the upstream repodata's info.base_url {base!r} is not a URL: {err}") from None
    return root + quote_segment(filename)
