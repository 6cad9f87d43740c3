"""Release provenance for PyPI files: an index has no GitHub Release assets, so a policy names where a
project's provenance lives (`spec.evidence.githubReleases`: `urllib3: urllib3/urllib3`), and the facts service
fetches `<releases>/<OWNER>/<REPO>/releases/download/<tag>/<asset>` (slsa-github-generator's
`multiple.intoto.jsonl`) for each file of that project, through the front end's `EvidenceCache`.

The release host is the front end's setting (`gate serve --github-releases`; https://github.com by default),
never a policy's or a page's: the policy gives only OWNER/REPO, a tag template and an asset name (each
restricted by the schema), the file's version is a parsed version, and every part is percent-encoded into
the path. The asset covers every file of the release; each file's evidence is the asset verified for it (its
sha256 among the subjects, `gate.verify`), cached by the asset's and the file's digests.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any, Protocol
from urllib.parse import quote

from gate.facts import Ecosystem, FileFacts
from gate.gather.ports import FETCH_RETRY, NO_EVIDENCE, Evidence, EvidenceCache, earliest
from gate.sources.failure import UpstreamError
from gate.sources.hosts import HostPolicy
from gate.sources.versions import parse_version
from gate.verify.bounded import MAX_EVIDENCE_BYTES
from gate.verify.target import Target, unverified


class ReleaseSource(Protocol):
    """Where a project's release provenance lives (`gate.policy.model.ReleaseSource`)."""

    @property
    def project(self) -> str: ...  # normalized
    @property
    def repository(self) -> str: ...  # OWNER/REPO
    @property
    def tag(self) -> str: ...  # with `{version}`
    @property
    def asset(self) -> str: ...


DEFAULT_RELEASE_HOST = "https://github.com"
RELEASES = "release-provenance"  # the evidence namespace of release assets
NO_RELEASE_TTL = 3600.0  # a release's provenance may be uploaded after the files: ask again after this long


class ReleaseEvidence:
    """The release provenance of PyPI files whose project a policy names; `fetch(url)` gets an asset (None:
    the release has none), raising the front end's UpstreamError."""

    def __init__(self, base_url: str, sources: Iterable[ReleaseSource], fetch: Callable[[str], bytes | None],
                 cache: EvidenceCache) -> None:
        self.base_url = base_url.rstrip("/")
        self.sources: dict[str, list[ReleaseSource]] = {}
        for source in sources:
            if source not in self.sources.setdefault(source.project, []):
                self.sources[source.project].append(source)
        self.fetch = fetch
        self.cache = cache

    def url(self, source: ReleaseSource, version: str) -> str:
        tag = source.tag.replace("{version}", version)
        return (f"{self.base_url}/{quote(source.repository, safe='/')}/releases/download/"
                f"{quote(tag, safe='')}/{quote(source.asset, safe='')}")

    def evidence(self, file: FileFacts, now: dt.datetime) -> Evidence:
        """Each named release's asset verified for `file`; one that cannot be fetched is unverified evidence,
        asked for again after FETCH_RETRY; a release without the asset gives nothing (asked again later)."""
        sources = self.sources.get(file.name) if file.ecosystem is Ecosystem.PYPI else None
        if not sources or not file.version:
            return NO_EVIDENCE
        if parse_version(file.version) is None:  # a lock's or report's claim for a direct file: `..` would climb
            why = f"release: the file's version {file.version[:100]!r} is not a PEP 440 version, so it names no tag"
            return Evidence(tuple(unverified(f"{s.repository} release", why) for s in sources), None)
        facts = []
        recheck: dt.datetime | None = None
        target = Target(file.filename, file.sha256, Ecosystem.PYPI)
        for source in sources:
            url = self.url(source, file.version)
            try:
                data, again = self.cache.fetch(RELEASES, url, "", partial(self.fetch, url), now,
                                               absent_ttl=NO_RELEASE_TTL, present_ttl=None)
            except UpstreamError as err:
                facts.append(unverified(url, f"fetch: {err}"))
                recheck = earliest(recheck, now + FETCH_RETRY)
                continue
            recheck = earliest(recheck, again)
            if data is None:
                continue
            verified = self.cache.verify(RELEASES, url, "", data, target, now=now)
            facts.extend(verified.facts)
            recheck = earliest(recheck, verified.recheck)
        return Evidence(tuple(facts), recheck)


def release_fetcher(base_url: str, timeout: float, session: Any = None) -> Callable[[str], bytes | None]:
    """`fetch` for `ReleaseEvidence`: the one HTTP client, allowed only the release host (and the hosts it is
    known to serve assets from, `gate.sources.hosts.KNOWN_FILE_HOSTS`), at most MAX_EVIDENCE_BYTES an asset;
    a 404 is no asset."""
    from gate.sources.http import HttpClient  # noqa: PLC0415 (the HTTP client only when release assets are fetched)

    client = HttpClient(session, timeout, hosts=HostPolicy.for_upstreams([base_url]), max_bytes=MAX_EVIDENCE_BYTES)

    def fetch(url: str) -> bytes | None:
        return client.fetch_small(url, MAX_EVIDENCE_BYTES, absent={404})

    return fetch


def release_evidence_for(sources: Sequence[ReleaseSource], host: str, timeout: float,
                         cache: EvidenceCache, session: Any = None) -> ReleaseEvidence | None:
    """`ReleaseEvidence` from `host` for `sources` (None when no policy names a release)."""
    return ReleaseEvidence(host, sources, release_fetcher(host, timeout, session), cache) if sources else None
