"""Native forms of the rules the compiler makes of structured fields: the same judgement as their CEL
without running it, for the rules whose outcome a memo cannot keep (`minimumAge` reads `now`; the attestation
rules read evidence that differs from file to file: a release's own identity, ref and commit).

The compiler builds each one from the same model object as the rule's CEL (`gate.policy.compile`), and
tests/policy/test_native.py holds every one to its CEL over a large generated corpus with edge values: CEL
stays the specification. A native check exists only where it is exact; where a value is outside what it
replicates (a string RE2 cannot take), it answers None and the rule's CEL is run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import re2
from msgspec.structs import fields

from gate.facts import AttestationFact, Facts, Publisher, visible_attestations
from gate.policy.cel_types import MAX_ATTESTATIONS, MAX_CLAIMS
from gate.policy.model import IdentitySigner, PublisherSigner, Signer
from gate.policy.patterns import Pattern

# A rule's outcome for one file: (passed, why it could not be evaluated (None: it could), the moment the
# outcome may change (None: not with time alone)). A plain tuple: the proxy makes one per rule per file.
RuleResult = tuple[bool, str | None, dt.datetime | None]


class NativeCheck(Protocol):
    """A structured rule's judgement in Python: exactly what its CEL yields for the same facts and `now`, or
    None for facts it leaves to the CEL (values outside what it replicates)."""

    def __call__(self, facts: Facts, now: dt.datetime) -> RuleResult | None: ...


def beyond_budget(attestations: int, claims: Iterable[int]) -> str | None:
    """Why evidence of `attestations` verified attestations with `claims` claims each is larger than the
    static cost estimate assumed, or None: a rule that reads attestations is then not run, and fails."""
    if attestations > MAX_ATTESTATIONS:
        return f"the file has {attestations} attestations; rules are evaluated over at most {MAX_ATTESTATIONS}"
    for count in claims:  # claims, and workflow inputs, which the verifier bounds to the same number
        if count > MAX_CLAIMS:
            return f"an attestation has {count} claims; rules are evaluated over at most {MAX_CLAIMS}"
    return None


def not_evaluated(reason: str) -> RuleResult:
    return (False, f"rule not evaluated: {reason}", None)


@dataclass(frozen=True)
class OldEnough:
    """`now - file.uploaded >= duration(age)`, and an unknown upload time passes when `allow_unknown`."""

    age: dt.timedelta
    allow_unknown: bool

    def __call__(self, facts: Facts, now: dt.datetime) -> RuleResult:
        uploaded = facts.file.uploaded
        if uploaded is None:
            return self.allow_unknown, None, None
        passed = now - uploaded >= self.age
        if passed:
            return True, None, None
        try:
            return False, None, uploaded + self.age
        except OverflowError:  # an upload time near the year 9999 (an index said so): old enough never
            return False, None, None


@dataclass(frozen=True)
class AnyVerified:
    """`attestations.exists(a, a.verified)`: rules see verified evidence only, so: is there any."""

    def __call__(self, facts: Facts, now: dt.datetime) -> RuleResult:
        visible = visible_attestations(facts.attestations)
        if (beyond := beyond_budget(len(visible), (len(a.claims) for a in visible))) is not None:
            return not_evaluated(beyond)
        return bool(visible), None, None


# --------------------------------------------------------------------------------------------------
# The attestation rules (`attestations.signers`, `.predicateTypes`, `.targetChannel`): what their CEL asks of
# each verified attestation `a`, over the document `gate.policy.activation` gives (every field present; no publisher is
# one of kind ""). A literal pattern is `==` (null equals no string); any other is `x != null &&
# x.matches(regex)`, run here by the same RE2 with the same search. A value RE2 cannot take (a lone surrogate,
# which CEL's `matches` would raise on) is not judged here: the rule's CEL is run instead (`None`).

_PUBLISHER_FIELDS = frozenset(f.name for f in fields(Publisher))


class _UndecidedError(Exception):
    """A value this module does not judge: the caller runs the rule's CEL."""


@lru_cache(maxsize=16384)
def _search(regex: str, value: str) -> bool:
    return re2.search(regex, value) is not None


def _matches(value: str | None, pattern: Pattern) -> bool:
    if pattern.is_literal:
        return value == pattern.source
    if value is None:
        return False
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _UndecidedError from None
    return _search(pattern.regex, value)


def _signed_by(a: AttestationFact, signer: Signer) -> bool:
    match signer:
        case PublisherSigner(kind=kind, fields=wanted):
            publisher = a.publisher
            if (publisher.kind if publisher is not None else "") != kind:
                return False
            return all(_matches(getattr(publisher, key, None), pattern) for key, pattern in wanted)
        case IdentitySigner(identity=identity, issuer=issuer):
            return _matches(a.identity, identity) and _matches(a.issuer, issuer)


def exact_signers(signers: tuple[Signer, ...]) -> bool:
    """Whether every signer names only publisher fields the facts document has (a native check is then exact;
    another key is a CEL error no native form replicates)."""
    return all(isinstance(s, IdentitySigner) or all(k in _PUBLISHER_FIELDS for k, _ in s.fields) for s in signers)


@dataclass(frozen=True)
class TrustedAttestations:
    """`[file.ecosystem != "conda" ||] [!attestations.exists(a, a.verified) ||] <all of `types`:>
    attestations.exists(a, a.verified && <a signer matches> && <a.predicateType == t> && <channel>)`, as
    `gate.policy.compile` writes the attestation rules from the same `Attestations` model: `signers` (any one;
    none: no condition), `types` (each needs its own attestation; none: one attestation suffices), `channel`
    (None: no condition; "match": the file's index; else that URL), `required` (False: no verified evidence
    passes), `conda_only` (the targetChannel rule: other ecosystems pass)."""

    signers: tuple[Signer, ...]
    required: bool
    types: tuple[str, ...] = ()
    channel: str | None = None
    conda_only: bool = False

    def __call__(self, facts: Facts, now: dt.datetime) -> RuleResult | None:
        visible = visible_attestations(facts.attestations)
        if (beyond := beyond_budget(len(visible), (len(a.claims) for a in visible))) is not None:
            return not_evaluated(beyond)  # before anything else, as `CompiledRule.evaluate` does
        if self.conda_only and facts.file.ecosystem.value != "conda":
            return True, None, None
        if not self.required and not visible:
            return True, None, None
        try:
            trusted = [a for a in visible if self._trusted(a, facts)]
        except _UndecidedError:
            return None
        if not self.types:
            return bool(trusted), None, None
        return all(any(a.predicateType == t for a in trusted) for t in self.types), None, None

    def _trusted(self, a: AttestationFact, facts: Facts) -> bool:
        if self.signers and not any(_signed_by(a, s) for s in self.signers):
            return False
        if self.channel is None:
            return True
        if self.channel == "match":
            return facts.file.index is not None and a.targetChannel == facts.file.index
        return a.targetChannel == self.channel
