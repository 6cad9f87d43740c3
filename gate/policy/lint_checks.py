"""Lint checks on a built policy: exceptions that expired, signers and matches that can never match."""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Iterator

from gate.errors import Finding, Issue, Level
from gate.facts import GITHUB_ISSUER, GITLAB_ISSUER, IDENTITY_PREFIXES, Ecosystem
from gate.policy import patterns
from gate.policy.compile import rule_sources
from gate.policy.load import Path_, format_path
from gate.policy.model import IdentitySigner, Policy, PublisherSigner, names_rule
from gate.policy.reach import can_start_with

_NAME_GLOB = re.compile(r"^[a-z0-9*?-]+$")
_REGEX_HINTS = (".*", ".+", "\\.", "^", "$", "[", "(", "|")


def _issue(policy: Policy, path: Path_, message: str, level: Level = Level.ERROR) -> Issue:
    return Issue(format_path(path), message, policy.file, policy.raw.line_of(path), level)


def _expiry(
    policy: Policy, path: Path_, expiry: tuple[dt.datetime, str], *, now: dt.datetime, soon: dt.timedelta, what: str
) -> Iterator[Finding]:
    """An error when `expiry` (the moment, as written) has passed, a warning when it is within `soon`."""
    expires, shown = expiry
    if expires <= now:
        yield Finding("expired-exception", _issue(policy, path, f"{what} expired on {shown}; remove or renew it"))
    elif expires - now <= soon:
        days = (expires - now).days
        message = f"{what} expires on {shown} (in {days} day{'s' if days != 1 else ''})"
        yield Finding("expiring-exception", _issue(policy, path, message, Level.WARNING))


def exception_issues(policy: Policy, now: dt.datetime, soon: dt.timedelta) -> Iterator[Finding]:
    """Expired exceptions (errors), exceptions expiring within `soon` (warnings), waivers of absent rules."""
    present = {source.name for source in rule_sources(policy)}
    ignores = policy.vulnerabilities.ignore if policy.vulnerabilities is not None else ()
    for index, ignore in enumerate(ignores):  # accepted vulnerabilities expire like exceptions
        where: Path_ = ("spec", "vulnerabilities", "ignore", index, "expires")
        yield from _expiry(policy, where, (ignore.expires, ignore.until), now=now, soon=soon, what="ignore")
    for index, exception in enumerate(policy.exceptions):
        path: Path_ = ("spec", "exceptions", index, "expires")
        yield from _expiry(policy, path, (exception.expires, exception.until), now=now, soon=soon,
                           what="exception")
        for i, waived in enumerate(exception.waive):
            if not any(names_rule(waived, r) for r in present):
                message = f"waives {waived!r}, but this policy has no such rule, so the waiver does nothing"
                at: Path_ = ("spec", "exceptions", index, "waive", i)
                yield Finding("waive", _issue(policy, at, message, Level.WARNING))


def _glob_hint(policy: Policy, path: Path_, pattern: patterns.Pattern | None) -> Iterator[Finding]:
    if (
        pattern is not None
        and pattern.is_glob
        and any(h in pattern.source for h in _REGEX_HINTS)
    ):
        message = f"{pattern.source!r} is a glob (only * and ? are special) but looks like a regex; use {{regex: ...}}"
        yield Finding("glob", _issue(policy, path, message, Level.WARNING))


def _identity_signer(policy: Policy, path: Path_, signer: IdentitySigner) -> Iterator[Finding]:
    yield from _glob_hint(policy, (*path, "identity"), signer.identity)
    yield from _glob_hint(policy, (*path, "issuer"), signer.issuer)
    issuer, identity = signer.issuer, signer.identity
    if not can_start_with(issuer.regex, "https://"):
        close = difflib.get_close_matches(issuer.source, list(IDENTITY_PREFIXES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        message = f"issuer {issuer.source!r} can never match: OIDC issuers are https:// URLs{hint}"
        yield Finding("signer", _issue(policy, (*path, "issuer"), message))
        return
    if not issuer.is_literal:
        return  # a pattern may match issuers whose identities have any form
    if issuer.source not in IDENTITY_PREFIXES:
        close = difflib.get_close_matches(issuer.source, list(IDENTITY_PREFIXES), n=1, cutoff=0.8)
        if close:
            message = f"issuer {issuer.source!r} is not a known issuer; did you mean {close[0]!r}?"
            yield Finding("signer", _issue(policy, (*path, "issuer"), message, Level.WARNING))
        return
    prefix = IDENTITY_PREFIXES[issuer.source]
    if prefix is not None and not can_start_with(identity.regex, prefix):
        message = (
            f"identity {identity.source!r} can never match: certificates from {issuer.source} "
            f"name a workflow URL starting with {prefix}"
        )
        yield Finding("signer", _issue(policy, (*path, "identity"), message))
    elif issuer.source in (GITHUB_ISSUER, GITLAB_ISSUER) and identity.is_literal and "@" not in identity.source:
        message = (
            f"identity {identity.source!r} can never match: certificates from {issuer.source} name the "
            "workflow with its ref (.../release.yml@refs/tags/v1); add @ref or use a glob (...@refs/tags/*)"
        )
        yield Finding("signer", _issue(policy, (*path, "identity"), message))


def _publisher_signer(policy: Policy, path: Path_, signer: PublisherSigner) -> Iterator[Finding]:
    for key, pattern in signer.fields:
        field: Path_ = (*path, "publisher", key)
        yield from _glob_hint(policy, field, pattern)
        if key == "repository" and re.match(r"^(https?:|(www\\?\.)?git(hub|lab)\\?\.com/)", pattern.source):
            message = (
                f"repository {pattern.source!r} can never match: it is owner/name (e.g. pypa/sampleproject), not a URL"
            )
            yield Finding("signer", _issue(policy, field, message))
        if key == "workflow" and pattern.is_literal and "/" in pattern.source:
            message = (
                f"workflow {pattern.source!r} can never match: it is the file name under .github/workflows "
                f"(e.g. {pattern.source.rsplit('/', 1)[-1]!r})"
            )
            yield Finding("signer", _issue(policy, field, message))


def signer_issues(policy: Policy) -> Iterator[Finding]:
    """Signers no verified attestation could ever satisfy."""
    if policy.attestations is None:
        return
    for index, signer in enumerate(policy.attestations.signers):
        path: Path_ = ("spec", "attestations", "signers", index)
        match signer:
            case IdentitySigner():
                yield from _identity_signer(policy, path, signer)
            case PublisherSigner():
                yield from _publisher_signer(policy, path, signer)


def _samples(pattern: patterns.Pattern) -> list[str]:  # a normalized (PyPI) name glob
    """Names a package glob matches, to test whether an exclude pattern covers all of them."""
    return [
        pattern.source.replace("*", fill).replace("?", one) for fill, one in (("", "x"), ("q7-z", "0"), ("abc", "k"))
    ]


def match_issues(policy: Policy) -> Iterator[Finding]:
    """Package globs that cannot match a normalized name, and matches that exclude everything."""
    match = policy.match
    for key, globs in (("packages", match.packages), ("exclude", match.exclude)):
        for index, package in enumerate(globs):
            pattern = package.pypi
            if not _NAME_GLOB.match(pattern.source):
                hint = "; version specifiers belong in exceptions" if re.search(r"[<>=!~]", pattern.source) else ""
                message = (
                    f"{pattern.source!r} can never match a package name (normalized names use only a-z, 0-9 "
                    f"and '-'; globs only * and ?){hint}"
                )
                yield Finding("glob", _issue(policy, ("spec", "match", key, index), message))
    included = [p.pypi for p in match.packages] or [patterns.glob("*")]
    live = [p for p in included if _NAME_GLOB.match(p.source)]
    if not live:
        if match.packages:
            yield Finding("match", _issue(policy, ("spec", "match", "packages"), "match selects no package"))
        return
    if all(any(all(e.pypi.matches(s) for s in _samples(p)) for e in match.exclude) for p in live):
        message = "match selects nothing: every package it includes is also excluded"
        yield Finding("match", _issue(policy, ("spec", "match", "exclude"), message))
    if policy.attestations is not None and policy.attestations.target_channel is not None:
        ecosystems = match.ecosystems
        if ecosystems is not None and Ecosystem.CONDA not in ecosystems:
            message = "targetChannel applies only to conda packages, which this policy does not match"
            yield Finding("match", _issue(policy, ("spec", "attestations", "targetChannel"), message, Level.WARNING))
