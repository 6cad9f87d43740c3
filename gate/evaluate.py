"""Compiled policies + facts -> Decision. Pure: no I/O, no clock (the caller passes `now`)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from gate.decision import Decision, Violation
from gate.facts import Ecosystem, Facts, FileFacts, to_activation
from gate.policy.compile import CompiledPolicy, CompiledRule, rule_sources
from gate.policy.model import MinimumAge


def waiver(policy: CompiledPolicy, rule: str, facts: Facts, now: dt.datetime) -> str | None:
    """Why `rule` is waived for this file at `now` (reason, owner, end), or None."""
    for exception in policy.policy.exceptions:
        if exception.waives(rule) and exception.applies(facts.file, now):
            owner = f", owner {exception.owner}" if exception.owner else ""
            return f"{exception.reason}{owner}, until {exception.expires.date().isoformat()}"
    return None


def evaluate(policies: Sequence[CompiledPolicy], facts: Facts, now: dt.datetime) -> Decision:
    """Every policy whose `match` selects the file must allow it."""
    matched = [p for p in policies if p.policy.match.applies(facts.file)]
    violations: list[Violation] = []
    if matched:
        activation = to_activation(facts, now)
        for policy in matched:
            for rule in policy.rules:
                passed, error = rule.evaluate(activation)
                if passed:
                    continue
                violations.append(
                    Violation(
                        policy=policy.name,
                        rule=rule.name,
                        message=rule.message if error is None else f"{rule.message} [{error}]",
                        enforced=policy.enforced,
                        waived=waiver(policy, rule.name, facts, now),
                    )
                )
    return Decision(facts=facts, violations=tuple(violations), policies=tuple(p.name for p in matched))


# --------------------------------------------------------------------------------------------------
# Memoized evaluation for callers that decide many files at once (the index proxy).

# `file.<field>`, also root-scoped (`.file.<field>`); any other use of `file` counts as reading all of it
_FILE_FIELD = re.compile(r"(?<![\w.])\.?file\s*\.\s*([A-Za-z_]\w*)")
_FILE = re.compile(r"(?<![\w.])\.?file(?!\w)")


@dataclass(frozen=True)
class RuleReads:
    """Which parts of the facts document a rule's CEL can read: the variables it names (from its parse),
    and which `file` fields (found lexically, erring on 'more': all of `file`)."""

    file_fields: tuple[str, ...] | None  # None: the whole `file` map (used other than as `file.<field>`)
    attestations: bool
    now: bool

    @classmethod
    def of(cls, rule: CompiledRule) -> RuleReads:
        fields: tuple[str, ...] | None = ()
        if "file" in rule.reads:
            found = _FILE_FIELD.findall(rule.expression)
            whole = len(found) != len(_FILE.findall(rule.expression))
            fields = None if whole else tuple(sorted(set(found)))
        return cls(file_fields=fields, attestations="attestations" in rule.reads, now="now" in rule.reads)

    def key(self, facts: Facts, now: dt.datetime) -> Hashable:
        """The part of the facts this rule's outcome depends on."""
        file: Hashable = (
            facts.file if self.file_fields is None else tuple(getattr(facts.file, f, None) for f in self.file_fields)
        )
        attestations = None
        if self.attestations:
            attestations = json.dumps([a.to_json() for a in facts.attestations], sort_keys=True, default=str)
        return (file, attestations, now if self.now else None)


class Judgement(NamedTuple):
    """A decision and the moment it may change (None: it does not depend on time)."""

    decision: Decision
    valid_until: dt.datetime | None


def _native_minimum_age(policy: CompiledPolicy, rule: CompiledRule) -> MinimumAge | None:
    """The policy's `minimumAge` when `rule` is exactly the CEL the compiler makes for it."""
    minimum = policy.policy.minimum_age
    if minimum is None:
        return None
    compiled = {name: expression for name, expression, _ in rule_sources(policy.policy)}
    return minimum if compiled.get(rule.name) == rule.expression and rule.name == "minimumAge" else None


class _Rule:
    """One compiled rule with its memo, or the native form of the compiler's `minimumAge` rule."""

    def __init__(self, policy: CompiledPolicy, rule: CompiledRule, memo_size: int) -> None:
        self.rule = rule
        self.reads = RuleReads.of(rule)
        self.minimum_age = _native_minimum_age(policy, rule)
        self._memo: dict[Hashable, tuple[bool, str | None]] = {}
        self._memo_size = memo_size

    def evaluate(
        self, facts: Facts, now: dt.datetime, activation: Callable[[], dict[str, Any]]
    ) -> tuple[bool, str | None, dt.datetime | None]:
        """(passed, error, when the outcome may change)."""
        if self.minimum_age is not None:
            # Same as the compiled CEL: `[file.uploaded == null ||] now - file.uploaded >= duration(age)`.
            uploaded = facts.file.uploaded
            if uploaded is None:
                return self.minimum_age.allow_unknown, None, None
            passed = now - uploaded >= self.minimum_age.age
            return passed, None, None if passed else uploaded + self.minimum_age.age
        key = self.reads.key(facts, now)
        found = self._memo.get(key)
        if found is None:
            found = self.rule.evaluate(activation())
            if len(self._memo) >= self._memo_size:
                self._memo.clear()
            self._memo[key] = found
        return found[0], found[1], now if self.reads.now else None


class Evaluator:
    """`evaluate()` with memos, for many files against one policy set; gives identical decisions.

    Each CEL rule's outcome is cached under the part of the facts that rule reads (so 4000 files that
    differ only in filename and digest cost one CEL evaluation per rule), and the `minimumAge` rule the
    compiler generates is computed natively. `judge` also says until when a decision holds.
    """

    def __init__(self, policies: Sequence[CompiledPolicy], *, memo_size: int = 100_000) -> None:
        self.policies = tuple(policies)
        self._memo_size = memo_size
        self._matches: dict[tuple[Ecosystem, str], _Plan] = {}
        self._rules = {
            id(policy): tuple(_Rule(policy, rule, memo_size) for rule in policy.rules) for policy in self.policies
        }
        self._uses_attestations = any(p.uses_attestations for p in self.policies)  # policies never change

    @property
    def uses_attestations(self) -> bool:
        return self._uses_attestations

    def decide(self, facts: Facts, now: dt.datetime) -> Decision:
        return self.judge(facts, now).decision

    def _matched(self, file: FileFacts) -> _Plan:
        """The policies whose `match` selects the file (it reads only the ecosystem and the name), their
        names, and their rules in order."""
        key = (file.ecosystem, file.name)
        found = self._matches.get(key)
        if found is None:
            matched = tuple(p for p in self.policies if p.policy.match.applies(file))
            rules = tuple((policy, rule) for policy in matched for rule in self._rules[id(policy)])
            found = _Plan(tuple(p.name for p in matched), rules)
            if len(self._matches) >= self._memo_size:
                self._matches.clear()
            self._matches[key] = found
        return found

    def judge(self, facts: Facts, now: dt.datetime) -> Judgement:
        plan = self._matched(facts.file)
        violations: list[Violation] = []
        until: dt.datetime | None = None
        built: list[dict[str, Any]] = []

        def activation() -> dict[str, Any]:
            if not built:
                built.append(to_activation(facts, now))
            return built[0]

        for policy, rule in plan.rules:
            passed, error, changes = rule.evaluate(facts, now, activation)
            if changes is not None and (until is None or changes < until):
                until = changes
            if passed:
                continue
            name, message = rule.rule.name, rule.rule.message
            waived = waiver(policy, name, facts, now)
            if waived is not None:
                for e in policy.policy.exceptions:
                    if e.waives(name) and e.applies(facts.file, now) and (until is None or e.expires < until):
                        until = e.expires
            violations.append(
                Violation(
                    policy=policy.name,
                    rule=name,
                    message=message if error is None else f"{message} [{error}]",
                    enforced=policy.enforced,
                    waived=waived,
                )
            )
        decision = Decision(facts=facts, violations=tuple(violations), policies=plan.names)
        return Judgement(decision, until)


class _Plan(NamedTuple):
    """What `Evaluator.judge` runs for files of one (ecosystem, name): the matched policies' names and
    every (policy, rule) pair, in policy and rule order."""

    names: tuple[str, ...]
    rules: tuple[tuple[CompiledPolicy, _Rule], ...]


def policy_digest(policies: Sequence[CompiledPolicy]) -> str:
    """A digest of the policy documents: cached decisions are only valid under the same digest."""
    documents = [[p.policy.file, p.policy.raw.data] for p in policies]
    return hashlib.sha256(json.dumps(documents, sort_keys=True, default=str).encode()).hexdigest()
