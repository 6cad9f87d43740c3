"""The native form the compiler makes of a structured rule judges exactly as its CEL, the specification."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest

from gate.evaluate import Evaluator
from gate.facts import Continuity, Ecosystem, Facts, LineRelease, Publisher
from gate.policy.activation import to_activation
from gate.policy.cel_types import MAX_ATTESTATIONS, MAX_CLAIMS
from gate.policy.compile import CompiledPolicy, CompiledRule, load_policy_text
from gate.policy.model import STRUCTURED_RULES
from tests import factories as f

EVERY_FIELD = """
apiVersion: gate/v1
kind: Policy
metadata: {{name: p}}
spec:
  minimumAge: {minimum_age}
  attestations:
    required: {required}
    predicateTypes: ["{publish}"]
    signers:
      - {{publisher: {{kind: GitHub, repository: pypa/sampleproject}}}}
      - {{identity: "https://github.com/pypa/*", issuer: "{github}"}}
    targetChannel: match
    slsa: {{sourceUri: github.com/pypa/sampleproject, sourceTag: "v*", builderId: "{builder}"}}
  vulnerabilities: {{maxSeverity: medium}}
  continuity: {continuity}
  rules:
    - {{name: custom, expression: "!file.yanked", message: m}}
"""
MINIMUM_AGES = ["1s", "36h", "{age: 7d, whenUnknown: allow}", "{age: 7d, whenUnknown: deny}", "P1W", "90m",
                "{age: 7d, timeSources: [index, transparencyLog], backdating: 1h}",
                "{age: 36h, timeSources: [transparencyLog, index], whenUnknown: allow, backdating: 0s}",
                "{age: 90m, timeSources: [transparencyLog]}"]
CONTINUITIES = ["{noDowngrade: true}", "{noDowngrade: true, within: project, ignoreAfter: 30d}",
                "{noDowngrade: true, within: minor, ignoreAfter: 1s, whenUnknown: allow}"]


def compiled(minimum_age: str, required: bool = True) -> CompiledPolicy:
    continuity = CONTINUITIES[len(minimum_age) % len(CONTINUITIES)]
    text = EVERY_FIELD.format(minimum_age=minimum_age, required=str(required).lower(), publish=f.PUBLISH,
                              github=f.GITHUB, continuity=continuity, builder=BUILDER)
    (policy,) = load_policy_text(text)
    return policy


def _moment(rng: random.Random) -> dt.datetime:
    """A time near NOW: exactly on an age boundary, a microsecond off it, or anywhere, in some time zone."""
    base = f.NOW - rng.choice([dt.timedelta(0), dt.timedelta(seconds=1), dt.timedelta(hours=36), dt.timedelta(days=7),
                               dt.timedelta(minutes=90), dt.timedelta(days=rng.randint(-400, 400))])
    base += dt.timedelta(microseconds=rng.choice([0, 0, 1, -1, rng.randint(-10**9, 10**9)]))
    zone = dt.timezone(dt.timedelta(minutes=rng.choice([0, 60, -330, 840])))
    return base.astimezone(zone)


PUBLISHERS = [None, Publisher(kind=""), f.attestation().publisher,
              Publisher(kind="GitHub", repository="pypa/sampleproject", workflow="release.yml", environment="pypi"),
              Publisher(kind="GitHub", repository="evil/fork", workflow="release.yml"),
              Publisher(kind="Google", email="someone@example.com")]


BUILDER = "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_generic_slsa3.yml"


def _slsa(rng: random.Random) -> dict[str, Any]:
    """SLSA facts that meet the policy's `slsa` keys, miss one, or are absent (null)."""
    return {
        "sourceUri": rng.choice([None, "github.com/pypa/sampleproject", "github.com/pypa/sampleproject2"]),
        "sourceRef": rng.choice([None, "refs/tags/v1.0", "refs/heads/v1.0", "refs/tags/1.0"]),
        "builderId": rng.choice([None, BUILDER, f"{BUILDER}@refs/tags/v2.1.0", f"{BUILDER}x@refs/tags/v2"]),
    }


def _attestation(rng: random.Random) -> Any:
    claims = {f"c{i}": "v" for i in range(rng.choice([0, 1, MAX_CLAIMS, MAX_CLAIMS + 1]))}
    signed = None if rng.random() < 0.3 else _moment(rng)
    signer: dict[str, Any] = rng.choice([
        {}, {"publisher": None}, {"identity": None, "publisher": None},
        {"identity": "https://github.com/evil/x", "publisher": Publisher(kind="GitHub", repository="evil/x")},
        {"issuer": None, "publisher": Publisher(kind="GitLab", repository="pypa/sampleproject")},
    ])
    return f.attestation(verified=rng.random() < 0.7, claims=claims, source=f"s{rng.randint(0, 3)}",
                         signedTime=signed, **({"publisher": rng.choice(PUBLISHERS)} | signer), **_slsa(rng))


def _continuity(rng: random.Random) -> Continuity:
    def bar() -> LineRelease | None:
        if rng.random() < 0.3:
            return None
        publishers = tuple(p or Publisher(kind="") for p in rng.sample(PUBLISHERS, rng.randint(1, 2)))
        return LineRelease("1.0", None if rng.random() < 0.2 else _moment(rng) - dt.timedelta(days=30), publishers)

    own = bar() if rng.random() < 0.3 else None
    return Continuity(known=rng.random() < 0.85, minor=bar(), major=bar(), project=bar(), release=own)


def generated_facts(count: int, seed: int) -> list[Facts]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        how_many = rng.choice([0, 0, 1, 2, 3, MAX_ATTESTATIONS, MAX_ATTESTATIONS + 1])
        attestations = [_attestation(rng) for _ in range(how_many)]
        uploaded = None if rng.random() < 0.15 else _moment(rng)
        ecosystem = Ecosystem.CONDA if rng.random() < 0.1 else Ecosystem.PYPI
        base = f.facts(*attestations, uploaded=uploaded, ecosystem=ecosystem)
        out.append(Facts(base.file, base.attestations, continuity=_continuity(rng)))
    return out


def test_each_structured_rule_the_compiler_makes_is_named_and_the_custom_one_has_no_native_form() -> None:
    rules = {rule.name: rule for rule in compiled("7d").rules}
    assert set(rules) == {*STRUCTURED_RULES, "custom"} - {"minimumAge.backdating"}
    assert all(not rule.written for name, rule in rules.items() if name != "custom") and rules["custom"].written
    assert rules["custom"].native is None
    assert {name for name, rule in rules.items() if rule.native is not None} == {
        "minimumAge", "attestations.required", "attestations.signers", "attestations.predicateTypes",
        "attestations.targetChannel", "attestations.slsa", "vulnerabilities.malicious", "vulnerabilities.maxSeverity",
        "continuity"}


@pytest.mark.parametrize("minimum_age", MINIMUM_AGES)
def test_native_checks_agree_with_their_cel_over_generated_facts(minimum_age: str) -> None:
    policy = compiled(minimum_age)
    natives: list[CompiledRule] = [rule for rule in policy.rules if rule.native is not None]
    assert natives
    checked = 0
    for i, facts in enumerate(generated_facts(150, seed=len(minimum_age))):
        now = _moment(random.Random(i)) if i % 3 == 0 else f.NOW  # per file: NOW meets the generated boundaries
        activation = to_activation(facts, now)
        for rule in natives:
            assert rule.native is not None
            judged = rule.native(facts, now)
            if judged is None:  # left to the CEL (tests/policy/test_native_attestations.py)
                continue
            passed, error, changes = judged
            assert (passed, error) == rule.evaluate(activation), (rule.name, facts, now)
            if changes is not None:  # the outcome does change then, and not a microsecond sooner
                assert rule.evaluate(to_activation(facts, changes))[0] != passed
                assert rule.evaluate(to_activation(facts, changes - dt.timedelta(microseconds=1)))[0] == passed
            checked += 1
    assert checked >= 300


def test_the_engine_runs_no_cel_for_a_native_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    (policy,) = load_policy_text("apiVersion: gate/v1\nkind: Policy\nmetadata: {name: p}\nspec: {minimumAge: 7d}\n")
    ran: list[str] = []

    def counting(rule: CompiledRule, activation: dict[str, Any]) -> tuple[bool, str | None]:
        ran.append(rule.name)
        return True, None

    monkeypatch.setattr(CompiledRule, "evaluate", counting)
    young = Evaluator([policy]).judge(f.facts(uploaded=f.NOW - dt.timedelta(days=1)), f.NOW)
    assert [v.rule for v in young.decision.denying] == ["minimumAge"] and ran == []
    assert young.valid_until == f.NOW + dt.timedelta(days=6)


def test_a_drifting_native_check_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The agreement test fails if the native form and the CEL part ways (here: `>` for `>=`)."""
    from gate.policy import native  # noqa: PLC0415

    def drifted(self: native.OldEnough, facts: Facts, now: dt.datetime) -> native.RuleResult:
        uploaded = facts.file.uploaded
        if uploaded is None:
            return self.allow_unknown, None, None
        return now - uploaded > self.age, None, None

    monkeypatch.setattr(native.OldEnough, "__call__", drifted)
    with pytest.raises(AssertionError):
        test_native_checks_agree_with_their_cel_over_generated_facts("36h")


def test_an_upload_time_at_the_end_of_time_is_never_old_enough_and_does_not_crash() -> None:
    """An index may say a file was uploaded in the year 9999: the moment it becomes old enough is past what
    a datetime holds, so the decision holds for good (it raised OverflowError)."""
    (policy,) = load_policy_text("apiVersion: gate/v1\nkind: Policy\nmetadata: {name: p}\nspec: {minimumAge: 7d}\n")
    facts = f.facts(uploaded=dt.datetime(9999, 12, 30, tzinfo=dt.UTC))
    (rule,) = policy.rules
    assert rule.native is not None and rule.native(facts, f.NOW) == (False, None, None)
    assert rule.evaluate(to_activation(facts, f.NOW)) == (False, None)
    judged = Evaluator([policy]).judge(facts, f.NOW)
    assert judged.valid_until is None and [v.rule for v in judged.decision.denying] == ["minimumAge"]
