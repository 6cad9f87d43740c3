"""The specification the engine is held to: every rule of every matching policy run as plain CEL, no
native checks and no memos (what `evaluate()` was before there was one evaluation path)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from gate.decision import Decision, Violation
from gate.evaluate import Unmatched, unmatched_violations, waiver
from gate.facts import Facts
from gate.policy.activation import to_activation
from gate.policy.compile import CompiledPolicy


def cel_decision(
    policies: Sequence[CompiledPolicy], facts: Facts, now: dt.datetime, unmatched: Unmatched = Unmatched.DENY
) -> Decision:
    matched = [p for p in policies if p.policy.match.applies(facts.file)]
    if not matched:
        return Decision(facts=facts, violations=unmatched_violations(facts.file, unmatched), policies=())
    violations = []
    activation = to_activation(facts, now)
    for policy in matched:
        for rule in policy.rules:
            passed, error = rule.evaluate(activation)
            if not passed:
                message = rule.failure(facts)  # made from this file's facts, never memoized
                violations.append(Violation(
                    policy=policy.name,
                    rule=rule.name,
                    message=message if error is None else f"{message} [{error}]",
                    enforced=policy.enforced,
                    waived=waiver(policy, rule.name, facts, now),
                ))
    return Decision(facts=facts, violations=tuple(violations), policies=tuple(p.name for p in matched))
