"""Compiled policies + facts -> Decision. Pure: no I/O, no clock (the caller passes `now`)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from msgspec.structs import fields

from gate.decision import Decision, Violation
from gate.errors import UsageError
from gate.facts import (
    AttestationFact,
    Ecosystem,
    Facts,
    FileFacts,
    FileKind,
    Unidentified,
    visible_attestations,
)
from gate.memo import MISSING, Memo
from gate.policy.compile import CompiledPolicy, CompiledRule
from gate.policy.describe import one_line
from gate.policy.model import PolicyException
from gate.policy.native import OldEnough, RuleResult


def applicable_exception(policy: CompiledPolicy, rule: str, facts: Facts, now: dt.datetime) -> PolicyException | None:
    """The first of the policy's exceptions that waives `rule` for this file at `now`, or None."""
    for exception in policy.policy.exceptions:
        if exception.waives(rule) and exception.applies(facts.file, now):
            return exception
    return None


def _waiver_text(exception: PolicyException) -> str:
    """`reason, owner <owner>, until <expiry as written>`, as one line (the policy wrote reason and owner)."""
    owner = f", owner {one_line(exception.owner, 200)}" if exception.owner else ""
    return f"{one_line(exception.reason, 500)}{owner}, until {exception.until}"  # the expiry is never cut off


def waiver(policy: CompiledPolicy, rule: str, facts: Facts, now: dt.datetime) -> str | None:
    """Why `rule` is waived for this file at `now` (reason, owner, end), or None."""
    exception = applicable_exception(policy, rule, facts, now)
    return None if exception is None else _waiver_text(exception)


def _violation(
    policy: CompiledPolicy, rule: CompiledRule, facts: Facts, error: str | None, exception: PolicyException | None,
    *, now: dt.datetime,
) -> Violation:
    """The violation of `rule` by `facts` at `now` (its message made for this file, never memoized: it reads
    facts a memoized outcome may not); `exception` is the one waiving it, if any."""
    message = rule.failure(facts, now)
    return Violation(
        policy=policy.name,
        rule=rule.name,
        message=message if error is None else f"{message} [{error}]",
        enforced=policy.enforced,
        waived=None if exception is None else _waiver_text(exception),
    )


# --------------------------------------------------------------------------------------------------
# Decisions gate makes itself, the same for every front end: a file nothing governs, a file it cannot name.

GATE_POLICY = "gate"  # the policy name on violations gate itself reports
UNMATCHED_RULE = "gate.unmatched"
UNJUDGEABLE_RULE = "gate.unjudgeable"


class Unmatched(StrEnum):
    """What a file no policy's `match` selects gets: denied (the default), allowed but reported as a
    non-enforced violation (`warn`, like audit mode), or allowed silently (`allow`)."""

    DENY = "deny"
    WARN = "warn"
    ALLOW = "allow"


def unmatched_violations(file: FileFacts, mode: Unmatched) -> tuple[Violation, ...]:
    """The violation of a file no policy governs, under `mode` (none under `allow`)."""
    if mode is Unmatched.ALLOW:
        return ()
    what = f"{file.ecosystem.value} package {file.name!r}" if file.name else f"{file.ecosystem.value} file"
    message = (
        f"no policy governs {what} ({file.filename}): add a policy whose match selects it, "
        "or choose --unmatched warn|allow (GATE_UNMATCHED for the WSGI app)"
    )
    return (Violation(GATE_POLICY, UNMATCHED_RULE, message, enforced=mode is Unmatched.DENY),)


def gate_denial(facts: Facts, rule: str, message: str) -> Decision:
    """A denial gate makes itself (rule `gate.*`), whatever the policies say."""
    return Decision(facts=facts, violations=(Violation(GATE_POLICY, rule, message),), policies=(GATE_POLICY,))


def unjudgeable(ecosystem: Ecosystem, name: str, filename: str, sha256: str | None, reason: str) -> Decision:
    """A denial for a file gate cannot build facts for (a name it cannot parse, no digest, wrong project):
    what cannot be identified cannot be matched by any policy, so it is not admitted."""
    file = FileFacts(
        ecosystem=ecosystem, name=name, version="", filename=filename, kind=FileKind.FILE, sha256=sha256 or ""
    )
    return gate_denial(Facts(file=file), UNJUDGEABLE_RULE, reason)


def unidentified(file: Unidentified) -> Decision:
    """`unjudgeable` for a file a source could not identify."""
    return unjudgeable(file.ecosystem, file.name, file.filename, file.sha256, file.reason)


class NoPolicyError(UsageError):
    """Zero policies were loaded: gate would govern nothing, so it refuses to run."""


def require_policies(policies: Sequence[CompiledPolicy], paths: Sequence[object]) -> None:
    """Raise NoPolicyError when `policies` is empty (an empty directory, a file of comments, no --policy)."""
    if not policies:
        where = ", ".join(str(p) for p in paths) or "nowhere (no policy path given)"
        raise NoPolicyError(
            f"no policy loaded from {where}: gate refuses to run without one (every file would be ungoverned)"
        )


def evaluate(
    policies: Sequence[CompiledPolicy], facts: Facts, now: dt.datetime, *, unmatched: Unmatched = Unmatched.DENY
) -> Decision:
    """Every policy whose `match` selects the file must allow it; a file none selects gets `unmatched`.
    One file: for many, keep one `Evaluator` (its memos carry over from file to file)."""
    return Evaluator(policies, unmatched=unmatched).judge(facts, now).decision


# --------------------------------------------------------------------------------------------------
# The one evaluation path, with memos for callers that decide many files at once (the index proxy, locks).

@dataclass(frozen=True)
class RuleReads:
    """Which parts of the facts document a rule's CEL can read, from its parse: the variables it names,
    and which `file` fields (erring on 'more': all of `file`)."""

    file_fields: tuple[str, ...] | None  # None: the whole `file` map (used other than as `file.<field>`)
    attestations: bool
    now: bool
    vulnerabilities: bool = False
    continuity: bool = False

    @classmethod
    def of(cls, rule: CompiledRule) -> RuleReads:
        return cls(file_fields=rule.file_fields, attestations="attestations" in rule.reads, now="now" in rule.reads,
                   vulnerabilities="vulnerabilities" in rule.reads, continuity="continuity" in rule.reads)

    def key(self, facts: Facts, now: dt.datetime, attestations: Callable[[], Hashable]) -> Hashable:
        """The part of the facts this rule's outcome depends on (`attestations`: their key, made once per file)."""
        file: Hashable = (
            facts.file if self.file_fields is None else tuple(getattr(facts.file, f, None) for f in self.file_fields)
        )
        records = facts.vulnerabilities if self.vulnerabilities else None  # frozen Structs: hashable, compared whole
        history = facts.continuity if self.continuity else None
        return (file, attestations() if self.attestations else None, now if self.now else None, records, history)


# Every AttestationFact field but `source`, where the evidence was found: it names the file, so keying on
# it would make every file miss the memo. The compiler's own rules never read it; a custom rule that reads
# attestations might (by name, by comparing whole maps, by iterating keys), so it adds `source` back.
_ALL_FIELDS = tuple(f.name for f in fields(AttestationFact))
_JUDGED_FIELDS = tuple(name for name in _ALL_FIELDS if name != "source")


def _may_read_source(rule: CompiledRule) -> bool:
    return "attestations" in rule.reads and rule.written


def attestation_key(attestations: Sequence[AttestationFact], names: Sequence[str]) -> Hashable:
    """The fields `names` of every attestation, in order, as a hashable value (a dict as sorted items)."""
    return tuple(
        tuple(tuple(sorted(value.items())) if isinstance(value := getattr(a, name), dict) else value for name in names)
        for a in attestations
    )


class Judgement(NamedTuple):
    """A decision and the moment it may change (None: it does not depend on time)."""

    decision: Decision
    valid_until: dt.datetime | None


class _Rule:
    """One compiled rule: its native form when the compiler made one, else its CEL with a memo."""

    def __init__(self, rule: CompiledRule, memo_size: int) -> None:
        self.rule = rule
        self.reads = RuleReads.of(rule)
        self.reads_source = _may_read_source(rule)  # key on every attestation field, `source` included
        self._memo: Memo[Hashable, tuple[bool, str | None]] = Memo(memo_size)

    def evaluate(self, facts: Facts, now: dt.datetime, derived: _Derived) -> RuleResult:
        """(passed, error, when the outcome may change)."""
        if self.rule.native is not None and (judged := self.rule.native(facts, now)) is not None:
            return judged
        key = self.reads.key(facts, now, lambda: derived.attestations(self.reads_source))
        found = self._memo.get(key)
        if found is MISSING:
            found = self.rule.evaluate(derived.activation())
            self._memo.put(key, found)
        return found[0], found[1], now if self.reads.now else None


class _Derived:
    """What a file's CEL rules need, each made on first use: the activation and the attestation keys."""

    __slots__ = ("_activation", "_everything", "_judged", "facts", "now")

    def __init__(self, facts: Facts, now: dt.datetime) -> None:
        self.facts, self.now = facts, now
        self._activation: dict[str, Any] | None = None
        self._judged: Hashable | None = None
        self._everything: Hashable | None = None

    def activation(self) -> dict[str, Any]:
        if self._activation is None:
            # cel-python's types only once a rule runs as CEL (an age-only check never loads it)
            from gate.policy.activation import to_activation  # noqa: PLC0415

            self._activation = to_activation(self.facts, self.now)
        return self._activation

    def attestations(self, every_field: bool) -> Hashable:
        """The key of the attestations rules see (verified only, as `gate.policy.activation` gives them): every field
        (`every_field`), or all but `source`."""
        if every_field:
            if self._everything is None:
                self._everything = attestation_key(visible_attestations(self.facts.attestations), _ALL_FIELDS)
            return self._everything
        if self._judged is None:
            self._judged = attestation_key(visible_attestations(self.facts.attestations), _JUDGED_FIELDS)
        return self._judged


class Evaluator:
    """Decides files against one policy set: every rule of every matching policy, in order.

    A rule the compiler made with a native form (`gate.policy.native`) is judged by it; every other
    rule's CEL outcome is memoized under the part of the facts that rule reads (so 4000 files that
    differ only in filename and digest cost one CEL evaluation per rule). `judge` also says until when
    a decision holds. Safe to share between threads (its memos lock; CEL runs serialised).
    """

    def __init__(
        self, policies: Sequence[CompiledPolicy], *, unmatched: Unmatched = Unmatched.DENY, memo_size: int = 100_000
    ) -> None:
        self.policies = tuple(policies)
        self.unmatched = unmatched
        self._matches: Memo[tuple[Ecosystem, str], _Plan] = Memo(memo_size)
        self._rules = {id(policy): tuple(_Rule(rule, memo_size) for rule in policy.rules) for policy in self.policies}

    def _matched(self, ecosystem: Ecosystem, name: str) -> _Plan:
        """The policies whose `match` selects files of (ecosystem, name) (`match` reads nothing else), their
        names, and their rules in order."""
        key = (ecosystem, name)
        found = self._matches.get(key)
        if found is MISSING:
            found = self._plan(ecosystem, name)
            self._matches.put(key, found)
        return found

    def _plan(self, ecosystem: Ecosystem, name: str) -> _Plan:
        probe = FileFacts(ecosystem=ecosystem, name=name, version="", filename="", kind=FileKind.FILE, sha256="")
        matched = tuple(p for p in self.policies if p.policy.match.applies(probe))
        rules = tuple((policy, rule) for policy in matched for rule in self._rules[id(policy)])
        return _Plan(tuple(p.name for p in matched), rules, any(rule.reads.attestations for _, rule in rules),
                     any(rule.reads.continuity for _, rule in rules), _sharing(rules))

    def reads_attestations(self, ecosystem: Ecosystem, name: str) -> bool:
        """Whether a rule that governs files of (ecosystem, name) reads `attestations` (evidence is needed)."""
        return self._matched(ecosystem, name).reads_attestations

    def sharing(self, ecosystem: Ecosystem, name: str) -> Sharing | None:
        """What the judgement of a file of (ecosystem, name) that has no evidence may depend on, when that is
        file facts alone (None: more, or all of `file`): see `Sharing`."""
        return self._matched(ecosystem, name).sharing

    def reads_continuity(self, ecosystem: Ecosystem, name: str) -> bool:
        """Whether a rule that governs files of (ecosystem, name) reads `continuity` (the history is needed)."""
        return self._matched(ecosystem, name).reads_continuity

    def judge(self, facts: Facts, now: dt.datetime) -> Judgement:
        plan = self._matched(facts.file.ecosystem, facts.file.name)
        violations: list[Violation] = []
        until: dt.datetime | None = None
        derived = _Derived(facts, now)
        for policy, rule in plan.rules:
            passed, error, changes = rule.evaluate(facts, now, derived)
            if changes is not None and (until is None or changes < until):
                until = changes
            if passed:
                continue
            exception = applicable_exception(policy, rule.rule.name, facts, now)
            if exception is not None and (until is None or exception.expires < until):
                until = exception.expires  # then the violation is waived by another exception, or not at all
            violations.append(_violation(policy, rule.rule, facts, error, exception, now=now))
        if not plan.names:
            violations.extend(unmatched_violations(facts.file, self.unmatched))
        decision = Decision(facts=facts, violations=tuple(violations), policies=plan.names)
        return Judgement(decision, until)


class Sharing(NamedTuple):
    """What the judgement of a file (of one ecosystem and name, without evidence) depends on, when it is file
    facts alone: the `file` fields its rules read (`fields`), besides `uploaded` as minimum-age checks over the
    index time read it (`ages`, theirs). Two such files equal in `fields`, whose upload times are both unknown,
    or both at least max(`ages`) before `now`, get the same outcome from every rule at `now`: so when one of
    them is allowed without any violation, so is the other, and its decision holds just as long. (Only such
    an outcome is the same: a violation's message, and the exceptions that may waive it, read more.)"""

    fields: frozenset[str]
    ages: tuple[dt.timedelta, ...]


def _sharing(rules: Sequence[tuple[CompiledPolicy, _Rule]]) -> Sharing | None:
    """`Sharing` for a plan's rules (None: a rule reads attestations, vulnerabilities, the release history, or
    may read all of `file`)."""
    fields: set[str] = set()
    ages = []
    for _, rule in rules:
        reads = rule.reads
        if reads.file_fields is None or reads.attestations or reads.vulnerabilities or reads.continuity:
            return None
        native = rule.rule.native
        if type(native) is OldEnough:  # judged by it, always: passes when uploaded >= age before now
            ages.append(native.age)
            fields.update(f for f in reads.file_fields if f != "uploaded")
        else:
            fields.update(reads.file_fields)
    return Sharing(frozenset(fields), tuple(ages))


class _Plan(NamedTuple):
    """What `Evaluator.judge` runs for files of one (ecosystem, name): the matched policies' names, every
    (policy, rule) pair in policy and rule order, whether any of those rules reads attestations (or the
    release history), and what their outcome depends on (`Sharing`)."""

    names: tuple[str, ...]
    rules: tuple[tuple[CompiledPolicy, _Rule], ...]
    reads_attestations: bool
    reads_continuity: bool
    sharing: Sharing | None


def policy_digest(policies: Sequence[CompiledPolicy], unmatched: Unmatched = Unmatched.DENY) -> str:
    """A digest of the policy documents and of what unmatched files get: cached decisions are only valid
    under the same digest."""
    documents: list[list[Any]] = [[p.policy.file, p.policy.raw.data] for p in policies]
    # Always part of the digest, so that pages cached before unmatched files were denied are not served
    documents.append(["--unmatched", unmatched.value])
    return hashlib.sha256(json.dumps(documents, sort_keys=True, default=str).encode()).hexdigest()
