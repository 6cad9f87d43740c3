"""A compiler-made rule with an exact native check is not parsed when its policy loads (`gate check` of an
age-only policy never builds the CEL parser): what the compiler declares it reads is what its parse says,
and its CEL, checked and compiled on first run, judges as an eagerly compiled rule does."""

from __future__ import annotations

import pytest

from gate.policy import cel
from gate.policy.activation import to_activation
from gate.policy.compile import Deferred, compile_rule, load_policy_text, rule_sources
from tests import factories as f
from tests.policy.test_native import MINIMUM_AGES, compiled


@pytest.mark.parametrize("minimum_age", MINIMUM_AGES)
@pytest.mark.parametrize("required", [True, False])
def test_declared_reads_are_the_parsed_ones(minimum_age: str, required: bool) -> None:
    policy = compiled(minimum_age, required)
    sources = [s for s in rule_sources(policy.policy) if s.declared is not None]
    names = {s.name for s in sources}  # minimumAge: with the index's time alone (other sources read evidence)
    assert names <= {"minimumAge", "attestations.required"} and ("attestations.required" in names) == required
    assert ("minimumAge" in names) == ("timeSources" not in minimum_age)
    for source, rule in ((s, next(r for r in policy.rules if r.name == s.name)) for s in sources):
        eager = compile_rule(source.name, source.expression, source.message, written=False, native=source.native)
        assert source.declared is not None and isinstance(rule.program, Deferred)
        assert (rule.reads, rule.file_fields, rule.cost) == (eager.reads, eager.file_fields, eager.cost)
        assert source.declared == (eager.reads, eager.file_fields, eager.cost)
        facts = f.facts(f.attestation(), uploaded=f.NOW)
        assert rule.evaluate(to_activation(facts, f.NOW)) == eager.evaluate(to_activation(facts, f.NOW))


def test_an_age_only_policy_loads_without_parsing_cel(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("CEL parsed")

    monkeypatch.setattr(cel, "_env", refuse)
    (policy,) = load_policy_text("apiVersion: gate/v1\nkind: Policy\nmetadata: {name: p}\nspec: {minimumAge: 7d}\n")
    assert [r.name for r in policy.rules] == ["minimumAge"] and isinstance(policy.rules[0].program, Deferred)
