"""What a file that fails a structured rule showed, in one line: the message of its violation.

The compiler builds one description next to each structured rule's CEL, from the same model object
(`gate.policy.compile`); the evaluator calls it for a file that fails the rule, so `gate check`, the
proxy's 403, `gate explain` and the audit log all carry the same text. A description only says what the
facts show (the upload time, the evidence seen) and what the rule asks for; it never decides anything, and
it never reads `now`: a decision the proxy keeps until it may change (`Judgement.valid_until`) keeps its
message too. Values from evidence (certificate identities, predicate types, channels) are cut to
MAX_VALUE characters and made printable, and each list to MAX_ITEMS values, so no bundle can make a
message long or break it over lines; custom rules keep the message their policy wrote.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

from gate.facts import AttestationFact, Ecosystem, Facts, FileFacts, earliest_signed, visible_attestations
from gate.policy.duration import format_duration
from gate.policy.model import Attestations, IdentitySigner, MinimumAge, PublisherSigner, Signer, TimeSource
from gate.policy.patterns import Pattern
from gate.policy.trust_rules import age_moment
from gate.redact import redact

MAX_VALUE = 100  # characters of one value shown from evidence or a policy
MAX_ITEMS = 3  # values shown of a list (then "and N more")
MAX_MESSAGE = 1000  # characters of a whole message (a policy may list many long signers)


class Describe(Protocol):
    """Why `facts` fail a rule, in one line."""

    def __call__(self, facts: Facts) -> str: ...


def shown(text: str | None, limit: int = MAX_VALUE) -> str:
    """`text` as one printable line of at most `limit` characters (what is cut ends in `...`)."""
    if text is None:
        return "none"
    if len(text) <= limit and text.isprintable():
        return text
    line = "".join(c if c.isprintable() else "?" for c in text[: limit + 1])
    return line if len(line) <= limit else line[: limit - 3] + "..."


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """Text a policy wrote (a custom rule's message, an exception's reason) as one printable line: its line
    breaks and other whitespace runs become one space (a YAML block reads as it was meant), then `shown`."""
    if len(text) <= limit and text.isprintable():
        return text
    return shown(" ".join(text.split()), limit)


def listed(items: Iterable[str]) -> str:
    """Distinct items in order, the first MAX_ITEMS joined by `, ` and the rest counted."""
    unique = list(dict.fromkeys(items))
    text = ", ".join(unique[:MAX_ITEMS])
    return text if len(unique) <= MAX_ITEMS else f"{text} and {len(unique) - MAX_ITEMS} more"


_SECOND = dt.timedelta(seconds=1)


def to_the_second(moment: dt.datetime, *, up: bool = False) -> str:
    """`moment` in UTC to the second (`2026-11-28T10:00:00Z`), cut, or rounded up with `up`."""
    if moment.tzinfo is not dt.UTC:
        moment = moment.astimezone(dt.UTC)
    if up and moment.microsecond:
        moment += _SECOND  # OverflowError in the last second of 9999, as `uploaded + age` would be
    # what isoformat gives (without "+00:00"), in half its time: a page may describe 4000 denied files
    m = moment
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (m.year, m.month, m.day, m.hour, m.minute, m.second)  # noqa: UP031


def _no_upload_time(file: FileFacts) -> str:
    """Where the upload time would have come from, for a file that has none."""
    if file.index is None:
        return "a local file has none; give --uploaded, or check it against its index"
    if file.ecosystem is Ecosystem.CONDA:
        return "the channel's repodata record has no indexed_timestamp or timestamp"
    return "the index gives none"


@dataclass(frozen=True)
class AgeDescription:
    """`minimumAge`: when the file was uploaded and from when it is old enough, or why its time is unknown."""

    minimum: MinimumAge

    @cached_property
    def _age(self) -> str:
        return f"(minimum age {format_duration(self.minimum.age)})"

    def __call__(self, facts: Facts) -> str:
        sources = self.minimum.time_sources
        uploaded, source = age_moment(facts, sources)
        if uploaded is None:
            when = "allow" if self.minimum.allow_unknown else "deny"
            if sources == (TimeSource.INDEX,):
                return f"upload time unknown: {_no_upload_time(facts.file)} (whenUnknown: {when})"
            return (f"upload time unknown: {_no_upload_time(facts.file)}, and no verified evidence has a signed time "
                    f"(timeSources: {', '.join(sources)}; whenUnknown: {when})")
        try:
            allowed = to_the_second(uploaded + self.minimum.age, up=True)
        except OverflowError:
            allowed = "after the year 9999"
        if source is TimeSource.TRANSPARENCY_LOG:
            signed_from = earliest_signed(facts.attestations)[1]
            index = "; the index gives no upload time" if facts.file.uploaded is None else ""
            if facts.file.uploaded is not None and facts.file.uploaded < uploaded:
                index = (f"; the index's {to_the_second(facts.file.uploaded)} is earlier, but a file is not "
                         "uploaded before it is signed")
            signed = f"signed {to_the_second(uploaded)} (signedFrom: {signed_from}{index})"
            return f"{signed}; allowed from {allowed} {self._age}"
        return f"uploaded {to_the_second(uploaded)}; allowed from {allowed} {self._age}"


def no_verified_evidence(facts: Facts) -> str:
    """`no attestation`, or how many bundles did not verify and the first one's reason."""
    rejected = [a for a in facts.attestations if not a.verified]
    if not rejected:
        return "no attestation"
    bundles = "1 bundle" if len(rejected) == 1 else f"{len(rejected)} bundles"
    return f"no verified attestation ({bundles} did not verify: {shown(rejected[0].error)})"


def signed_by(att: AttestationFact) -> str:
    """The certificate identity and issuer of a verified attestation (and its publisher's environment)."""
    environment = att.publisher.environment if att.publisher is not None else None
    extra = f", environment {shown(environment)}" if environment else ""
    return f"{shown(att.identity)} (issuer {shown(att.issuer)}{extra})"


def _pattern(pattern: Pattern) -> str:
    return shown(pattern.source if pattern.is_literal or pattern.is_glob else f"regex:{pattern.source}")


def signer_text(signer: Signer) -> str:
    """A signer as the policy allows it: `GitHub publisher repository=pypa/x`, `<identity> (issuer <issuer>)`."""
    match signer:
        case PublisherSigner(kind=kind, fields=fields):
            return " ".join([f"{shown(kind)} publisher", *(f"{key}={_pattern(p)}" for key, p in fields)])
        case IdentitySigner(identity=identity, issuer=issuer):
            return f"{_pattern(identity)} (issuer {_pattern(issuer)})"


@dataclass(frozen=True)
class RequiredDescription:
    """`attestations.required`: the file has no verified evidence."""

    def __call__(self, facts: Facts) -> str:
        visible = visible_attestations(facts.attestations)
        return f"{len(visible)} verified attestations" if visible else no_verified_evidence(facts)


@dataclass(frozen=True)
class SignersDescription:
    """`attestations.signers`: who signed the verified evidence, and who may."""

    attestations: Attestations

    @cached_property
    def _allowed(self) -> str:
        return "allowed: " + listed(signer_text(s) for s in self.attestations.signers)

    def __call__(self, facts: Facts) -> str:
        allowed = self._allowed
        visible = visible_attestations(facts.attestations)
        if not visible:
            return f"{no_verified_evidence(facts)}; {allowed}"
        return f"signed by {listed(signed_by(a) for a in visible)}; {allowed}"


@dataclass(frozen=True)
class PredicateTypesDescription:
    """`attestations.predicateTypes`: the types verified evidence has, and the ones required."""

    attestations: Attestations

    def __call__(self, facts: Facts) -> str:
        required = self.attestations.predicate_types
        visible = visible_attestations(facts.attestations)
        if not visible:
            return f"{no_verified_evidence(facts)}; required predicate types: {listed(shown(t) for t in required)}"
        seen = {a.predicateType for a in visible}
        types = listed(shown(a.predicateType) for a in visible)
        missing = [t for t in required if t not in seen]
        if missing:
            return f"no verified attestation of predicate type {listed(shown(t) for t in missing)}; verified: {types}"
        signers = listed(signer_text(s) for s in self.attestations.signers)
        return f"verified predicate types {types}, but not each required one from an allowed signer ({signers})"


@dataclass(frozen=True)
class TargetChannelDescription:
    """`attestations.targetChannel`: the channels verified conda evidence names, and the one required."""

    attestations: Attestations

    def __call__(self, facts: Facts) -> str:
        wanted: str | None = self.attestations.target_channel
        if wanted == "match":
            wanted = facts.file.index
            served = shown(redact(wanted)) if wanted else "unknown here"  # a `/t/<token>/` path stays private
            required = f"the channel it is served from ({served})"
        else:
            required = shown(wanted)
        visible = visible_attestations(facts.attestations)
        if not visible:
            return f"{no_verified_evidence(facts)}; required targetChannel: {required}"
        if wanted is not None and any(a.targetChannel == wanted for a in visible):
            signers = listed(signer_text(s) for s in self.attestations.signers)
            return f"targetChannel {required} is on verified evidence, but not from an allowed signer ({signers})"
        return f"verified targetChannel: {listed(shown(a.targetChannel) for a in visible)}; required: {required}"
