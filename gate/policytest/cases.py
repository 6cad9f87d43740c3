"""Load `*.gate-test.yaml` files: which policies they test, and each case's facts and expectations.

A case gives facts in the names policies use in CEL (`file.uploaded`, `predicateType`, `publisher`);
its attestations are *asserted*, not verified, so each one says `verified: true|false` explicitly.
A case may instead name a real artifact and its evidence, which go through real verification.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from gate.decision import Verdict
from gate.errors import Issue, PolicyError
from gate.facts import (
    NO_HISTORY,
    AttestationFact,
    Continuity,
    Ecosystem,
    FileFacts,
    FileKind,
    LineRelease,
    Publisher,
    Vulnerability,
    parse_time,
)
from gate.policy.load import load_file
from gate.policytest.schema import case_file_issues
from gate.sources.conda import conda_file_facts, is_conda_filename
from gate.sources.filenames import python_file_facts

SUFFIXES = (".gate-test.yaml", ".gate-test.yml")
ASSERTED = "asserted by the test case (not verified)"
_PLACEHOLDER_SHA256 = "0" * 64


@dataclass(frozen=True)
class Expectation:
    verdict: Verdict
    violations: tuple[str, ...] | None = None
    waived: tuple[str, ...] | None = None
    audit: tuple[str, ...] | None = None
    policies: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Artifact:
    """A real file whose facts come from `gate.sources.local`, evidence verified for real."""

    path: Path
    evidence: tuple[Path, ...] = ()
    uploaded: dt.datetime | None = None
    channel: str | None = None


@dataclass(frozen=True)
class PolicyCase:
    name: str
    file: str
    line: int | None
    now: dt.datetime
    expect: Expectation
    facts: FileFacts | None = None
    attestations: tuple[AttestationFact, ...] = ()
    vulnerabilities: tuple[Vulnerability, ...] = ()
    artifact: Artifact | None = None
    continuity: Continuity = NO_HISTORY


@dataclass(frozen=True)
class CaseFile:
    path: Path
    policies: tuple[Path, ...]
    cases: tuple[PolicyCase, ...] = field(default_factory=tuple)


def _from_filename(filename: str) -> tuple[FileKind, bool]:
    """The kind and prerelease flag gate's sources find in a filename (as `gate check` would); a name
    that is not a wheel, sdist or conda package is a plain file."""
    found: FileFacts | None
    if is_conda_filename(filename):
        try:
            found = conda_file_facts(filename, _PLACEHOLDER_SHA256)
        except ValueError:
            found = None
    else:
        found = python_file_facts(filename, _PLACEHOLDER_SHA256)
    return (found.kind, found.prerelease) if found is not None else (FileKind.FILE, False)


def asserted_file_facts(raw: dict[str, Any]) -> FileFacts:
    """The FileFacts a case's `file:` asserts, filling what a policy author would not bother to write."""
    ecosystem = Ecosystem(raw.get("ecosystem", "pypi"))
    version = str(raw["version"])
    name = canonicalize_name(raw["name"]) if ecosystem is Ecosystem.PYPI else str(raw["name"]).lower()
    default_name = {
        Ecosystem.PYPI: f"{name.replace('-', '_')}-{version}-py3-none-any.whl",
        Ecosystem.CONDA: f"{name}-{version}-0.conda",
        Ecosystem.GENERIC: name,
    }[ecosystem]
    filename = raw.get("filename", default_name)
    kind, prerelease = _from_filename(filename)
    uploaded = raw.get("uploaded")
    return FileFacts(
        ecosystem=ecosystem,
        name=name,
        version=version,
        filename=filename,
        kind=FileKind(raw["kind"]) if "kind" in raw else kind,
        sha256=raw.get("sha256", _PLACEHOLDER_SHA256),
        size=raw.get("size"),
        index=raw.get("index"),
        uploaded=None if uploaded is None else parse_time(uploaded),
        uploadedFrom=raw.get("uploadedFrom", "test case" if uploaded is not None else None),
        yanked=raw.get("yanked", False),
        prerelease=raw.get("prerelease", prerelease),
        subdir=raw.get("subdir"),
        build=raw.get("build"),
    )


def attestation_fact(raw: dict[str, Any]) -> AttestationFact:
    """An asserted attestation: exactly the fields the case gives, marked as coming from the case."""
    publisher = raw.get("publisher")
    integrated = raw.get("integratedTime")
    return AttestationFact(
        verified=raw["verified"],
        source=ASSERTED,
        error=raw.get("error"),
        predicateType=raw.get("predicateType"),
        issuer=raw.get("issuer"),
        identity=raw.get("identity"),
        publisher=None if publisher is None else Publisher(**publisher),
        claims=dict(raw.get("claims", {})),
        integratedTime=None if integrated is None else parse_time(integrated),
        targetChannel=raw.get("targetChannel"),
        signedTime=None if raw.get("signedTime") is None else parse_time(raw["signedTime"]),
    )


def _release(raw: dict[str, Any] | None) -> LineRelease | None:
    if raw is None:
        return None
    uploaded = raw.get("uploaded")
    return LineRelease(version=str(raw["version"]), uploaded=None if uploaded is None else parse_time(uploaded),
                       publishers=tuple(Publisher(**p) for p in raw["publishers"]))


def continuity_fact(raw: dict[str, Any] | None) -> Continuity:
    """The asserted release history (`spec.continuity`'s facts); none given: unknown, as for a local file."""
    if raw is None:
        return NO_HISTORY
    lines = {line: _release(raw.get(line)) for line in ("minor", "major", "project", "release")}
    return Continuity(known=raw.get("known", True), reason=raw.get("reason"), **lines)


def vulnerability_fact(raw: dict[str, Any]) -> Vulnerability:
    """An asserted OSV record that applies to the case's file (as `gate.sources.osv` would give it)."""
    published, modified, severity = raw.get("published"), raw.get("modified"), raw.get("severity")
    return Vulnerability(
        id=raw["id"],
        aliases=tuple(raw.get("aliases", ())),
        summary=raw.get("summary", ""),
        severity=None if severity is None else float(severity),
        severityLabel=raw.get("severityLabel"),
        fixed=tuple(raw.get("fixed", ())),
        malicious=bool(raw.get("malicious", False)),
        published=None if published is None else parse_time(published),
        modified=None if modified is None else parse_time(modified),
    )


def _names(raw: dict[str, Any], key: str) -> tuple[str, ...] | None:
    return tuple(raw[key]) if key in raw else None


def _case(raw: dict[str, Any], base: Path, file: str, line: int | None, now: dt.datetime | None) -> PolicyCase:
    expect_raw = raw["expect"]
    expect = Expectation(
        verdict=Verdict(expect_raw["verdict"]),
        violations=_names(expect_raw, "violations"),
        waived=_names(expect_raw, "waived"),
        audit=_names(expect_raw, "audit"),
        policies=_names(expect_raw, "policies"),
    )
    when = parse_time(raw["now"]) if "now" in raw else now
    if when is None:
        raise ValueError("no evaluation time: give `now:` in the case or at the top of the file")
    artifact = None
    if "artifact" in raw:
        uploaded = raw.get("uploaded")
        artifact = Artifact(
            path=base / raw["artifact"],
            evidence=tuple(base / e for e in raw.get("evidence", [])),
            uploaded=None if uploaded is None else parse_time(uploaded),
            channel=raw.get("channel"),
        )
    return PolicyCase(
        name=raw["name"],
        file=file,
        line=line,
        now=when,
        expect=expect,
        facts=asserted_file_facts(raw["file"]) if "file" in raw else None,
        attestations=tuple(attestation_fact(a) for a in raw.get("attestations", [])),
        vulnerabilities=tuple(vulnerability_fact(v) for v in raw.get("vulnerabilities", [])),
        artifact=artifact,
        continuity=continuity_fact(raw.get("continuity")),
    )


def default_policies(path: Path) -> Path:
    """Tests in `policies/tests/` test `policies/`; tests anywhere else test their own directory."""
    return path.parent.parent if path.parent.name == "tests" else path.parent


def load_case_file(path: Path) -> CaseFile:
    """One test file, validated; raises PolicyError with every problem and its line."""
    file = str(path)
    docs = load_file(path)
    if len(docs) != 1:
        raise PolicyError([Issue("", f"expected one YAML document, found {len(docs)}", file, 1)])
    doc = docs[0]
    issues = case_file_issues(doc)
    if issues:
        raise PolicyError(issues)
    data: dict[str, Any] = doc.data
    policies = tuple(path.parent / p for p in data.get("policies", [])) or (default_policies(path),)
    try:
        now = parse_time(data["now"]) if "now" in data else None
    except ValueError as err:
        raise PolicyError([Issue("now", str(err), file, doc.line_of(("now",)))]) from err
    cases = []
    errors = []
    for i, raw in enumerate(data["cases"]):
        line = doc.line_of(("cases", i))
        try:
            cases.append(_case(raw, path.parent, file, line, now))
        except ValueError as err:
            errors.append(Issue(f"cases[{i}]", str(err), file, line))
    if errors:
        raise PolicyError(errors)
    return CaseFile(path=path, policies=policies, cases=tuple(cases))


def discover(paths: list[Path]) -> Iterator[Path]:
    """Test files as given, and every `*.gate-test.yaml` below a directory (recursively, sorted)."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.name.lower().endswith(SUFFIXES) and p.is_file())
        elif path.is_file():
            yield path
        else:
            raise PolicyError([Issue("", "no such test file or directory", str(path))])
