"""A client for one upstream conda channel: subdir repodata (conditional, `.zst` preferred), sidecars, channeldata.

Errors are `UpstreamError`s saying what went wrong (`Failure`: not found, a bad answer, unavailable), as for
the PyPI simple API; validators, freshness and `Fetched` work the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import cast

import requests

from gate.sources.conda_channel import MAX_REPODATA_BYTES, compress_zst, decompress_zst
from gate.sources.conda_index import RepodataIndex
from gate.sources.failure import Failure, UpstreamError
from gate.sources.hosts import HostPolicy
from gate.sources.http import Answer, Fetched, HttpClient, Validators
from gate.sources.segments import join

JSON = "repodata.json"
ZST = "repodata.json.zst"
STORED_ZST = "zst"  # `meta["stored"]` of a body kept zstd-compressed


class ChannelClient(HttpClient):
    """One upstream channel URL (repodata at most `max_bytes` decoded); safe to share between threads."""

    def __init__(
        self, url: str, session: requests.Session | None = None, *, timeout: float = 20.0,
        hosts: HostPolicy | None = None, max_bytes: int = MAX_REPODATA_BYTES,
    ) -> None:
        super().__init__(session, timeout, hosts=hosts, max_bytes=max_bytes)
        self.url = url.rstrip("/")

    def fetch(self, url: str, headers: Mapping[str, str] | None = None, *, limit: int | None = None) -> Answer:
        """`HttpClient.fetch`; for repodata (no `limit` given: `max_bytes`), the body gathered in one buffer that
        grows in place, so that a body of hundreds of MB is never held twice (as its pieces and their join).
        That body is a bytearray: everything that reads a repodata body (msgspec, zstandard, hashlib, sqlite)
        takes any buffer, and it is never served as it is. Small files (sidecars, channeldata: a `limit`)
        are bytes."""
        if limit is not None:
            return super().fetch(url, headers, limit=limit)
        with self.stream(url, headers, limit=self.max_bytes) as stream:
            body = bytearray()
            if stream.status == 200:
                for chunk in stream.chunks():
                    body += chunk
            return Answer(stream.status, stream.url, stream.headers, cast(bytes, body))

    def subdir_url(self, subdir: str) -> str:
        """The subdir's URL (ValueError for a subdir that cannot be one path segment)."""
        return join(self.url, subdir)

    def repodata(
        self, subdir: str, validators: Validators | None = None, variant: str | None = None
    ) -> Fetched[RepodataIndex]:
        """The subdir's repodata, indexed (`RepodataIndex`); its `body` the repodata zstd-compressed, as
        the cache keeps it (the upstream's own `.zst` bytes when it sent those; `meta["stored"]` says so),
        and `meta["variant"]` the upstream file that answered (`repodata.json.zst` or `repodata.json`;
        None: a 304 to `validators`). It is fetched from
        `variant` when known (the one the validators belong to), else `.zst` falling back to plain
        `repodata.json`; both missing is an UpstreamError with status 404. A `variant` that is gone upstream
        (404/410) is given up: the subdir is asked for again without it."""
        for name in (variant,) if variant else (ZST, JSON):
            url = f"{self.subdir_url(subdir)}/{name}"
            response, answer = self.conditional_fetch(url, validators if variant else None)
            if response is None:
                return replace(answer, meta={"variant": name})
            if response.status in (404, 410) and name == ZST and not variant:
                continue
            if response.status in (404, 410) and variant:  # the pinned variant is gone: ask afresh
                return self.repodata(subdir)
            if response.status in (404, 410):
                raise UpstreamError(f"no {subdir} repodata at {self.url}", Failure.NOT_FOUND)
            if response.status != 200:
                raise UpstreamError(f"upstream answered {response.status} for {url}")
            body = stored = response.body
            if name == ZST:
                try:
                    body = decompress_zst(stored, self.max_bytes)
                except ValueError as err:
                    raise UpstreamError(f"upstream {url} is not valid zstd: {err}") from err
            with ThreadPoolExecutor(1) as pool:  # zstd lets go of the GIL: compressing overlaps the indexing
                compressed = pool.submit(compress_zst, body, level=1) if name != ZST else None
                try:
                    document = RepodataIndex(body)
                except ValueError as err:
                    raise UpstreamError(f"upstream {self.subdir_url(subdir)} repodata is not valid: {err}") from err
                if compressed is not None:
                    stored = compressed.result()
            return replace(answer, page=document, body=stored, meta={"variant": name, "stored": STORED_ZST})
        raise UpstreamError(f"no {subdir} repodata at {self.url}", Failure.NOT_FOUND)

    def file(self, *segments: str, limit: int) -> bytes | None:
        """A small file under the channel (a sidecar, channeldata.json) at the path of `segments` (each
        checked and percent-encoded: see `gate.sources.segments`); None when upstream has none."""
        return self.fetch_small(join(self.url, *segments), limit, absent=(403, 404, 410))
