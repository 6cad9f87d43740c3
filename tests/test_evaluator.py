"""The `Evaluator` (native checks, memos) gives exactly the decisions of plain CEL, and knows when they change."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from typing import Any

import pytest
from msgspec.structs import replace

from gate.evaluate import Evaluator, RuleReads
from gate.facts import AttestationFact, Facts, Publisher
from gate.policy.compile import CompiledPolicy, CompiledRule, compile_rule, load_policies
from gate.sources.filenames import python_file_facts
from tests.conftest import REPO, PolicyWriter
from tests.policy.reference import cel_decision
from tests.proxy.conftest import AGE_POLICY, ATTESTED_POLICY, AUDIT_POLICY, NOW

CUSTOM = """
apiVersion: gate/v1
kind: Policy
metadata: {name: custom}
spec:
  match: {packages: ["demo*", "sampleproject"]}
  minimumAge: {age: 3d, whenUnknown: allow}
  exceptions:
    - packages: ["demo<1.5"]
      waive: [minimumAge, fresh-enough]
      reason: vetted
      expires: 2026-11-20
  rules:
    - {name: no-yanked, expression: "!file.yanked", message: no yanked files}
    - {name: wheels-only, expression: 'file.kind == "wheel" || file.size < 5000', message: small sdists only}
    - {name: fresh-enough, expression: 'now - file.uploaded < duration("8760h")', message: not older than a year}
    - {name: whole-file, expression: 'has(file.index) && file["version"] != "6.6"', message: not 6.6}
    - {name: root-scoped, expression: '.attestations.all(a, a.verified)', message: only verified evidence}
"""


def corpus() -> list[Facts]:
    """Files that vary in every fact the policies read, with times around the age boundaries."""
    files = []
    ages = [None, dt.timedelta(0), dt.timedelta(days=3), dt.timedelta(days=7), dt.timedelta(days=7, microseconds=-1),
            dt.timedelta(days=400), dt.timedelta(days=-1)]
    names = ["demo-1.0-py3-none-any.whl", "demo-2.0.tar.gz", "demo-6.6-py3-none-any.whl",
             "sampleproject-4.0.0-py3-none-any.whl", "other-1.0.tar.gz"]
    for filename, age, yanked, size in itertools.product(names, ages, (False, True), (100, 9000)):
        base = python_file_facts(filename, "ab" * 32, size)
        assert base is not None
        files.append(replace(base, uploaded=None if age is None else NOW - age, yanked=yanked, index="https://x/"))
    good = AttestationFact(verified=True, source="p", identity="i", issuer="https://token.actions.githubusercontent.com",
                           publisher=Publisher(kind="GitHub", repository="pypa/sampleproject", workflow="release.yml"))
    bad = AttestationFact(verified=False, source="p", error="sigstore: bad")
    evidence: list[tuple[AttestationFact, ...]] = [(), (good,), (bad,), (bad, good)]
    return [Facts(file=f, attestations=a) for f, a in itertools.product(files[::3], evidence)] + [
        Facts(file=f) for f in files
    ]


@pytest.fixture
def policies(write_policy: PolicyWriter) -> list[CompiledPolicy]:
    return load_policies([write_policy(AGE_POLICY, ATTESTED_POLICY, AUDIT_POLICY, CUSTOM), REPO / "policies"])


def test_memo_gives_identical_decisions(policies: list[CompiledPolicy]) -> None:
    evaluator = Evaluator(policies)
    facts = corpus()
    for moment in (NOW, NOW + dt.timedelta(days=30)):
        for _ in range(2):  # the second round is answered from the memo
            for each in facts:
                assert evaluator.judge(each, moment).decision == cel_decision(policies, each, moment), each.file


def test_native_minimum_age_is_used_and_valid_until_is_the_boundary(policies: list[CompiledPolicy]) -> None:
    age_only = [p for p in policies if p.name == "age"]
    evaluator = Evaluator(age_only)
    base = python_file_facts("demo-2.0-py3-none-any.whl", "ab" * 32, 10)
    assert base is not None
    young = Facts(file=replace(base, uploaded=NOW - dt.timedelta(days=2)))
    judgement = evaluator.judge(young, NOW)
    assert judgement.decision.denying and judgement.valid_until == NOW + dt.timedelta(days=5)
    old = evaluator.judge(Facts(file=replace(base, uploaded=NOW - dt.timedelta(days=9))), NOW)
    assert not old.decision.violations and old.valid_until is None


def test_decisions_hold_until_a_waiver_expires_or_only_now_when_cel_reads_now(
    policies: list[CompiledPolicy], tmp_path: Path
) -> None:
    base = python_file_facts("demo-1.0-py3-none-any.whl", "ab" * 32, 10)
    assert base is not None
    fresh = Facts(file=replace(base, uploaded=NOW))
    exception = "{packages: [demo], waive: [minimumAge], reason: ok, expires: 2026-11-20}"
    waiving = AGE_POLICY + f"  exceptions:\n    - {exception}\n"
    (tmp_path / "waiving.yaml").write_text(waiving)
    judgement = Evaluator(load_policies([tmp_path / "waiving.yaml"])).judge(fresh, NOW)
    assert judgement.decision.violations[0].waived is not None
    assert judgement.valid_until == dt.datetime(2026, 11, 8, tzinfo=dt.UTC)  # when it comes of age anyway
    custom = Evaluator([p for p in policies if p.name == "custom"]).judge(fresh, NOW)
    assert custom.valid_until == NOW  # `fresh-enough` reads `now`: the decision holds for this moment only


@pytest.mark.parametrize(
    ("expression", "fields", "attestations", "now"),
    [
        ("!file.yanked", ("yanked",), False, False),
        ('now - file.uploaded > duration("1s") && file . kind == "wheel"', ("kind", "uploaded"), False, True),
        ('file["name"] == "x"', None, False, False),
        ("attestations.exists(a, a.verified)", (), True, False),
        (".attestations.exists(a, a.verified)", (), True, False),  # root-scoped names are reads too
        ('.now - .file.uploaded > duration("1s")', ("uploaded",), False, True),
        ('"file" == "now"', (), False, False),  # string literals read nothing
        ('file.name == "x" || has(file.index) && [file][0].size > 1', None, False, False),
        ('has(file.size) && .file.name == "x" && file.name != "file.kind"', ("name", "size"), False, False),
        ("[file].size() > 0", None, False, False),  # `file` as a value may be read whole
        ('attestations.exists(a, {"file": {"name": a.identity}}.file.name == "x")', (), True, False),  # `file`, a key
    ],
)
def test_rule_reads(expression: str, fields: tuple[str, ...] | None, attestations: bool, now: bool) -> None:
    assert RuleReads.of(compile_rule("r", expression, "m")) == RuleReads(fields, attestations, now)


SOURCE_RULES = """
apiVersion: gate/v1
kind: Policy
metadata: {name: sources}
spec:
  match: {packages: [sampleproject]}
  rules:
    - {name: from-pypi, expression: 'attestations.all(a, a.source.startsWith("https://pypi/"))', message: m}
    - {name: indexed, expression: 'attestations.all(a, a["source"] != "https://evil/x")', message: m}
"""


def _sample_facts(*sources: str) -> list[Facts]:
    """One sampleproject file per source, each with a verified attestation found there (else identical)."""
    out = []
    for i, source in enumerate(sources):
        file = python_file_facts(f"sampleproject-4.0.{i}-py3-none-any.whl", f"{i:02x}" * 32, 10)
        assert file is not None
        attestation = AttestationFact(
            verified=True, source=source, identity="i", issuer="https://token.actions.githubusercontent.com",
            publisher=Publisher(kind="GitHub", repository="pypa/sampleproject"), claims={"b": "2", "a": "1"},
            integratedTime=NOW,
        )
        out.append(Facts(file=replace(file, uploaded=NOW - dt.timedelta(days=30)), attestations=(attestation,)))
    return out


def test_attestation_rules_are_memoized_across_files(
    policies: list[CompiledPolicy], monkeypatch: pytest.MonkeyPatch
) -> None:
    attested = [p for p in policies if p.name in ("attested", "custom")]
    evaluator = Evaluator(attested)
    runs: list[str] = []
    evaluate_rule = CompiledRule.evaluate

    def counting(rule: CompiledRule, activation: dict[str, Any]) -> tuple[bool, str | None]:
        runs.append(rule.name)
        return evaluate_rule(rule, activation)

    monkeypatch.setattr(CompiledRule, "evaluate", counting)
    files = _sample_facts(*(f"https://pypi/integrity/{i}/provenance" for i in range(5)))
    decisions = [evaluator.judge(each, NOW).decision for each in files]
    # the compiler's attestation rules ran no CEL at all (they are native: tests/policy/test_native_attestations.py);
    # a custom rule reading attestations may read `source`, so it runs for each source
    assert sorted(n for n in runs if n.startswith("attestations.")) == []
    assert runs.count("root-scoped") == len(files)
    assert decisions == [cel_decision(attested, each, NOW) for each in files]


def test_rules_that_read_the_source_are_not_answered_for_another_source(
    policies: list[CompiledPolicy], write_policy: PolicyWriter, tmp_path: Path
) -> None:
    (tmp_path / "sources.yaml").write_text(SOURCE_RULES)
    with_sources = [*policies, *load_policies([tmp_path / "sources.yaml"])]
    evaluator = Evaluator(with_sources)
    files = _sample_facts("https://pypi/a", "https://elsewhere/b", "https://evil/x", "https://pypi/c")
    for moment in (NOW, NOW + dt.timedelta(days=30)):
        for each in files:
            assert evaluator.judge(each, moment).decision == cel_decision(with_sources, each, moment), each.attestations
    rules = [[v.rule for v in evaluator.judge(each, NOW).decision.violations] for each in files]
    assert [("from-pypi" in r, "indexed" in r) for r in rules] == [(False, False), (True, False), (True, True),
                                                                  (False, False)]


def test_a_waived_decision_holds_until_its_waiver_ends(tmp_path: Path) -> None:
    base = python_file_facts("demo-1.0-py3-none-any.whl", "ab" * 32, 10)
    assert base is not None
    fresh = Facts(file=replace(base, uploaded=NOW))
    first = "{packages: [demo], waive: [minimumAge], reason: first, expires: 2026-11-03}"
    second = "{packages: [demo], waive: [minimumAge], reason: second, expires: 2026-11-05}"
    (tmp_path / "waiving.yaml").write_text(AGE_POLICY + f"  exceptions:\n    - {first}\n    - {second}\n")
    evaluator = Evaluator(load_policies([tmp_path / "waiving.yaml"]))
    judgement = evaluator.judge(fresh, NOW)
    assert judgement.decision.violations[0].waived == "first, until 2026-11-03"  # as written: through that day
    assert judgement.valid_until == dt.datetime(2026, 11, 4, tzinfo=dt.UTC)
    later = evaluator.judge(fresh, judgement.valid_until)  # the decision does change then
    assert later.decision.violations[0].waived == "second, until 2026-11-05"
    assert later.valid_until == dt.datetime(2026, 11, 6, tzinfo=dt.UTC)
