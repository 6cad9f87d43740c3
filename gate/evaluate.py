"""Compiled policies + facts -> Decision. Pure: no I/O, no clock (the caller passes `now`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from gate.decision import Decision, Violation
from gate.facts import Facts, to_activation
from gate.policy.compile import CompiledPolicy


def _waiver(policy: CompiledPolicy, rule: str, facts: Facts, now: dt.datetime) -> str | None:
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
                        waived=_waiver(policy, rule.name, facts, now),
                    )
                )
    return Decision(facts=facts, violations=tuple(violations), policies=tuple(p.name for p in matched))
