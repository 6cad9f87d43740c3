"""The typed facts a policy sees about one file (their CEL input document: `gate.policy.activation`).

Facts are gathered by `gate.sources` and `gate.verify`; policies only ever read them. A failed
verification is a fact (`verified=False` with an `error`), never an exception; it is kept for the report,
but rules see only verified evidence (`visible_attestations`).
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

import msgspec
from msgspec.structs import asdict


class Ecosystem(StrEnum):
    """Where a file comes from; `generic` is any other file checked with a plain Sigstore bundle."""

    PYPI = "pypi"
    CONDA = "conda"
    GENERIC = "generic"


class FileKind(StrEnum):
    WHEEL = "wheel"
    SDIST = "sdist"
    CONDA = "conda"
    FILE = "file"


MAX_WORKFLOW_INPUTS = 32  # workflow inputs of one SLSA provenance a rule may read (as many as claims)

# The OIDC issuers of the trusted publishers PEP 740 knows, and the prefix of every certificate identity
# (SAN) each issues (None: the identity is an email address).
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
GITLAB_ISSUER = "https://gitlab.com"
GOOGLE_ISSUER = "https://accounts.google.com"
PUBLISHER_ISSUERS = {"GitHub": GITHUB_ISSUER, "GitLab": GITLAB_ISSUER, "Google": GOOGLE_ISSUER}
IDENTITY_PREFIXES: dict[str, str | None] = {
    GITHUB_ISSUER: "https://github.com/",
    GITLAB_ISSUER: "https://gitlab.com/",
    GOOGLE_ISSUER: None,
}


# Facts and decisions are frozen msgspec Structs: the proxy makes several for every file of every page,
# and a Struct is built several times faster than a frozen dataclass. None can be part of a reference
# cycle (they hold strings, numbers, times, enums, string maps and each other), so `gc=False` keeps them
# out of the garbage collector's passes.


class Publisher(msgspec.Struct, frozen=True, gc=False):
    """A trusted publisher as PEP 740 names it, derived from verified certificate claims."""

    kind: str
    repository: str | None = None
    workflow: str | None = None
    environment: str | None = None
    workflowFilepath: str | None = None  # noqa: N815 (PEP 740 / policy field name)
    email: str | None = None


class AttestationFact(msgspec.Struct, frozen=True, gc=False):
    """One piece of evidence (one Sigstore bundle) and what verifying it established."""

    verified: bool
    source: str
    error: str | None = None
    predicateType: str | None = None  # noqa: N815
    issuer: str | None = None
    identity: str | None = None
    publisher: Publisher | None = None
    claims: dict[str, str] = {}
    integratedTime: dt.datetime | None = None  # noqa: N815
    targetChannel: str | None = None  # noqa: N815
    # the earliest time the verification established for this bundle: a Rekor integrated time bound by an
    # inclusion promise, or an RFC 3161 timestamp from a trusted timestamp authority (None: unverified)
    signedTime: dt.datetime | None = None  # noqa: N815
    # SLSA provenance (`gate.verify.intoto`): set only where the signing certificate confirms the predicate
    builderId: str | None = None  # noqa: N815
    sourceUri: str | None = None  # noqa: N815 (github.com/OWNER/REPO, as slsa-verifier's --source-uri)
    sourceRef: str | None = None  # noqa: N815
    sourceDigest: str | None = None  # noqa: N815
    sourceBranch: str | None = None  # noqa: N815
    workflowInputs: dict[str, str] = {}  # noqa: N815 (at most MAX_WORKFLOW_INPUTS)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["publisher"] = None if self.publisher is None else asdict(self.publisher)
        out["claims"] = dict(self.claims)
        out["workflowInputs"] = dict(self.workflowInputs)
        out["integratedTime"] = _iso(self.integratedTime)
        out["signedTime"] = _iso(self.signedTime)
        return out


class FileFacts(msgspec.Struct, frozen=True, gc=False):
    """What is known about a distribution file apart from its attestations."""

    ecosystem: Ecosystem
    name: str
    version: str
    filename: str
    kind: FileKind
    sha256: str
    size: int | None = None
    index: str | None = None
    uploaded: dt.datetime | None = None
    uploadedFrom: str | None = None  # noqa: N815 (which index field gave `uploaded`)
    yanked: bool = False
    prerelease: bool = False
    subdir: str | None = None
    build: str | None = None
    # the earliest verified signed time of the file's own verified evidence (`AttestationFact.signedTime`),
    # set when its evidence was gathered; `signedFrom` says which source gave it
    signedTime: dt.datetime | None = None  # noqa: N815
    signedFrom: str | None = None  # noqa: N815 (transparency-log | timestamp-authority)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ecosystem"] = self.ecosystem.value
        out["kind"] = self.kind.value
        out["uploaded"] = _iso(self.uploaded)
        out["signedTime"] = _iso(self.signedTime)
        return out


class Vulnerability(msgspec.Struct, frozen=True, gc=False):
    """One OSV record that applies to a file's name and version (`gate.sources.osv`): a known vulnerability,
    or a report that the release is malicious (`malicious`, e.g. an OpenSSF `MAL-` record)."""

    id: str
    aliases: tuple[str, ...] = ()
    summary: str = ""
    severity: float | None = None  # the CVSS base score computed from the record's v4 or v3 vector
    severityLabel: str | None = None  # noqa: N815 (the database's own label: database_specific.severity)
    fixed: tuple[str, ...] = ()  # the versions that fix it (ECOSYSTEM ranges' `fixed` events)
    malicious: bool = False
    published: dt.datetime | None = None
    modified: dt.datetime | None = None


class LineRelease(msgspec.Struct, frozen=True, gc=False):
    """The release that sets the provenance bar for a file (`Continuity`): the newest earlier release of its
    line with verified provenance, when its files were uploaded (the latest, None: the index gives no time),
    and the distinct publishers of their verified provenance."""

    version: str
    uploaded: dt.datetime | None = None
    publishers: tuple[Publisher, ...] = ()


class Continuity(msgspec.Struct, frozen=True, gc=False):
    """A file's release history as `spec.continuity` judges it (`gate.gather.history`): for each kind of line
    (`minor`, `major`, `project`), the release that sets the bar (None: no earlier release of the line had
    verified provenance; rules see a release with no `publishers`). A line with no earlier release at all is
    held to the project's bar (a new major line must not start with weaker provenance). `known: false` when
    the history could not be established, and `reason` says why (no index, an earlier release's provenance
    could not be fetched, too many)."""

    known: bool
    reason: str | None = None
    minor: LineRelease | None = None
    major: LineRelease | None = None
    project: LineRelease | None = None
    release: LineRelease | None = None  # the file's own release: its files uploaded earlier with provenance


NO_HISTORY = Continuity(
    known=False,
    reason="gate has no index history for it (a local file or a gate test case has none; a pip report, "
    "requirements or pylock.toml is checked against its index)",
)


class Facts(msgspec.Struct, frozen=True, gc=False):
    """Everything a policy is evaluated against for one file."""

    file: FileFacts
    attestations: tuple[AttestationFact, ...] = ()
    vulnerabilities: tuple[Vulnerability, ...] = ()  # OSV records that apply (none when no --osv data)
    continuity: Continuity = NO_HISTORY  # gathered only when a policy that governs the file reads it


class Unidentified(msgspec.Struct, frozen=True, gc=False):
    """A file gate cannot name: a distribution filename no parser accepts, or an index record that
    contradicts its filename. No policy can select what has no name, so it is denied (`gate.unjudgeable`)."""

    ecosystem: Ecosystem
    name: str
    filename: str
    sha256: str | None
    reason: str


def parse_time(text: str) -> dt.datetime:
    """An ISO 8601 time as gate reads every one it is given (`Z` allowed; no zone means UTC); raises
    ValueError. A date alone is midnight UTC."""
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    try:
        return aware(value)
    except ValueError:  # said with the text as it was written
        raise ValueError(f"{text[:40]!r} is outside the years 1 to 9999 in UTC") from None


def aware(value: dt.datetime) -> dt.datetime:
    """`value` with a zone (none means UTC); ValueError when it is outside the years 1 to 9999 once in UTC
    (`9999-12-31T23:00-14:00`), which would overflow wherever it is compared or written as UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    try:
        value.astimezone(dt.UTC)
    except OverflowError as err:
        raise ValueError(f"{value.isoformat()!r} is outside the years 1 to 9999 in UTC") from err
    return value


def iso_z(moment: dt.datetime) -> str:
    """A time as RFC 3339 in UTC with a `Z` (how PyPI writes `upload-time`; every JSON gate writes)."""
    if moment.tzinfo is dt.UTC:  # what the parsers give for "Z" and "+00:00": already in UTC
        return moment.isoformat()[:-6] + "Z"  # drops "+00:00"
    return moment.astimezone(dt.UTC).replace(tzinfo=None).isoformat() + "Z"


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else iso_z(value)


def visible_attestations(attestations: tuple[AttestationFact, ...]) -> tuple[AttestationFact, ...]:
    """The evidence rules may read: verified only. A bundle that did not verify carries an identity, issuer,
    publisher, claims and predicate type chosen by whoever made it; no rule, however written, may see them.
    (The report still lists every rejected bundle with its reason.)"""
    return tuple(a for a in attestations if a.verified)


# The severity bands of `spec.vulnerabilities.maxSeverity`, lowest first. A record's band comes from its CVSS
# base score when it has one (low < 4.0 <= medium < 7.0 <= high < 9.0 <= critical), else from the database's
# label; a malicious-package report is critical, and a record with neither a score nor a known label `unknown`.
SEVERITY_BANDS = ("low", "medium", "high", "critical")
UNKNOWN_BAND = "unknown"
_LABEL_BANDS = {"LOW": "low", "MODERATE": "medium", "MEDIUM": "medium", "HIGH": "high", "CRITICAL": "critical"}


def severity_band(vulnerability: Vulnerability) -> str:
    """The band of a record: `low`, `medium`, `high`, `critical` or `unknown` (see SEVERITY_BANDS)."""
    if vulnerability.malicious:
        return "critical"
    score = vulnerability.severity
    if score is not None:
        return "critical" if score >= 9.0 else "high" if score >= 7.0 else "medium" if score >= 4.0 else "low"
    return _LABEL_BANDS.get((vulnerability.severityLabel or "").strip().upper(), UNKNOWN_BAND)


def describe_vulnerability(vulnerability: Vulnerability) -> str:
    """`GHSA-... (medium 5.6, fixed in 2.32.0)`: the id, band and score, and the versions that fix it."""
    band = "malicious" if vulnerability.malicious else severity_band(vulnerability)
    score = vulnerability.severity
    shown = f" {score:.1f}" if score is not None and not vulnerability.malicious else ""
    fixed = f"fixed in {', '.join(vulnerability.fixed)}" if vulnerability.fixed else "no fixed version"
    return f"{vulnerability.id} ({band}{shown}, {fixed})"


def vulnerability_json(vulnerability: Vulnerability) -> dict[str, Any]:
    """A record as reports write it: its fields (times in RFC 3339) and its `band`."""
    out: dict[str, Any] = msgspec.to_builtins(vulnerability)
    out["published"], out["modified"] = _iso(vulnerability.published), _iso(vulnerability.modified)
    out["band"] = severity_band(vulnerability)
    return out


def earliest_signed(attestations: tuple[AttestationFact, ...]) -> tuple[dt.datetime | None, str | None]:
    """The earliest verified signed time of verified evidence, and its source (`transparency-log` when a Rekor
    integrated time gave it, else `timestamp-authority`); (None, None) when there is none."""
    times = [a for a in visible_attestations(attestations) if a.signedTime is not None]
    if not times:
        return None, None
    first = min(times, key=lambda a: a.signedTime or dt.datetime.max.replace(tzinfo=dt.UTC))
    source = "transparency-log" if first.integratedTime == first.signedTime else "timestamp-authority"
    return first.signedTime, source


def with_signed_time(file: FileFacts, attestations: tuple[AttestationFact, ...]) -> FileFacts:
    """`file` with the earliest verified signed time of its verified evidence, and its source (unchanged when
    the evidence has none)."""
    signed, source = earliest_signed(attestations)
    return file if signed is None else msgspec.structs.replace(file, signedTime=signed, signedFrom=source)
