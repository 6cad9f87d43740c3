"""Native forms of the rules the compiler makes of structured fields: the same judgement as their CEL
without running it, for the rules whose outcome a memo cannot keep (`minimumAge` reads `now`).

The compiler builds each one from the same model object as the rule's CEL (`gate.policy.compile`), and
tests/policy/test_native.py holds every one to its CEL over many generated facts: CEL stays the
specification. A native check exists only where it is exact; the other structured rules (signers,
predicate types, target channel) run as CEL, memoized by the evidence they read, since replicating CEL's
null and error semantics over publisher fields by hand is where a fast path would drift.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from gate.facts import Facts, visible_attestations
from gate.policy.cel_types import MAX_ATTESTATIONS, MAX_CLAIMS

# A rule's outcome for one file: (passed, why it could not be evaluated (None: it could), the moment the
# outcome may change (None: not with time alone)). A plain tuple: the proxy makes one per rule per file.
RuleResult = tuple[bool, str | None, dt.datetime | None]


class NativeCheck(Protocol):
    """A structured rule's judgement in Python: exactly what its CEL yields for the same facts and `now`."""

    def __call__(self, facts: Facts, now: dt.datetime) -> RuleResult: ...


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
