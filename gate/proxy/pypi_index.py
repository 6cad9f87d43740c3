"""Upstream project pages through the cache, each file judged by policy (the PyPI blueprint's service)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from gate.decision import Decision
from gate.evaluate import unjudgeable
from gate.facts import Ecosystem, Facts
from gate.proxy.app import Gate
from gate.proxy.decide import judge
from gate.proxy.evidence import (
    FETCH_RETRY,
    Evidence,
    cached_fetch,
    earliest,
    evidence_key,
    expire_failed,
    failed,
    verified,
)
from gate.proxy.upstream import CachedUpstream
from gate.sources.http import UpstreamError
from gate.sources.pypi import ProjectPage, SimpleClient, SimpleFile, file_facts, parse_page
from gate.sources.segments import segment_problem
from gate.verify.evidence import unverified
from gate.verify.sigstore import Target

PAGES = "pypi.page"
PROVENANCE = "provenance"
NO_PROVENANCE_TTL = 3600.0  # provenance can be added to a file later: ask again after this long
MEMO_BYTES = 64 << 20  # parsed pages kept in a process, by the size of their bodies (most are a few kB)


class JudgedFile(NamedTuple):  # a NamedTuple, not a dataclass: one is made for every file of a page
    file: SimpleFile
    decision: Decision
    valid_until: dt.datetime | None


def _parse_page(project: str, body: bytes, meta: Mapping[str, Any]) -> ProjectPage:
    return parse_page(body, meta["content_type"], meta["url"], project)


class PypiIndex:
    """Pages are kept with their validators and reused while the upstream's `Cache-Control` allows;
    decisions are made per file, fetching and verifying provenance only when a policy reads it."""

    def __init__(self, state: Gate) -> None:
        self.state = state
        settings = state.settings
        self.client = SimpleClient(
            settings.upstream, state.session, timeout=settings.timeout, hosts=state.hosts,
            max_bytes=settings.max_page_bytes,
        )
        self.pages: CachedUpstream[ProjectPage] = CachedUpstream(
            state, PAGES, _parse_page, noun="page", memo=32, memo_bytes=MEMO_BYTES
        )

    # -- pages ---------------------------------------------------------------------------------------

    def page_digest(self, project: str) -> str:
        """The digest of the project's current upstream page, asking upstream only when it is stale."""
        return self.pages.digest(project, lambda validators, _: self.client.project(project, validators))

    def page(self, project: str, digest: str | None = None) -> ProjectPage:
        """The current page of `project` (the one with `digest`, when the caller already has it)."""
        return self.pages.parsed(project, digest or self.page_digest(project))

    # -- decisions -----------------------------------------------------------------------------------

    def _provenance(self, url: str, sha256: str, now: dt.datetime) -> tuple[bytes | None, dt.datetime | None]:
        """(provenance bytes or None when there is none, when to ask again: None for present provenance)."""
        return cached_fetch(
            self.state, PROVENANCE, evidence_key(url, sha256), lambda: self.client.fetch_provenance(url), now,
            absent_ttl=NO_PROVENANCE_TTL, present_ttl=None,
        )

    def provenance(self, file: SimpleFile) -> bytes | None:
        """The file's provenance object (cached by URL and sha256); None when the index has none."""
        if file.provenance is None or file.sha256 is None:
            return None
        return self._provenance(file.provenance, file.sha256, self.state.now())[0]

    def _attestations(self, file: SimpleFile, sha256: str, filename: str, now: dt.datetime) -> Evidence:
        """No `provenance` URL means no evidence ("unknown"); a fetch that fails is unverified evidence."""
        if file.provenance is None:
            return Evidence((), None)
        try:
            data, recheck = self._provenance(file.provenance, sha256, now)
        except UpstreamError as err:
            return Evidence((unverified(file.provenance, f"fetch: {err}"),), now + FETCH_RETRY)
        if data is None:
            return Evidence((), recheck)
        facts = verified(self.state, data, file.provenance, Target(filename, sha256, Ecosystem.PYPI))
        if failed(facts):
            key = evidence_key(file.provenance, sha256)
            recheck = earliest(recheck, expire_failed(self.state, PROVENANCE, key, data, now))
        return Evidence(facts, recheck)

    def judge(
        self, page: ProjectPage, file: SimpleFile, now: dt.datetime, duplicates: Mapping[str, str] | None = None
    ) -> JudgedFile:
        """The decision on one row of `page`; `duplicates` (from `duplicate_rows`; default: looked up for
        this row alone) denies a filename the page lists with different rows."""
        problem = (duplicate_rows(page, file.filename) if duplicates is None else duplicates).get(file.filename)
        if problem is None and (bad := segment_problem(file.filename)) is not None:
            problem = f"its filename is {bad}"  # a request path could not name it: never listed
        if problem is not None:
            return JudgedFile(file, unjudgeable(Ecosystem.PYPI, page.name, file.filename, file.sha256, problem), None)
        facts = file_facts(page, file, self.client.base_url)
        if facts is None:
            reason = (
                "the index gave no sha256 for this file" if file.sha256 is None
                else f"not a wheel or sdist of {page.name}"
            )
            decision = unjudgeable(Ecosystem.PYPI, page.name, file.filename, file.sha256, reason)
            return JudgedFile(file, decision, None)
        evidence = Evidence((), None)
        if self.state.evaluator.reads_attestations(Ecosystem.PYPI, facts.name):
            evidence = self._attestations(file, facts.sha256, facts.filename, now)
        judgement = judge(self.state, Facts(file=facts, attestations=evidence.facts), now, evidence.recheck)
        return JudgedFile(file, judgement.decision, judgement.valid_until)

    def judge_page(self, page: ProjectPage, now: dt.datetime) -> list[JudgedFile]:
        """Every filename of the page once (its first row), in page order; provenance is fetched in parallel
        when it is needed."""
        duplicates = duplicate_rows(page)
        first: dict[str, SimpleFile] = {}
        for file in page.files:
            first.setdefault(file.filename, file)
        rows = list(first.values())
        evidence = self.state.evaluator.reads_attestations(Ecosystem.PYPI, page.name)
        if not evidence or not any(f.provenance for f in rows):
            return [self.judge(page, f, now, duplicates) for f in rows]
        with ThreadPoolExecutor(self.state.settings.provenance_workers) as pool:
            return list(pool.map(lambda f: self.judge(page, f, now, duplicates), rows))


def duplicate_rows(page: ProjectPage, filename: str | None = None) -> dict[str, str]:
    """The filenames (all, or only `filename`) that `page` lists more than once with rows that differ, each
    with the reason: an installer could take either row, so the one gate judged must not be a matter of
    order. Identical rows are one file."""
    rows: dict[str, list[SimpleFile]] = {}
    for file in page.files:
        if filename is None or file.filename == filename:
            rows.setdefault(file.filename, []).append(file)
    return {
        name: f"the index lists this filename {len(group)} times with different rows"
        for name, group in rows.items()
        if any(other != group[0] for other in group[1:])
    }
