"""Upstream project pages through the cache, each file judged by policy (the PyPI blueprint's service)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from gate.decision import Decision
from gate.evaluate import unidentified
from gate.facts import Ecosystem, Unidentified
from gate.gather.ports import no_vulnerabilities
from gate.gather.pypi import PypiFacts, first_rows
from gate.memo import MISSING, Memo
from gate.proxy.decide import judge
from gate.proxy.evidence import StoreEvidence
from gate.proxy.releases import release_evidence
from gate.proxy.state import Gate
from gate.proxy.stores.base import Entry
from gate.proxy.upstream import CachedUpstream
from gate.sources.pypi import ProjectPage, SimpleClient, SimpleFile, parse_page

PAGES = "pypi.page"
RENDERED = "pypi.rendered"
MEMO_BYTES = 64 << 20  # parsed pages kept in a process, by the size of their bodies (most are a few kB)
RENDERED_BYTES = 16 << 20  # rendered pages (gzip) kept in a process, so a warm page reads nothing from the store
IDENTITY_BYTES = 32 << 20  # rendered pages kept uncompressed in a process, for clients without gzip


class JudgedFile(NamedTuple):  # a NamedTuple, not a dataclass: one is made for every file of a page
    file: SimpleFile
    decision: Decision
    valid_until: dt.datetime | None


def _parse_page(project: str, body: bytes, meta: Mapping[str, Any]) -> ProjectPage:
    return parse_page(body, meta["content_type"], meta["url"], project)


class PypiIndex:
    """Pages are kept with their validators and reused while the upstream's `Cache-Control` (or `Expires`)
    allows, or for `--index-ttl` when it says nothing;
    decisions are made per file, fetching and verifying provenance only when a policy reads it."""

    def __init__(self, state: Gate) -> None:
        self.state = state
        settings = state.settings
        self.client = SimpleClient(
            settings.upstream, state.session, timeout=settings.timeout, hosts=state.hosts,
            max_bytes=settings.max_page_bytes,
        )
        self.facts = PypiFacts(
            self.client.base_url, self.client.fetch_provenance, StoreEvidence(state),
            state.evaluator.reads_attestations, no_vulnerabilities if state.osv is None else state.osv.lookup,
            reads_history=state.evaluator.reads_continuity,
            releases=release_evidence(state),
        )
        # ETag -> the identity body of a stored (gzip) rendered page: decompressed once per process
        self.identity: Memo[str, bytes] = Memo(IDENTITY_BYTES, lambda _, body: len(body))
        # rendered-page key -> its stored entry (gzip), as this process last read or wrote it
        self.rendered: Memo[str, Entry] = Memo(RENDERED_BYTES, lambda _, entry: len(entry.value))
        self.pages: CachedUpstream[ProjectPage] = CachedUpstream(
            state, PAGES, _parse_page, noun="page", memo=32, memo_bytes=MEMO_BYTES, default_ttl=settings.index_ttl
        )

    # -- pages ---------------------------------------------------------------------------------------

    def page_digest(self, project: str) -> str:
        """The digest of the project's current upstream page, asking upstream only when it is stale."""
        return self.pages.digest(project, lambda validators, _: self.client.project(project, validators))

    def page(self, project: str, digest: str | None = None) -> ProjectPage:
        """The current page of `project` (the one with `digest`, when the caller already has it)."""
        return self.pages.parsed(project, digest or self.page_digest(project))

    # -- rendered pages ------------------------------------------------------------------------------

    def warm(self, project: str, key: str, now: float) -> tuple[str | None, Entry | None]:
        """(the digest of the project's upstream page while it is fresh, else None; its rendering under `key`
        when that is current at `now`, else None), asking upstream nothing and counting nothing: what a warm
        request is answered with (`gate.proxy.pypi_warm`, the route)."""
        digest = self.pages.fresh(project)
        return digest, None if digest is None else self.rendered_entry(key, digest, now)

    def rendered_entry(self, key: str, digest: str, now: float) -> Entry | None:
        """The stored rendering under `key` of the page whose digest is `digest`, current at `now`: this process's
        copy, else the store's (then kept here). Both hold the same bytes: a rendering is made from the page, the
        decision view (in `key`) and the time, and is kept only until its first decision changes."""
        kept = self.rendered.get(key)
        if kept is not MISSING and kept.meta.get("page_digest") == digest and (
            kept.expires is None or kept.expires > now
        ):
            return kept
        entry = self.state.store.get(RENDERED, key, now=now)
        if entry is None or entry.meta.get("page_digest") != digest:
            return None
        self.rendered.put(key, entry)
        return entry

    # -- decisions -----------------------------------------------------------------------------------

    def provenance(self, file: SimpleFile) -> bytes | None:
        """The file's provenance object (cached by URL and sha256); None when the index has none."""
        if file.provenance is None or file.sha256 is None:
            return None
        return self.facts.provenance_bytes(file.provenance, file.sha256, self.state.now())[0]

    def judge(
        self, page: ProjectPage, file: SimpleFile, now: dt.datetime, duplicates: Mapping[str, str] | None = None
    ) -> JudgedFile:
        """The decision on one row of `page` (facts from `gate.gather.pypi`, as `gate check` has them);
        `duplicates` (from `duplicate_rows`; default: looked up for this row alone) denies a filename the page
        lists with different rows."""
        facts, recheck = self.facts.row(page, file, now, duplicates)
        if isinstance(facts, Unidentified):
            return JudgedFile(file, unidentified(facts), None)
        judgement = judge(self.state, facts, now, recheck)
        return JudgedFile(file, judgement.decision, judgement.valid_until)

    def judge_page(self, page: ProjectPage, now: dt.datetime) -> list[JudgedFile]:
        """Every filename of the page once (its first row), in page order; provenance is fetched in parallel
        when it is needed."""
        rows, duplicates = first_rows(page)
        evidence = self.state.evaluator.reads_attestations(Ecosystem.PYPI, page.name)
        if not evidence or not any(f.provenance for f in rows):
            return [self.judge(page, f, now, duplicates) for f in rows]
        with ThreadPoolExecutor(self.state.settings.provenance_workers) as pool:
            return list(pool.map(lambda f: self.judge(page, f, now, duplicates), rows))
