"""Files an installer is about to install (from a pip report or a pylock.toml), and their facts from
the index they come from: upload time and yanked from the PEP 691 page, PEP 740 provenance verified.

Whatever cannot be found is left unknown (`uploaded: null`, no attestations) or recorded as unverified
evidence, and the policy decides what that means; `notes` say why, for the report. What the document
itself claims (a lock's `upload-time`, its `attestation-identities`) is never taken as a fact.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from msgspec.structs import replace

from gate.facts import AttestationFact, Ecosystem, Facts, FileFacts, FileKind, Unidentified, iso_z
from gate.sources.hosts import HostPolicy
from gate.sources.http import UpstreamError
from gate.sources.local import ReadsAttestations, python_file_facts
from gate.sources.pypi import DEFAULT_UPSTREAM, ProjectPage, SimpleClient
from gate.verify.evidence import unverified, verify_evidence
from gate.verify.sigstore import BundleVerifier, Target


@dataclass(frozen=True)
class PlannedFile:
    """One distribution file named by a report or lock, with what that document says about it."""

    name: str
    version: str
    filename: str
    sha256: str | None
    source: str  # the document that names it
    line: int | None = None
    index: str | None = None  # simple API base URL the document names (a claim: facts come from --index-url)
    uploaded: dt.datetime | None = None  # a lock's `upload-time`: a claim, reported, never `file.uploaded`
    size: int | None = None
    identities: tuple[dict[str, str], ...] = ()  # a lock's `attestation-identities` (PEP 740 publishers)
    direct: bool = False  # a direct URL, VCS or local directory install: no index row exists


@dataclass(frozen=True)
class Gathered:
    facts: Facts
    notes: tuple[str, ...] = field(default_factory=tuple)
    unidentified: Unidentified | None = None  # set when the filename names no package: denied, never judged


def base_facts(planned: PlannedFile, index: str) -> FileFacts:
    """What the document alone says: name and version from the filename, its digest (which the installer
    checks). Never its upload time or size: a lock's `upload-time` and `size` are claims (an edit to the lock
    would defeat `minimumAge` or a size rule); only the index's own values become `file.uploaded`/`file.size`."""
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
    says); verifies a file's provenance only when a policy that governs it reads
    attestations (`reads_attestations(ecosystem, name)`, as `Evaluator.reads_attestations`)."""

    def __init__(
        self,
        index_url: str | None,
        verifier: BundleVerifier,
        *,
        reads_attestations: ReadsAttestations,
        timeout: float = 20.0,
    ) -> None:
        self.index_url = index_url
        self.verifier = verifier
        self.reads_attestations = reads_attestations
        self.timeout = timeout
        self._clients: dict[str, SimpleClient] = {}
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

    def _page(self, index: str, name: str) -> ProjectPage:
        key = (index, name)
        if key not in self._pages:
            client = self._clients.setdefault(
                index, SimpleClient(index, timeout=self.timeout, hosts=HostPolicy.for_upstreams([index]))
            )
            try:
                page = client.project(name).page
                assert page is not None  # no validators were sent, so no 304
                self._pages[key] = page
            except UpstreamError as err:
                self._pages[key] = err
        found = self._pages[key]
        if isinstance(found, UpstreamError):
            raise found
        return found

    def _provenance(self, index: str, url: str, facts: FileFacts) -> tuple[AttestationFact, ...]:
        client = self._clients[index]
        try:
            data = client.fetch_provenance(url)
        except UpstreamError as err:
            return (unverified(url, f"fetch: {err}"),)
        if data is None:
            return ()
        target = Target(filename=facts.filename, sha256=facts.sha256, ecosystem=Ecosystem.PYPI)
        return tuple(verify_evidence(data, url, target, self.verifier))

    def gather(self, planned: PlannedFile) -> Gathered:
        index, named = self._index(planned)
        gathered = self._gather(planned, index)
        if named:
            return Gathered(gathered.facts, (*named, *gathered.notes), gathered.unidentified)
        return gathered

    def _gather(self, planned: PlannedFile, index: str) -> Gathered:
        facts = base_facts(planned, index)
        if planned.direct:
            direct = "direct URL or local install: no index facts"
            return Gathered(Facts(facts), (direct, *_unconfirmed(planned, "no index lists it")))
        if facts.kind is FileKind.FILE:  # not a wheel or sdist filename: the proxy hides such a row too
            reason = (
                f"{planned.filename} (named by {planned.source}) is not a valid wheel or sdist filename: gate "
                f"cannot tell which package it is (the document's name {planned.name!r} is only a claim); lock the "
                "file under the filename its index gives it"
            )
            found = Unidentified(Ecosystem.PYPI, facts.name, planned.filename, planned.sha256, reason)
            return Gathered(Facts(facts), (), found)
        try:
            page = self._page(index, facts.name)
        except UpstreamError as err:
            return Gathered(Facts(facts), (f"index: {err}", *_unconfirmed(planned, "the index could not be asked")))
        row = page.file(planned.filename)
        if row is None:
            unlisted = f"{planned.filename} is not listed on {index}"
            return Gathered(Facts(facts), (unlisted, *_unconfirmed(planned, "the index does not list it")))
        if planned.sha256 and row.sha256 and row.sha256 != planned.sha256.lower():
            note = f"the index lists sha256 {row.sha256} for {planned.filename}, {planned.source} says {planned.sha256}"
            return Gathered(Facts(facts), (note,))
        # only the index's own upload time is `file.uploaded`; the lock's is never used
        notes: tuple[str, ...] = ()
        if row.upload_time is not None:
            facts = replace(facts, uploaded=row.upload_time, uploadedFrom="upload-time")
        else:
            notes = _unconfirmed(planned, "the index gives no upload time")
        facts = replace(facts, yanked=row.yanked is not False, size=row.size,
                        sha256=facts.sha256 or row.sha256 or "")
        attestations: tuple[AttestationFact, ...] = ()
        if row.provenance is not None and facts.sha256 and self.reads_attestations(facts.ecosystem, facts.name):
            attestations = self._provenance(index, row.provenance, facts)
        return Gathered(Facts(facts, attestations), notes)
