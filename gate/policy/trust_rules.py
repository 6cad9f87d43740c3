"""The rules gate makes of trust over time (issue 15): `continuity` (a release may not have weaker verified
provenance than the earlier release of its line that sets the bar), `minimumAge` measured from its
`timeSources` (the index's upload time, or the earliest verified signed time of the file's own evidence),
and `minimumAge.backdating` (an index upload time much earlier than the verified signed time).

Each is built as CEL and as its native check from the same model object, as `gate.policy.vuln_rules` does;
tests/policy/test_native.py holds each native check to its CEL. The per-file messages say what the file and
the release that sets the bar showed, and what would change the outcome.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from gate.facts import AttestationFact, Ecosystem, Facts, LineRelease, Publisher, earliest_signed, visible_attestations
from gate.policy.duration import format_duration
from gate.policy.model import ContinuityRule, MinimumAge, TimeSource
from gate.policy.native import RuleResult, beyond_budget, not_evaluated

CONTINUITY_RULE = "continuity"
BACKDATING_RULE = "minimumAge.backdating"
PUBLISHER_FIELDS = ("kind", "repository", "workflow", "workflowFilepath", "email")  # environment: when set


def _duration(value: dt.timedelta) -> str:
    return f'duration("{int(value.total_seconds())}s")'


def _budget(facts: Facts) -> str | None:
    visible = visible_attestations(facts.attestations)
    return beyond_budget(len(visible), (len(a.claims) for a in visible))


# --------------------------------------------------------------------------------------------------
# minimumAge from its time sources

_SIGNED = "attestations.exists(a, a.signedTime != null)"


def age_expression(minimum: MinimumAge) -> str:
    """The CEL of `minimumAge`: the first time source that knows the file's time decides; none knows: the
    file passes only with `whenUnknown: allow`. The transparency log's time is the earliest verified signed
    time of the file's verified evidence (old enough when any verified signed time is)."""
    age = _duration(minimum.age)
    known = {TimeSource.INDEX: "file.uploaded != null", TimeSource.TRANSPARENCY_LOG: _SIGNED}
    signed_old = f"attestations.exists(a, a.signedTime != null && now - a.signedTime >= {age})"
    old = {TimeSource.INDEX: f"now - file.uploaded >= {age}", TimeSource.TRANSPARENCY_LOG: signed_old}
    if TimeSource.TRANSPARENCY_LOG in minimum.time_sources:  # never older than its evidence (`age_moment`)
        old[TimeSource.INDEX] = f"now - file.uploaded >= {age} && (!{_SIGNED} || {signed_old})"
    if minimum.time_sources == (TimeSource.INDEX,):  # as it always was
        if minimum.allow_unknown:
            return f"file.uploaded == null || {old[TimeSource.INDEX]}"
        return f"file.uploaded != null && {old[TimeSource.INDEX]}"
    expression = "true" if minimum.allow_unknown else "false"
    for source in reversed(minimum.time_sources):
        expression = f"({known[source]} ? {old[source]} : {expression})"
    return expression


def age_moment(facts: Facts, sources: tuple[TimeSource, ...]) -> tuple[dt.datetime | None, TimeSource | None]:
    """The file's time from the first source that knows it, and that source. With the transparency log among
    the sources, a file is never older than its earliest verified signed time: nothing is uploaded before it
    is signed, so an index time earlier than that (a mirror's backdated upload-time, a conda builder's
    `timestamp`) gives way to the signed time."""
    signed = earliest_signed(facts.attestations)[0] if TimeSource.TRANSPARENCY_LOG in sources else None
    for source in sources:
        moment = facts.file.uploaded if source is TimeSource.INDEX else signed
        if moment is not None:
            if signed is not None and signed > moment:
                return signed, TimeSource.TRANSPARENCY_LOG
            return moment, source
    return None, None


@dataclass(frozen=True)
class OldEnoughFrom:
    """The native form of `age_expression` for time sources that include the transparency log."""

    age: dt.timedelta
    allow_unknown: bool
    sources: tuple[TimeSource, ...]

    def __call__(self, facts: Facts, now: dt.datetime) -> RuleResult:
        if (beyond := _budget(facts)) is not None:  # the CEL reads attestations: not run over too many
            return not_evaluated(beyond)
        moment, _ = age_moment(facts, self.sources)
        if moment is None:
            return self.allow_unknown, None, None
        if now - moment >= self.age:
            return True, None, None
        try:
            return False, None, moment + self.age
        except OverflowError:
            return False, None, None


# --------------------------------------------------------------------------------------------------
# minimumAge.backdating

def backdating_expression(tolerance: dt.timedelta) -> str:
    """Passes unless the index's upload time is earlier than the earliest verified signed time by more than
    `tolerance` (a file cannot be uploaded before it was signed: an index, or a mirror, that says so is
    backdating it, which would make it look old enough)."""
    return (f"file.uploaded == null || !{_SIGNED} || "
            f"attestations.exists(a, a.signedTime != null && a.signedTime - file.uploaded <= {_duration(tolerance)})")


@dataclass(frozen=True)
class NotBackdated:
    tolerance: dt.timedelta

    def __call__(self, facts: Facts, now: dt.datetime) -> RuleResult:
        if (beyond := _budget(facts)) is not None:
            return not_evaluated(beyond)
        uploaded, (signed, _) = facts.file.uploaded, earliest_signed(facts.attestations)
        return uploaded is None or signed is None or signed - uploaded <= self.tolerance, None, None


def _when(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class BackdatingDescription:
    tolerance: dt.timedelta

    def __call__(self, facts: Facts) -> str:
        signed, source = earliest_signed(facts.attestations)
        uploaded = facts.file.uploaded
        if signed is None or uploaded is None:
            return "the upload time is earlier than the verified signed time"
        return (f"the index says it was uploaded {_when(uploaded)}, but its evidence was signed {_when(signed)} "
                f"({source}): earlier than it was signed by more than {format_duration(self.tolerance)} "
                "(the index or a mirror backdates it)")


# --------------------------------------------------------------------------------------------------
# continuity


def _same_publisher(p: str) -> str:
    parts = [f"a.publisher.{key} == {p}.{key}" for key in PUBLISHER_FIELDS]
    parts.append(f"({p}.environment == null || a.publisher.environment == {p}.environment)")
    return " && ".join(parts)


def _matched(bar: str) -> str:
    return f'{bar}.publishers.exists(p, attestations.exists(a, p.kind == "" || ({_same_publisher("p")})))'


def continuity_expression(rule: ContinuityRule) -> str:
    """The CEL of `continuity`: the history is known, and the line has no bar (no publishers), or the bar is older than
    `ignoreAfter` before the file (its upload time, else `now`), or a verified attestation of the file has the
    same publisher as one of the bar's (kind, repository, workflow, and environment when the bar's had one; a
    bar whose evidence named no publisher asks for verified evidence); and the same holds for the earlier
    files of its own release (`continuity.release`, never out of date). PyPI files only: gate knows no conda
    channel's history yet. An unknown history fails, unless `whenUnknown: allow`."""
    bar = f"continuity.{rule.within.value}"
    escapes = []
    if rule.ignore_after is not None:
        since = "(file.uploaded != null ? file.uploaded : now)"
        escapes.append(f"({bar}.uploaded != null && {since} - {bar}.uploaded > {_duration(rule.ignore_after)})")
    matched = _matched(bar)
    judged = f"({' || '.join([f'{bar}.publishers.size() == 0', *escapes, matched])})"
    own = "continuity.release"
    judged += f' && ({own}.publishers.size() == 0 || {_matched(own)})'
    known = "!continuity.known" if rule.allow_unknown else "continuity.known"
    joined = "||" if rule.allow_unknown else "&&"
    return f'file.ecosystem != "pypi" || {known} {joined} {judged}'


def line_text(rule: ContinuityRule) -> str:
    """The line a `continuity` rule judges within, as messages name it: `major line`, `minor line`, `project`."""
    return {"major": "major line", "minor": "minor line", "project": "project"}[rule.within.value]


def same_publisher(have: Publisher | None, bar: Publisher) -> bool:
    """Whether evidence from `have` (None: no publisher) meets a bar set by `bar`."""
    if not bar.kind:
        return True
    mine = have or Publisher(kind="")
    return all(getattr(mine, key) == getattr(bar, key) for key in PUBLISHER_FIELDS) and (
        bar.environment is None or mine.environment == bar.environment
    )


def _meets(visible: tuple[AttestationFact, ...], bar: LineRelease) -> bool:
    return any(same_publisher(a.publisher, p) for p in bar.publishers for a in visible)


def bar_of(facts: Facts, rule: ContinuityRule) -> LineRelease | None:
    release: LineRelease | None = getattr(facts.continuity, rule.within.value)
    return release


@dataclass(frozen=True)
class NoDowngrade:
    """The native form of `continuity_expression`."""

    rule: ContinuityRule

    def __call__(self, facts: Facts, now: dt.datetime) -> RuleResult:
        if (beyond := _budget(facts)) is not None:
            return not_evaluated(beyond)
        if facts.file.ecosystem is not Ecosystem.PYPI:
            return True, None, None
        if not facts.continuity.known:
            return self.rule.allow_unknown, None, None
        visible = visible_attestations(facts.attestations)
        own = facts.continuity.release
        if own is not None and own.publishers and not _meets(visible, own):
            return False, None, None
        bar = bar_of(facts, self.rule)
        if bar is None or not bar.publishers:
            return True, None, None
        if self.rule.ignore_after is not None and bar.uploaded is not None:
            since = facts.file.uploaded if facts.file.uploaded is not None else now
            if since - bar.uploaded > self.rule.ignore_after:
                return True, None, None
        if _meets(visible, bar):
            return True, None, None
        changes = None
        if self.rule.ignore_after is not None and bar.uploaded is not None and facts.file.uploaded is None:
            try:  # measured from `now`: the bar stops counting once it is older than ignoreAfter
                changes = bar.uploaded + self.rule.ignore_after + dt.timedelta(microseconds=1)
            except OverflowError:
                changes = None
        return False, None, changes


def publisher_text(publisher: Publisher) -> str:
    """`GitHub pypa/sampleproject release.yml` (and its environment), `Google someone@example.com`."""
    if not publisher.kind:
        return "a verified signer gate names no publisher for"
    what = publisher.repository or publisher.email or "?"
    how = publisher.workflow or publisher.workflowFilepath
    text = " ".join(part for part in (publisher.kind, what, how) if part)
    return f"{text} (environment {publisher.environment})" if publisher.environment else text


def _listed(publishers: tuple[Publisher, ...]) -> str:
    shown = [publisher_text(p) for p in publishers[:3]]
    more = f" and {len(publishers) - 3} more" if len(publishers) > 3 else ""
    return " or ".join(shown) + more


@dataclass(frozen=True)
class ContinuityDescription:
    """`continuity`: what the file has, what the release that sets the bar had, and what would change it."""

    rule: ContinuityRule

    def __call__(self, facts: Facts) -> str:
        version = facts.file.version
        if not facts.continuity.known:
            when = "allow" if self.rule.allow_unknown else "deny"
            return (f"the release history of {facts.file.name} is unknown: {facts.continuity.reason} (continuity "
                    f"judges a release against its line's history: check it against its index; whenUnknown: {when})")
        visible = visible_attestations(facts.attestations)
        own, bar = facts.continuity.release, bar_of(facts, self.rule)
        if own is not None and own.publishers and not _meets(visible, own):
            bar, line = own, "release"
        elif bar is None or not bar.publishers:
            return f"{version}: no earlier release of its {line_text(self.rule)} had verified provenance"
        else:
            line = line_text(self.rule)
        when = f" ({bar.uploaded.astimezone(dt.UTC).date().isoformat()})" if bar.uploaded is not None else ""
        files = f"{bar.version}'s files uploaded before it" if line == "release" else bar.version
        earlier = f"{files}{when} {'were' if line == 'release' else 'was'} published by {_listed(bar.publishers)}"
        publishers = tuple(dict.fromkeys(a.publisher or Publisher(kind="") for a in visible))
        has = f"{version} was published by {_listed(publishers)}" if publishers else f"{version} has no provenance"
        return (f"{has}; {earlier} (a weaker publisher than its {line} had: publish it from the same publisher, "
                "or add an exception that waives continuity)")
