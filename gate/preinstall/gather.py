"""The facts of files an installer is about to install (from a pip report or a pylock.toml), from
the index they come from: upload time and yanked from the PEP 691 page, PEP 740 provenance verified.

Whatever cannot be found is left unknown (`uploaded: null`, no attestations) or recorded as unverified
evidence, and the policy decides what that means; `notes` say why, for the report. What the document
itself claims (a lock's `upload-time`, its `attestation-identities`) is never taken as a fact.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import msgspec

from gate.facts import Ecosystem, Facts, FileFacts, FileKind, Unidentified, iso_z
from gate.gather.ports import Uncached, VulnerabilityLookup, no_vulnerabilities
from gate.gather.pypi import PypiFacts, ReadsAttestations, known_vulnerabilities, no_file
from gate.gather.releases import DEFAULT_RELEASE_HOST, ReleaseSource, release_evidence_for
from gate.sources.failure import UpstreamError
from gate.sources.filenames import python_file_facts
from gate.sources.hosts import HostPolicy
from gate.sources.planned import PlannedFile
from gate.sources.pypi import DEFAULT_UPSTREAM, ProjectPage, SimpleClient
from gate.verify.api import BundleVerifier


@dataclass(frozen=True)
class Gathered:
    """What gate found about a planned file: its facts (or why it cannot be judged), and notes for the report."""

    facts: Facts | Unidentified
    notes: tuple[str, ...] = field(default_factory=tuple)


def base_facts(planned: PlannedFile, index: str) -> FileFacts:
    """What the document alone says: name and version from the filename, its digest (which the installer
    checks). Never its upload time or size: a lock's `upload-time` and `size` are claims (an edit to the lock
    would defeat `minimumAge` or a size rule); only the index's own values become `file.uploaded`/`file.size`.
    A filename that is not a wheel or sdist (a direct install's URL or directory) is a `file` of the name the
    document gives."""
    sha256 = planned.sha256 or ""
    return python_file_facts(planned.filename, sha256, index=index) or FileFacts(
        ecosystem=Ecosystem.PYPI, name=planned.name, version=planned.version, filename=planned.filename,
        kind=FileKind.FILE, sha256=sha256, index=index,
    )


def _unconfirmed(planned: PlannedFile, why: str) -> tuple[str, ...]:
    """The note for a lock upload time the index did not confirm (none when the lock gave none)."""
    if planned.uploaded is None:
        return ()
    claimed = iso_z(planned.uploaded)
    return (f"upload time unknown: {why}, and the lock's upload-time {claimed} is only a claim",)


class IndexGatherer:
    """Fetches each project page once (upload time and yanked come from the index alone, whatever a lock
    says) and judges its row as the proxy does (`gate.gather.pypi`): provenance is verified only when a policy
    that governs the file reads attestations (`reads_attestations(ecosystem, name)`, as
    `Evaluator.reads_attestations`)."""

    def __init__(
        self,
        index_url: str | None,
        verifier: BundleVerifier,
        *,
        reads_attestations: ReadsAttestations,
        timeout: float = 20.0,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        vulnerabilities: VulnerabilityLookup = no_vulnerabilities,
        reads_history: ReadsAttestations = no_file,
        releases: tuple[Sequence[ReleaseSource], str] = ((), DEFAULT_RELEASE_HOST),
    ) -> None:
        self.index_url = index_url
        self.reads_history = reads_history
        sources, host = releases  # release provenance the policies point to, and the host it is fetched from
        self.releases = release_evidence_for(sources, host, timeout, Uncached(verifier))
        self.vulnerabilities = vulnerabilities
        self.cache = Uncached(verifier)
        self.reads_attestations = reads_attestations
        self.timeout = timeout
        self.clock = clock
        self._services: dict[str, tuple[SimpleClient, PypiFacts]] = {}
        self._pages: dict[tuple[str, str], ProjectPage | UpstreamError] = {}

    def _index(self, planned: PlannedFile) -> tuple[str, tuple[str, ...]]:
        """The index facts come from: the one gate was told to trust (`--index-url`, default PyPI), never one
        the document names (a lock pointing at a server of its own choosing would vouch for itself), and a
        note when the document names another."""
        index = self.index_url or DEFAULT_UPSTREAM
        named = planned.index
        if named and named.rstrip("/") != index.rstrip("/"):
            return index, (f"{planned.source} names index {named}; facts come from {index} (--index-url)",)
        return index, ()

    def _service(self, index: str) -> tuple[SimpleClient, PypiFacts]:
        if index not in self._services:
            client = SimpleClient(index, timeout=self.timeout, hosts=HostPolicy.for_upstreams([index]))
            facts = PypiFacts(client.base_url, client.fetch_provenance, self.cache, self.reads_attestations,
                              self.vulnerabilities, reads_history=self.reads_history, releases=self.releases)
            self._services[index] = client, facts
        return self._services[index]

    def _page(self, index: str, name: str) -> ProjectPage:
        key = (index, name)
        if key not in self._pages:
            try:
                page = self._service(index)[0].project(name).page
                assert page is not None  # no validators were sent, so no 304
                self._pages[key] = page
            except UpstreamError as err:
                self._pages[key] = err
        found = self._pages[key]
        if isinstance(found, UpstreamError):
            raise found
        return found

    def gather(self, planned: PlannedFile) -> Gathered:
        index, named = self._index(planned)
        gathered = self._gather(planned, index)
        return Gathered(gathered.facts, (*named, *gathered.notes)) if named else gathered

    def _gather(self, planned: PlannedFile, index: str) -> Gathered:
        """Facts from the index row when it can be found; else what the document says, with the OSV records of
        the release its filename names (a vulnerable pin is denied whether or not the index answers)."""
        gathered = self._from_index(planned, index)
        if isinstance(gathered.facts, Facts) and not gathered.facts.vulnerabilities:
            records = known_vulnerabilities(self.vulnerabilities, gathered.facts.file)
            if records:
                return Gathered(msgspec.structs.replace(gathered.facts, vulnerabilities=records), gathered.notes)
        return gathered

    def _from_index(self, planned: PlannedFile, index: str) -> Gathered:
        facts = base_facts(planned, self._service(index)[0].base_url)
        if planned.direct:
            direct = "direct URL or local install: no index facts"
            return Gathered(Facts(facts), (direct, *_unconfirmed(planned, "no index lists it")))
        if facts.kind is FileKind.FILE:  # not a wheel or sdist filename: the proxy hides such a row too
            reason = (
                f"{planned.filename} (named by {planned.source}) is not a valid wheel or sdist filename: gate "
                f"cannot tell which package it is (the document's name {planned.name!r} is only a claim); lock the "
                "file under the filename its index gives it"
            )
            return Gathered(Unidentified(Ecosystem.PYPI, facts.name, planned.filename, planned.sha256, reason))
        try:
            page = self._page(index, facts.name)
        except UpstreamError as err:
            return Gathered(Facts(facts), (f"index: {err}", *_unconfirmed(planned, "the index could not be asked")))
        rows = [row for row in page.files if row.filename == planned.filename]
        if not rows:
            unlisted = f"{planned.filename} is not listed on {index}"
            return Gathered(Facts(facts), (unlisted, *_unconfirmed(planned, "the index does not list it")))
        row = rows[0]
        if planned.sha256 and row.sha256 and row.sha256 != planned.sha256.lower():
            note = f"the index lists sha256 {row.sha256} for {planned.filename}, {planned.source} says {planned.sha256}"
            return Gathered(Facts(facts), (note,))
        found = self._service(index)[1].row(page, row, self.clock()).facts
        if isinstance(found, Facts) and found.file.uploaded is None:  # only the index's own time is a fact
            return Gathered(found, _unconfirmed(planned, "the index gives no upload time"))
        return Gathered(found)
