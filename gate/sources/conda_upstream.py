"""A client for one upstream conda channel: subdir repodata (conditional, `.zst` preferred), sidecars, channeldata.

Errors are `UpstreamError`s carrying the status a proxy should answer with (404 absent, 502 bad answer,
503 unreachable or slow), as for the PyPI simple API; validators and freshness work the same way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import requests

from gate.sources.conda_channel import decompress_zst
from gate.sources.pypi import UpstreamError, Validators, freshness, read_small

JSON = "repodata.json"
ZST = "repodata.json.zst"


@dataclass(frozen=True)
class FetchedRepodata:
    """`body` is the decompressed `repodata.json` (None: unchanged since `validators`, a 304)."""

    body: bytes | None
    variant: str  # which upstream file answered: repodata.json.zst or repodata.json
    validators: Validators
    max_age: float
    latency: float


class ChannelClient:
    """One upstream channel URL; safe to share between threads."""

    def __init__(self, url: str, session: requests.Session | None = None, *, timeout: float = 20.0) -> None:
        self.url = url.rstrip("/")
        self.session = session or requests.Session()
        self.timeout = timeout

    def subdir_url(self, subdir: str) -> str:
        return f"{self.url}/{subdir}"

    def _get(self, url: str, headers: dict[str, str] | None = None, *, stream: bool = False) -> requests.Response:
        try:
            return self.session.get(url, headers=headers or {}, timeout=self.timeout, stream=stream)
        except requests.Timeout as err:
            raise UpstreamError(f"upstream {url} did not answer within {self.timeout:g}s", 503) from err
        except requests.RequestException as err:
            raise UpstreamError(f"upstream {url} is unreachable: {type(err).__name__}", 503) from err

    def repodata(
        self, subdir: str, validators: Validators | None = None, variant: str | None = None
    ) -> FetchedRepodata:
        """The subdir's repodata, from `variant` when known (the one the validators belong to), else `.zst`
        falling back to plain `repodata.json`; both missing is an UpstreamError with status 404. A `variant`
        that is gone upstream (404/410) is given up: the subdir is asked for again without it."""
        for name in (variant,) if variant else (ZST, JSON):
            url = f"{self.subdir_url(subdir)}/{name}"
            started = time.perf_counter()
            response = self._get(url, validators.headers() if validators and variant else None)
            latency = time.perf_counter() - started
            got = Validators(response.headers.get("ETag"), response.headers.get("Last-Modified"))
            if response.status_code == 304 and validators is not None and variant:
                merged = Validators(got.etag or validators.etag, got.last_modified or validators.last_modified)
                return FetchedRepodata(None, name, merged, freshness(response.headers), latency)
            if response.status_code in (404, 410) and name == ZST and not variant:
                continue
            if response.status_code in (404, 410) and variant:  # the pinned variant is gone: ask afresh
                return self.repodata(subdir)
            if response.status_code in (404, 410):
                raise UpstreamError(f"no {subdir} repodata at {self.url}", 404)
            if response.status_code != 200:
                raise UpstreamError(f"upstream answered {response.status_code} for {url}")
            body = response.content
            if name == ZST:
                try:
                    body = decompress_zst(body)
                except ValueError as err:
                    raise UpstreamError(f"upstream {url} is not valid zstd: {err}") from err
            return FetchedRepodata(body, name, got, freshness(response.headers), latency)
        raise UpstreamError(f"no {subdir} repodata at {self.url}", 404)

    def file(self, path: str, limit: int) -> bytes | None:
        """A small file under the channel (a sidecar, channeldata.json); None when upstream has none."""
        url = f"{self.url}/{path}"
        return read_small(self._get(url, stream=True), url, limit, absent=(403, 404, 410))
