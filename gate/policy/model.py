"""The validated policy model, built from a raw document that passed the schema.

Checks the schema cannot express (durations, regexes, dates, version specifiers, waived rule names)
happen here, and every problem is collected with its path.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

from packaging.version import Version

from gate.errors import Finding, Issue
from gate.facts import Ecosystem, FileFacts
from gate.policy import patterns
from gate.policy.duration import parse_duration
from gate.policy.load import Path_, RawPolicy, format_path

if TYPE_CHECKING:
    from packaging.specifiers import SpecifierSet

T = TypeVar("T")

# Rule names the structured fields compile to; `waive` may name one of these, a group, or a custom rule.
STRUCTURED_RULES = (
    "minimumAge",
    "minimumAge.backdating",
    "continuity",
    "attestations.required",
    "attestations.signers",
    "attestations.predicateTypes",
    "attestations.targetChannel",
    "attestations.slsa",
    "vulnerabilities.malicious",
    "vulnerabilities.maxSeverity",
)


def names_rule(name: str, rule: str) -> bool:
    """Whether `name` (as `waive` or a test expectation writes it) is `rule` or a group of it:
    `attestations` names `attestations.signers`."""
    return rule == name or rule.startswith(name + ".")


class Mode(StrEnum):
    ENFORCE = "enforce"
    AUDIT = "audit"


@dataclass(frozen=True)
class Match:
    """Which files a policy governs; a missing list matches everything."""

    ecosystems: frozenset[Ecosystem] | None = None
    packages: tuple[patterns.PackagePattern, ...] = ()
    exclude: tuple[patterns.PackagePattern, ...] = ()

    def applies(self, file: FileFacts) -> bool:
        if self.ecosystems is not None and file.ecosystem not in self.ecosystems:
            return False
        if self.packages and not any(p.matches(file.name, file.ecosystem) for p in self.packages):
            return False
        return not any(p.matches(file.name, file.ecosystem) for p in self.exclude)


class TimeSource(StrEnum):
    """Where a file's age is measured from: the index's upload time, or the earliest verified signed time of
    the file's own verified evidence (a Rekor integrated time or an RFC 3161 timestamp)."""

    INDEX = "index"
    TRANSPARENCY_LOG = "transparencyLog"


@dataclass(frozen=True)
class MinimumAge:
    age: dt.timedelta
    allow_unknown: bool = False
    time_sources: tuple[TimeSource, ...] = (TimeSource.INDEX,)  # the first that knows wins
    backdating: dt.timedelta | None = None  # deny an upload time this much earlier than the signed time


class Line(StrEnum):
    """Which earlier releases count for `spec.continuity` (PEP 440 release segments, epoch included)."""

    MAJOR = "major"
    MINOR = "minor"
    PROJECT = "project"


@dataclass(frozen=True)
class ContinuityRule:
    """`spec.continuity`: a release may not have weaker verified provenance than its line had."""

    within: Line = Line.MAJOR
    ignore_after: dt.timedelta | None = None  # an earlier release uploaded this long before no longer counts
    allow_unknown: bool = False  # `whenUnknown: allow`: a file whose history is unknown (a local file) passes


@dataclass(frozen=True, kw_only=True)
class IdentitySigner:
    """A signer named by its certificate: the identity (SAN) and the OIDC issuer that vouched for it."""

    identity: patterns.Pattern
    issuer: patterns.Pattern


@dataclass(frozen=True, kw_only=True)
class PublisherSigner:
    """A signer named as a trusted publisher: its kind (`GitHub`, `GitLab`, `Google`) and the fields its
    publisher must have (`repository`, `workflow`, `environment`, `workflowFilepath`, `email`), as written."""

    kind: str
    fields: tuple[tuple[str, patterns.Pattern], ...] = ()


Signer = IdentitySigner | PublisherSigner


@dataclass(frozen=True)
class Slsa:
    """`attestations.slsa`: slsa-verifier's options, as patterns over the facts of SLSA provenance
    (`gate.verify.intoto`); `written` keeps each as the policy wrote it, for messages."""

    source_uri: patterns.Pattern | None = None  # over `github.com/OWNER/REPO`
    source_tag: patterns.Pattern | None = None  # over the ref, `refs/tags/<tag>`
    source_branch: patterns.Pattern | None = None  # over the branch, `refs/heads/<branch>`
    builder_id: patterns.Pattern | None = None
    written: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Attestations:
    required: bool = True
    predicate_types: tuple[str, ...] = ()
    signers: tuple[Signer, ...] = ()
    target_channel: str | None = None  # "match" or a channel URL
    slsa: Slsa | None = None


@dataclass(frozen=True)
class ReleaseSource:
    """`spec.evidence.githubReleases`: the GitHub repository whose release `tag` (with `{version}` replaced by
    the file's version) carries the provenance of a PyPI project's files as the asset `asset`."""

    project: str  # normalized (PEP 503)
    repository: str  # OWNER/REPO
    tag: str = "{version}"
    asset: str = "multiple.intoto.jsonl"


MAX_IGNORED_IDS = 1000  # distinct record ids one policy's `spec.vulnerabilities.ignore` may name


@dataclass(frozen=True)
class VulnerabilityIgnore:
    """Known vulnerabilities (OSV record ids, or any of their aliases) a policy accepts until it expires."""

    ids: frozenset[str]
    reason: str
    owner: str | None
    expires: dt.datetime  # the first moment it no longer applies
    until: str  # as the policy wrote it

    def covers(self, record_id: str, aliases: tuple[str, ...], now: dt.datetime) -> bool:
        return now < self.expires and (record_id in self.ids or not self.ids.isdisjoint(aliases))


@dataclass(frozen=True)
class Vulnerabilities:
    """`spec.vulnerabilities`: the highest severity band allowed (None: severity is not judged; `none`: no
    known vulnerability at all), whether a malicious-package report denies, and the records accepted."""

    max_severity: str | None = None  # none | low | medium | high | critical
    deny_malicious: bool = True
    ignore: tuple[VulnerabilityIgnore, ...] = ()


@dataclass(frozen=True)
class PackageSelector:
    """A package glob with an optional version specifier, as in `legacy-lib<2`."""

    name: patterns.PackagePattern
    versions: SpecifierSet | None = None

    def applies(self, file: FileFacts) -> bool:
        if not self.name.matches(file.name, file.ecosystem):
            return False
        if self.versions is None:
            return True
        try:
            return Version(file.version) in self.versions
        except ValueError:  # InvalidVersion, or more digits than int() converts
            return False


@dataclass(frozen=True)
class PolicyException:
    """Waives named rules for some packages until it expires."""

    packages: tuple[PackageSelector, ...]
    waive: tuple[str, ...]
    reason: str
    owner: str | None
    expires: dt.datetime  # the first moment it no longer applies
    until: str  # `expires` as the policy wrote it (a date waives through that day), for messages

    def applies(self, file: FileFacts, now: dt.datetime) -> bool:
        return now < self.expires and any(sel.applies(file) for sel in self.packages)

    def waives(self, rule: str) -> bool:
        return any(names_rule(w, rule) for w in self.waive)


@dataclass(frozen=True)
class CustomRule:
    name: str
    expression: str
    message: str
    path: Path_  # of its expression in the document


@dataclass(frozen=True)
class Policy:
    name: str
    file: str
    mode: Mode
    match: Match
    minimum_age: MinimumAge | None
    attestations: Attestations | None
    exceptions: tuple[PolicyException, ...]
    rules: tuple[CustomRule, ...]
    raw: RawPolicy
    vulnerabilities: Vulnerabilities | None = None
    continuity: ContinuityRule | None = None
    releases: tuple[ReleaseSource, ...] = ()  # spec.evidence.githubReleases


class _Builder:
    """Builds one Policy, collecting issues instead of stopping at the first."""

    def __init__(self, raw: RawPolicy) -> None:
        self.raw = raw
        self.issues: list[Finding] = []

    def issue(self, code: str, path: Path_, message: str) -> None:
        self.issues.append(Finding(code, Issue(format_path(path), message, self.raw.file, self.raw.line_of(path))))

    def attempt(self, code: str, path: Path_, make: Callable[[], T]) -> T | None:
        try:
            return make()
        except ValueError as err:  # InvalidSpecifier is a ValueError
            self.issue(code, path, str(err))
            return None

    def pattern(self, path: Path_, value: Any) -> patterns.Pattern | None:
        if isinstance(value, dict):
            return self.attempt("regex", path, lambda: patterns.regex(value["regex"]))
        return patterns.glob(str(value))

    def match(self, raw: dict[str, Any]) -> Match:
        ecosystems = raw.get("ecosystems")
        return Match(
            ecosystems=None if ecosystems is None else frozenset(Ecosystem(e) for e in ecosystems),
            packages=tuple(patterns.package_glob(p) for p in raw.get("packages", [])),
            exclude=tuple(patterns.package_glob(p) for p in raw.get("exclude", [])),
        )

    def minimum_age(self, raw: Any) -> MinimumAge | None:
        path: Path_ = ("spec", "minimumAge")
        sources: tuple[TimeSource, ...] = (TimeSource.INDEX,)
        backdating = None
        if isinstance(raw, dict):
            age = self.attempt("duration", (*path, "age"), lambda: parse_duration(raw["age"]))
            allow = raw.get("whenUnknown", "deny") == "allow"
            sources = tuple(dict.fromkeys(TimeSource(s) for s in raw.get("timeSources", ["index"])))
            if "backdating" in raw:
                tolerance = raw["backdating"]
                backdating = self.attempt("duration", (*path, "backdating"), lambda: parse_duration(tolerance))
                if backdating is None:
                    return None
        else:
            age, allow = self.attempt("duration", path, lambda: parse_duration(str(raw))), False
        if age is None:
            return None
        return MinimumAge(age=age, allow_unknown=allow, time_sources=sources, backdating=backdating)

    def continuity(self, raw: dict[str, Any]) -> ContinuityRule | None:
        """None when `noDowngrade` is false (nothing is judged)."""
        if not raw.get("noDowngrade", True):
            return None
        ignore_after = None
        if "ignoreAfter" in raw:
            path: Path_ = ("spec", "continuity", "ignoreAfter")
            ignore_after = self.attempt("duration", path, lambda: parse_duration(raw["ignoreAfter"]))
        return ContinuityRule(
            within=Line(raw.get("within", "major")), ignore_after=ignore_after,
            allow_unknown=raw.get("whenUnknown", "deny") == "allow",
        )

    def signer(self, index: int, raw: dict[str, Any]) -> Signer | None:
        path: Path_ = ("spec", "attestations", "signers", index)
        if "publisher" in raw:
            pub = raw["publisher"]
            fields = []
            for key, value in pub.items():
                if key == "kind":
                    continue
                pattern = self.pattern((*path, "publisher", key), value)
                if pattern is not None:
                    fields.append((key, pattern))
            return PublisherSigner(kind=pub["kind"], fields=tuple(fields))
        identity = self.pattern((*path, "identity"), raw["identity"])
        issuer = self.pattern((*path, "issuer"), raw["issuer"])
        if identity is None or issuer is None:
            return None
        return IdentitySigner(identity=identity, issuer=issuer)

    def attestations(self, raw: dict[str, Any]) -> Attestations:
        signers = [self.signer(i, s) for i, s in enumerate(raw.get("signers", []))]
        target = raw.get("targetChannel")
        if target is not None and target != "match" and not re.match(r"^[a-z][a-z0-9+.-]*://", target):
            message = f"must be 'match' or a channel URL, got {target!r}"
            self.issue("schema", ("spec", "attestations", "targetChannel"), message)
        return Attestations(
            required=raw.get("required", True),
            predicate_types=tuple(raw.get("predicateTypes", [])),
            signers=tuple(s for s in signers if s is not None),
            target_channel=None if target is None else target.rstrip("/"),
            slsa=self.slsa(raw["slsa"]) if "slsa" in raw else None,
        )

    def slsa(self, raw: dict[str, Any]) -> Slsa:
        path: Path_ = ("spec", "attestations", "slsa")
        made = {
            key: self.attempt("regex", (*path, key), functools.partial(patterns.slsa_pattern, key, value))
            for key, value in raw.items()
        }
        written = tuple((k, v if isinstance(v, str) else f"regex:{v['regex']}") for k, v in raw.items())
        get = made.get
        return Slsa(get("sourceUri"), get("sourceTag"), get("sourceBranch"), get("builderId"), written)

    def vulnerabilities(self, raw: dict[str, Any]) -> Vulnerabilities:
        ignore = []
        for i, entry in enumerate(raw.get("ignore", [])):
            path: Path_ = ("spec", "vulnerabilities", "ignore", i, "expires")
            text: str = entry["expires"]
            expires = self.attempt("expiry", path, functools.partial(parse_expiry, text))
            if expires is not None:
                ignore.append(VulnerabilityIgnore(
                    ids=frozenset(entry["ids"]), reason=entry["reason"], owner=entry.get("owner"), expires=expires,
                    until=text,
                ))
        if len({i for entry in ignore for i in entry.ids}) > MAX_IGNORED_IDS:  # each is CEL to compile at load
            message = f"the ignore entries name more than {MAX_IGNORED_IDS} ids; accept fewer records, for less time"
            self.issue("schema", ("spec", "vulnerabilities", "ignore"), message)
        return Vulnerabilities(
            max_severity=raw.get("maxSeverity"), deny_malicious=raw.get("malicious", "deny") == "deny",
            ignore=tuple(ignore),
        )

    def releases(self, raw: dict[str, Any]) -> tuple[ReleaseSource, ...]:
        out = []
        for project, written in raw.items():
            where = {"repository": written} if isinstance(written, str) else written  # the schema's patterns
            name = re.sub(r"[-_.]+", "-", project).lower()
            out.append(ReleaseSource(name, where["repository"], where.get("tag", "{version}"),
                                     where.get("asset", "multiple.intoto.jsonl")))
        return tuple(out)

    def selector(self, path: Path_, text: str) -> PackageSelector | None:
        return self.attempt("version-specifier", path, lambda: parse_selector(text))

    def exception(self, index: int, raw: dict[str, Any], rule_names: set[str]) -> PolicyException | None:
        path: Path_ = ("spec", "exceptions", index)
        selectors = [self.selector((*path, "packages", i), p) for i, p in enumerate(raw["packages"])]
        for i, name in enumerate(raw["waive"]):
            if not any(names_rule(name, r) for r in rule_names):
                message = f"no rule named {name!r}; rules: {', '.join(sorted(rule_names))}"
                self.issue("waive", (*path, "waive", i), message)
        expires = self.attempt("expiry", (*path, "expires"), lambda: parse_expiry(raw["expires"]))
        if expires is None or None in selectors:
            return None
        return PolicyException(
            packages=tuple(s for s in selectors if s is not None),
            waive=tuple(raw["waive"]),
            reason=raw["reason"],
            owner=raw.get("owner"),
            expires=expires,
            until=raw["expires"],
        )

    def build(self) -> Policy | None:
        data = self.raw.data
        spec: dict[str, Any] = data.get("spec") or {}
        rules = tuple(
            CustomRule(r["name"], r["expression"], r["message"], ("spec", "rules", i, "expression"))
            for i, r in enumerate(spec.get("rules", []))
        )
        seen: set[str] = set()
        for i, rule in enumerate(rules):
            if rule.name in seen or rule.name in STRUCTURED_RULES:
                self.issue("rule-name", ("spec", "rules", i, "name"), f"rule name {rule.name!r} is already used")
            seen.add(rule.name)
        rule_names = set(STRUCTURED_RULES) | seen
        policy = Policy(
            name=data["metadata"]["name"],
            file=self.raw.file,
            mode=Mode(spec.get("mode", "enforce")),
            match=self.match(spec.get("match") or {}),
            minimum_age=self.minimum_age(spec["minimumAge"]) if "minimumAge" in spec else None,
            attestations=self.attestations(spec["attestations"]) if "attestations" in spec else None,
            exceptions=tuple(
                e
                for i, raw in enumerate(spec.get("exceptions", []))
                if (e := self.exception(i, raw, rule_names)) is not None
            ),
            rules=rules,
            raw=self.raw,
            vulnerabilities=self.vulnerabilities(spec["vulnerabilities"]) if "vulnerabilities" in spec else None,
            continuity=self.continuity(spec["continuity"]) if "continuity" in spec else None,
            releases=self.releases((spec.get("evidence") or {}).get("githubReleases") or {}),
        )
        return None if self.issues else policy


def parse_selector(text: str) -> PackageSelector:
    """`legacy-lib`, `corp-*`, `legacy-lib<2`, `legacy-lib >=1, <2`; raise ValueError for a bad specifier."""
    found = re.match(r"^\s*([^<>=!~;\s]+)\s*(.*)$", text)
    name, spec = found.groups() if found else (text, "")
    if not spec:
        return PackageSelector(name=patterns.package_glob(name))
    from packaging.specifiers import SpecifierSet  # noqa: PLC0415 (version specifiers only for a selector with one)

    return PackageSelector(name=patterns.package_glob(name), versions=SpecifierSet(spec))


def parse_expiry(text: str) -> dt.datetime:
    """The first moment an exception no longer applies. A date in any ISO 8601 form (`2027-01-31`,
    `20270131`, `2027-W04-7`) means "valid through that day (UTC)"; a time is taken as given (UTC if it
    has no zone). Raise ValueError for anything else, or a time outside the years 1-9999."""
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        pass
    else:
        if day == dt.date.max:  # the day after is not representable: "through 9999-12-31" is forever
            return dt.datetime.max.replace(tzinfo=dt.UTC)
        return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC)
    try:
        value = dt.datetime.fromisoformat(text)
        return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)
    except ValueError as err:
        raise ValueError(f"invalid expiry {text[:40]!r}: expected YYYY-MM-DD or an ISO 8601 time") from err
    except OverflowError as err:
        raise ValueError(f"invalid expiry {text[:40]!r}: outside the years 1 to 9999 in UTC") from err


def build_policy(raw: RawPolicy) -> tuple[Policy | None, list[Finding]]:
    """The model of a schema-valid document, or the findings (issues with their codes) that prevent it."""
    builder = _Builder(raw)
    policy = builder.build()
    return policy, builder.issues
