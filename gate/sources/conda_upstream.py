"""A client for one upstream conda channel: subdir repodata (conditional, `.zst` preferred), sidecars, channeldata.

Errors are `UpstreamError`s saying what went wrong (`Failure`: not found, a bad answer, unavailable), as for
the PyPI simple API; validators, freshness and `Fetched` work the same way.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import requests

from gate.sources.conda_channel import MAX_REPODATA_BYTES, decompress_zst, parse_repodata
from gate.sources.hosts import HostPolicy
from gate.sources.http import Failure, Fetched, HttpClient, UpstreamError, Validators
from gate.sources.segments import join

JSON = "repodata.json"
ZST = "repodata.json.zst"


class ChannelClient(HttpClient):
    """One upstream channel URL (repodata at most `max_bytes` decoded); safe to share between threads."""

    def __init__(
        self, url: str, session: requests.Session | None = None, *, timeout: float = 20.0,
        hosts: HostPolicy | None = None, max_bytes: int = MAX_REPODATA_BYTES,
    ) -> None:
        super().__init__(session, timeout, hosts=hosts, max_bytes=max_bytes)
        self.url = url.rstrip("/")

    def subdir_url(self, subdir: str) -> str:
        """The subdir's URL (ValueError for a subdir that cannot be one path segment)."""
        return join(self.url, subdir)

    def repodata(
        self, subdir: str, validators: Validators | None = None, variant: str | None = None
    ) -> Fetched[dict[str, Any]]:
        """The subdir's parsed repodata, its `body` decompressed and `meta["variant"]` the upstream file that
        answered (`repodata.json.zst` or `repodata.json`; None: a 304 to `validators`). It is fetched from
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
            body = response.body
            if name == ZST:
                try:
                    body = decompress_zst(body, self.max_bytes)
                except ValueError as err:
                    raise UpstreamError(f"upstream {url} is not valid zstd: {err}") from err
            try:
                document = parse_repodata(body)
            except ValueError as err:
                raise UpstreamError(f"upstream {self.subdir_url(subdir)} repodata is not valid: {err}") from err
            return replace(answer, page=document, body=body, meta={"variant": name})
        raise UpstreamError(f"no {subdir} repodata at {self.url}", Failure.NOT_FOUND)

    def file(self, *segments: str, limit: int) -> bytes | None:
        """A small file under the channel (a sidecar, channeldata.json) at the path of `segments` (each
        checked and percent-encoded: see `gate.sources.segments`); None when upstream has none."""
        return self.fetch_small(join(self.url, *segments), limit, absent=(403, 404, 410))
