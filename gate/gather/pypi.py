"""The PyPI facts service: an index row or a wheel/sdist file -> `FileFacts`, or `Unidentified` with the
reason it cannot be judged; and the row's PEP 740 provenance, verified, when a policy reads it.

Every front end judges a row by these: the proxy (`gate.proxy.pypi_index`), `gate check` of pip reports,
requirements and pylock files (`gate.sources.planned`), and local files (`gate.sources.local`).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, NamedTuple

from gate.facts import (
    NO_HISTORY,
    Continuity,
    Ecosystem,
    Facts,
    FileFacts,
    FileKind,
    Publisher,
    Unidentified,
    Vulnerability,
    with_signed_time,
)
from gate.gather.history import Attested, PageHistory
from gate.gather.ports import (
    FETCH_RETRY,
    NO_EVIDENCE,
    Evidence,
    EvidenceCache,
    VulnerabilityLookup,
    earliest,
    no_vulnerabilities,
)
from gate.sources.failure import UpstreamError
from gate.sources.filenames import pip_sdist_readings, python_file_facts
from gate.sources.segments import segment_problem
from gate.verify.target import Target, unverified

if TYPE_CHECKING:  # types only: a local file's facts need neither the page parser nor the HTTP client
    from gate.gather.releases import ReleaseEvidence
    from gate.sources.pypi import ProjectPage, SimpleFile

PROVENANCE = "provenance"  # the evidence namespace of PEP 740 provenance objects
NO_PROVENANCE_TTL = 3600.0  # provenance can be added to a file later: ask again after this long

# (ecosystem, name) -> whether a policy that governs such files reads `attestations` (so evidence that must be
# fetched is worth fetching); `gate.evaluate.Evaluator.reads_attestations` is one.
ReadsAttestations = Callable[[Ecosystem, str], bool]


def every_file(ecosystem: Ecosystem, name: str) -> bool:
    """`ReadsAttestations` for when the policies are not known: evidence is fetched for every file."""
    return True


def no_file(ecosystem: Ecosystem, name: str) -> bool:
    """`ReadsAttestations` (of `reads_history`) for when no policy reads `continuity`: no history is gathered."""
    return False


HISTORIES = 8  # pages whose history a facts service keeps (one page's files are judged together)


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


def first_rows(page: ProjectPage) -> tuple[list[SimpleFile], dict[str, str]]:
    """Every filename of the page once (its first row, in page order: what an installer is offered), and the
    filenames listed with rows that differ (`duplicate_rows`), which are judged as unjudgeable."""
    first: dict[str, SimpleFile] = {}
    for file in page.files:
        first.setdefault(file.filename, file)
    return list(first.values()), duplicate_rows(page)


def row_facts(
    page: ProjectPage, row: SimpleFile, index: str, duplicates: Mapping[str, str] | None = None
) -> FileFacts | Unidentified:
    """The facts of one row of `page`, or why it cannot be judged: the page lists its filename with different
    rows (`duplicates` from `duplicate_rows`; default: looked up for this row), the filename cannot be a path
    segment, the index gives no sha256, or it is not a wheel or sdist of the page's project."""
    problem = (duplicate_rows(page, row.filename) if duplicates is None else duplicates).get(row.filename)
    if problem is None and (bad := segment_problem(row.filename)) is not None:
        problem = f"its filename is {bad}"  # a request path could not name it: never listed
    sha256 = row.sha256
    if problem is None and sha256 is None:
        problem = "the index gave no sha256 for this file"
    facts = None
    if problem is None and sha256 is not None:
        facts = python_file_facts(
            row.filename, sha256, row.size, index=index, uploaded=row.upload_time,
            uploaded_from="upload-time" if row.upload_time else None, yanked=row.yanked is not False,
        )
        if facts is None or facts.name != page.name:
            problem, facts = f"not a wheel or sdist of {page.name}", None
    if facts is None:
        return Unidentified(Ecosystem.PYPI, page.name, row.filename, sha256, problem or "")
    return facts


def local_file_facts(filename: str, sha256: str, size: int) -> FileFacts | Unidentified | None:
    """The facts of a wheel or sdist file from its name (None: it is neither), or `Unidentified` when pip,
    asked for another project, would also take it (it splits an sdist's name and version at any dash)."""
    found = python_file_facts(filename, sha256, size)
    if found is None:
        return None
    if others := [f"{n} {v}" for n, v in pip_sdist_readings(filename) if n != found.name]:
        reason = (
            f"{filename} is the sdist {found.name} {found.version}, but pip, asked for another project, also "
            f"takes it for {' or '.join(others)} (it splits name and version at any dash): gate cannot tell "
            "which package it is; check it under the filename its index gives it"
        )
        return Unidentified(Ecosystem.PYPI, found.name, filename, sha256, reason)
    return found


def known_vulnerabilities(lookup: VulnerabilityLookup, file: FileFacts) -> tuple[Vulnerability, ...]:
    """The OSV records that apply to a PyPI wheel or sdist, by the name and version its filename gives (none for
    other files: OSV has no conda ecosystem, and a `file` has no version)."""
    if file.ecosystem is not Ecosystem.PYPI or file.kind not in (FileKind.WHEEL, FileKind.SDIST):
        return ()
    return lookup(Ecosystem.PYPI, file.name, file.version)


class RowFacts(NamedTuple):
    """What the service found for one row: its facts (or why it cannot be judged), and when the evidence in
    them may change (None: never)."""

    facts: Facts | Unidentified
    recheck: dt.datetime | None


class PypiFacts:
    """Facts for the rows of one index (`index`, its simple API base URL): provenance is fetched with
    `fetch_provenance(url)` through `cache`, only for files a policy that governs them reads attestations of;
    the OSV records that apply come from `vulnerabilities` (default: no OSV data); the page's release history
    (`gate.gather.history`) is gathered for files a policy that governs them reads `continuity` of."""

    def __init__(
        self, index: str, fetch_provenance: Callable[[str], bytes | None], cache: EvidenceCache,
        reads_attestations: ReadsAttestations, vulnerabilities: VulnerabilityLookup = no_vulnerabilities, *,
        reads_history: ReadsAttestations = no_file,
        releases: ReleaseEvidence | None = None,
    ) -> None:
        self.releases = releases  # release provenance a policy points to (`gate.gather.releases`)
        self.index = index
        self.fetch_provenance = fetch_provenance
        self.cache = cache
        self.reads_attestations = reads_attestations
        self.vulnerabilities = vulnerabilities
        self.reads_history = reads_history
        self._histories: dict[int, tuple[ProjectPage, PageHistory]] = {}
        self._lock = threading.Lock()

    def row(
        self, page: ProjectPage, row: SimpleFile, now: dt.datetime, duplicates: Mapping[str, str] | None = None
    ) -> RowFacts:
        """The facts of `row` of `page`, its provenance verified when a policy reads attestations."""
        file = row_facts(page, row, self.index, duplicates)
        if isinstance(file, Unidentified):
            return RowFacts(file, None)
        evidence = NO_EVIDENCE
        if self.reads_attestations(Ecosystem.PYPI, file.name):
            evidence = self.provenance(row, file, now)
            if self.releases is not None:
                release = self.releases.evidence(file, now)
                evidence = Evidence(evidence.facts + release.facts, earliest(evidence.recheck, release.recheck))
            file = with_signed_time(file, evidence.facts)
        records = known_vulnerabilities(self.vulnerabilities, file)
        continuity, recheck = NO_HISTORY, evidence.recheck
        if self.reads_history(Ecosystem.PYPI, file.name):
            continuity, history_recheck = self.continuity(page, file, now)
            recheck = earliest(recheck, history_recheck)
        return RowFacts(Facts(file, evidence.facts, records, continuity), recheck)

    def history(self, page: ProjectPage) -> PageHistory:
        """The release history of `page`, built once for the page (kept for the last HISTORIES pages)."""
        with self._lock:
            kept = self._histories.get(id(page))
            if kept is not None and kept[0] is page:
                return kept[1]
        rows = []
        for row in first_rows(page)[0]:
            facts = row_facts(page, row, self.index, {})
            if isinstance(facts, FileFacts):
                rows.append((row, facts))
        history = PageHistory(rows)
        with self._lock:
            if len(self._histories) >= HISTORIES:
                self._histories.pop(next(iter(self._histories)))
            self._histories[id(page)] = (page, history)
        return history

    def continuity(self, page: ProjectPage, file: FileFacts, now: dt.datetime) -> tuple[Continuity, dt.datetime | None]:
        """The file's release history from `page` (`gate.gather.history`), and when it may change."""
        return self.history(page).continuity(file, self.attested, now)

    def attested(self, row: SimpleFile, file: FileFacts, now: dt.datetime) -> Attested:
        """Who published an earlier file, by its verified provenance (none: no provenance, or none verifies);
        raises UpstreamError when its provenance cannot be fetched, or the page lists provenance the index does
        not serve (an earlier release's evidence that goes missing must not lower the bar)."""
        url = row.provenance
        if url is None:
            return Attested((), None)
        data, _ = self.provenance_bytes(url, file.sha256, now)
        if data is None:
            raise UpstreamError(f"the index lists provenance for {row.filename} but serves none")
        target = Target(file.filename, file.sha256, Ecosystem.PYPI)
        verified = self.cache.verify(PROVENANCE, url, file.sha256, data, target, now=now)
        publishers = tuple(dict.fromkeys(a.publisher or Publisher(kind="") for a in verified.facts if a.verified))
        return Attested(publishers, verified.recheck)

    def provenance_bytes(self, url: str, sha256: str, now: dt.datetime) -> tuple[bytes | None, dt.datetime | None]:
        """The provenance object at `url` for the file with `sha256` (None: the index has none), through the
        cache; when to ask again (None: it is kept for good)."""
        return self.cache.fetch(
            PROVENANCE, url, sha256, lambda: self.fetch_provenance(url), now,
            absent_ttl=NO_PROVENANCE_TTL, present_ttl=None,
        )

    def provenance(self, row: SimpleFile, file: FileFacts, now: dt.datetime) -> Evidence:
        """No `provenance` URL means no evidence ("unknown"); one that cannot be fetched is unverified evidence,
        asked for again after FETCH_RETRY."""
        url = row.provenance
        if url is None:
            return NO_EVIDENCE
        try:
            data, recheck = self.provenance_bytes(url, file.sha256, now)
        except UpstreamError as err:
            return Evidence((unverified(url, f"fetch: {err}"),), now + FETCH_RETRY)
        if data is None:
            return Evidence((), recheck)
        target = Target(file.filename, file.sha256, Ecosystem.PYPI)
        verified = self.cache.verify(PROVENANCE, url, file.sha256, data, target, now=now)
        return Evidence(verified.facts, earliest(recheck, verified.recheck))

