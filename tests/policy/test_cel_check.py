"""The static check of CEL rules: every loader (check, serve, lint, test) rejects a rule that cannot run
as written, with its file, line, path and the place in the expression, and never crashes on one."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gate.cli import main
from gate.errors import Issue, PolicyError
from gate.evaluate import evaluate
from gate.facts import Publisher
from gate.policy import cel
from gate.policy.activation import to_activation
from gate.policy.cel_check import check_expression
from gate.policy.cel_types import MAX_ATTESTATIONS, MAX_POLICY_COST
from gate.policy.compile import load_policies, load_policy_text
from gate.policy.lint import LintOptions, lint_paths
from tests import factories as f
from tests.conftest import REPO

HEADER = "apiVersion: gate/v1\nkind: Policy\nmetadata: {name: p}\nspec:\n"
WHEEL = REPO / "examples" / "sampleproject-4.0.0-py3-none-any.whl"
LIST200 = "[" + ", ".join(str(i) for i in range(200)) + "]"


def rule_policy(expression: str) -> str:
    """A policy document whose only rule is `expression` (on line 6, as a YAML single-quoted scalar)."""
    quoted = expression.replace("'", "''")
    return HEADER + f"  rules:\n    - {{name: r, message: m, expression: '{quoted}'}}\n"


def load_error(expression: str) -> Issue:
    with pytest.raises(PolicyError) as raised:
        load_policy_text(rule_policy(expression), "p.yaml")
    [issue] = raised.value.issues
    return issue


# (expression, what the error says, its column in the expression); the expression is on line 1
REJECTED = [
    ("file.yanked == false || file.nosuchfield == 1", "file has no field 'nosuchfield'", 30),
    ("file.nmae == 'x'", "did you mean 'name'?", 6),
    ("attestations.exists(a, a.publisher.repo == 'x')", "publisher has no field 'repo'", 36),
    ("attestations.all(a, a.claims.buildTriger == 'push')", "claim 'buildTriger'; did you mean 'buildTrigger'?", 30),
    ("attestations.all(a, a.claims['runner'] == 'x')", "no certificate carries a claim 'runner'", 30),
    ("file.size == 'x'", "no operator == for (int, string)", 11),
    ("file.yanked + 1 > 0", "no operator + for (bool, int)", 13),
    ("now - file.size > duration('1d')", "no operator - for (timestamp, int)", 5),
    ("file.name", "the rule yields string, not a bool", None),
    ("file.yanked ? 1 : 2", "the rule yields int, not a bool", None),
    ("has(file)", "has() takes one field selection", 1),
    ("!has(file.size)", "cel-python cannot negate has()", 1),
    ("has(file.size) && has(file.name)", "cannot combine two has() results with &&", 1),
    ("has(file.size) ? true : false", "cannot use has() as the condition of ?:", 1),
    ("attestations.exists(a)", "exists() takes (v, condition)", 14),
    ("attestations.exists(1, true)", "exists() takes (v, condition)", 14),
    ("attestations.map(a, b, c, d).size() > 0", "map() takes (v, expression) or map(v, condition, expression)", 14),
    ("attestations.all(a, a.identity)", "the condition of all() must be a bool, not string", 14),
    ("file.exists(x, true)", "exists() needs a list or a map, not file", 6),
    ("nosuch == 1", "undeclared reference to 'nosuch'", 1),
    ("foo(file.name)", "unknown function foo()", 1),
    ("file.name.lowerAscii() == 'x'", "no method lowerAscii() on string", 11),
    ("file.name.startsWith(1)", "startsWith() takes a string, not int", 11),
    ("size(file.size) > 0", "size() takes a string, bytes, list or map, not int", 1),
    ("timestamp('yesterday') < now", "invalid timestamp 'yesterday'", 11),
    ("now - file.uploaded > duration('7days')", "invalid duration '7days'", 32),
    ("file.size == 1.0", "no operator == for (int, double)", 11),
    ("Msg{a: 1} == file", "message construction", 1),
    ("dyn(file.size) == 'x'", "dyn() is not supported", 1),
    ("file.size != null && file.size > 5", "cannot compare a number with null (!= is an error", 1),
    ("file.size == null ? true : file.size > 5", "cannot compare a number with null (== is an error", 1),
    ("bool('yes')", "invalid bool 'yes'", 6),
    ("int('0x') > 0", "invalid int '0x'", 5),
    ("(file.yanked ? 1 : 'x') == 1", "the branches of ?: must have one type, not int and string", 2),
]


@pytest.mark.parametrize(("expression", "message", "column"), REJECTED)
def test_rules_that_cannot_run_are_policy_errors(expression: str, message: str, column: int | None) -> None:
    issue = load_error(expression)
    assert (issue.file, issue.line, issue.path) == ("p.yaml", 6, "spec.rules[0].expression")
    assert message in issue.message and issue.message.startswith("rule 'r': ")
    if column is not None:
        assert issue.message.endswith(f"at line 1, column {column} of the expression")


ACCEPTED = [
    "!file.yanked",
    "file.uploaded == null || now - file.uploaded >= duration('168h')",
    "file.size == null || file.size < 10000000",
    "file.size < 10000000 || file.size == null || file.yanked",
    "file.name.startsWith('corp-') && file.version.matches('^[0-9.]+$')",
    "attestations.exists(a, a.verified && a.publisher.repository == 'pypa/sampleproject')",
    "attestations.all(a, !('sourceRepositoryRef' in a.claims) || a.claims.sourceRepositoryRef.startsWith('refs/'))",
    "attestations.exists(a, 'buildTrigger' in a.claims && a.claims.buildTrigger == 'push')",
    "attestations.exists(a, has(a.claims.buildTrigger)) && attestations.all(a, has(a.claims.buildTrigger))",
    "attestations.filter(a, has(a.claims.buildTrigger)).size() == 0",
    "has(file.index) && file['version'] != '6.6'",
    "attestations.filter(a, a.verified).map(a, a.identity).exists_one(i, i.endsWith('@refs/heads/main'))",
    "size(attestations) <= 3 && attestations.size() >= 0",
    "has(file.size)",
    "file.ecosystem in ['pypi', 'conda'] && file.kind != 'sdist'",
    "{'numpy': 1}.exists(k, k == file.name) ? file.size > 1 : true",
    "now.getFullYear() >= 2026 && int(now) > 0 && string(file.size) != ''",
    "attestations.exists(a, a.integratedTime != null && now - a.integratedTime < duration('8760h'))",
    "file['name'] == 'x' || attestations.map(a, a.publisher.kind).size() >= 0",
    ".file.yanked == false",
    "attestations.all(a, a.claims != {} && [a.claims, {'k': 'v'}].exists(m, m.size() > 0))",
    "(" * cel.MAX_DEPTH + "true" + ")" * cel.MAX_DEPTH,
]


@pytest.mark.parametrize("expression", ACCEPTED)
def test_rules_that_type_check_load_and_run(expression: str) -> None:
    (policy,) = load_policy_text(rule_policy(expression))
    rule = policy.rules[-1]
    assert rule.evaluate(to_activation(f.facts(f.attestation()), f.NOW))[1] is None
    _, error = rule.evaluate(to_activation(f.facts(uploaded=None, size=None), f.NOW))
    assert error is None or "could not be evaluated" in error  # unknown facts may deny, never crash


CRASHES = {
    "exists-one-arg": "attestations.exists(a)",
    "exists-literal-var": "attestations.exists(1, true)",
    "map-four-args": "attestations.map(a, b, c, d).size() > 0",
    "300-parens": "(" * 300 + "true" + ")" * 300,
    "3000-parens": "(" * 3000 + "true" + ")" * 3000,
    "20k-plus-chain": " + ".join(["1"] * 20_000) + " > 0",
    "1k-plus-chain": " + ".join(["1"] * 1_000) + " > 0",
    "100-nots": "!" * 100 + "true",
    "100-nested-lists": "[" * 100 + "1" + "]" * 100 + " == []",
}


@pytest.mark.parametrize("expression", CRASHES.values(), ids=CRASHES.keys())
def test_cel_that_crashed_cel_python_is_a_policy_error(
    expression: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """IndexError, ValueError and RecursionError from cel-python used to escape check and lint."""
    policy = tmp_path / "p.yaml"
    policy.write_text(rule_policy(expression), encoding="utf-8")
    code = main(["check", str(WHEEL), "-p", str(policy), "--uploaded", "2024-11-06T22:37:09Z"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{policy}:6: spec.rules[0].expression: " in err and "Traceback" not in err
    findings = lint_paths([policy], LintOptions(now=f.NOW))
    assert [(x.code, x.level, x.issue.line) for x in findings] in (
        [("cel-type", "error", 6)],
        [("cel-syntax", "error", 6)],
    )


@pytest.mark.parametrize("expression", ["attestations.exists(a)", "(" * 3000 + "true" + ")" * 3000])
def test_serve_refuses_to_start_with_such_a_rule(expression: str, tmp_path: Path) -> None:
    """The proxy loads policies with the same check before it listens (the timeout only detects a hang)."""
    policy = tmp_path / "p.yaml"
    policy.write_text(rule_policy(expression), encoding="utf-8")
    command = [sys.executable, "-m", "gate", "serve", "-p", str(policy), "--upstream", "http://127.0.0.1:9/simple/"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert f"{policy}:6: spec.rules[0].expression: " in done.stderr and "Traceback" not in done.stderr


def test_limits_are_named() -> None:
    assert "nests more than 64 levels" in load_error("(" * 65 + "true" + ")" * 65).message
    long = " || ".join(["file.yanked"] * 800)
    assert f"characters long; the limit is {cel.MAX_LENGTH}" in load_error(long).message


def test_regexes_are_checked_by_re2_the_engine_that_runs_them() -> None:
    """Python's `re` accepts lookarounds and backreferences; RE2, which runs CEL's matches(), does not."""
    for regex in ("^(?=corp)", "(a)\\\\1", "(?<!x)y"):
        issue = load_error(f"file.name.matches('{regex}')")
        assert "(RE2 syntax: no lookarounds or backreferences)" in issue.message
    assert "not Unicode text" in load_error('file.name.matches("\\ud800")').message
    # a pattern read from the facts (an attacker's claim could be ".*") is not a regex a policy wrote
    issue = load_error("attestations.exists(a, a.identity.matches(a.issuer))")
    assert "takes its regex as a string literal" in issue.message
    identity = HEADER + (
        "  attestations:\n    signers:\n"
        "      - {issuer: 'https://token.actions.githubusercontent.com', identity: {regex: 'https://(?=github)'}}\n"
    )
    with pytest.raises(PolicyError) as raised:
        load_policy_text(identity, "p.yaml")
    [issue] = raised.value.issues
    assert issue.line == 7 and "invalid regex 'https://(?=github)' (RE2 syntax" in issue.message


def test_lint_codes(tmp_path: Path) -> None:
    cases = {
        "types": ("file.size == 'x'", "cel-type"),
        "regex": ("file.name.matches('(?=x)')", "regex"),
        "cost": (f"{LIST200}.all(a, {LIST200}.all(b, true))", "cel-cost"),
    }
    for name, (expression, code) in cases.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(rule_policy(expression).replace("name: p", f"name: {name}"), encoding="utf-8")
        [finding] = lint_paths([path], LintOptions(now=f.NOW))
        assert (finding.code, finding.level, finding.issue.line) == (code, "error", 6), name


def test_expensive_rules_are_rejected_at_load() -> None:
    """Nested comprehensions multiply: 200^4 steps over literals, or attestations nested four deep."""
    four = f"{LIST200}.all(a, {LIST200}.all(b, {LIST200}.all(c, {LIST200}.all(d, a + b + c + d >= 0))))"
    issue = load_error(four)
    assert "evaluation steps, more than the budget" in issue.message
    nested = "attestations.all(a, attestations.all(b, attestations.all(c, attestations.all(d, a == d))))"
    assert "more than the budget" in load_error(nested).message
    assert check_expression(f"{LIST200}.exists(a, a == file.size)").problem is None


def test_a_policy_has_a_total_budget() -> None:
    """Many rules each within budget cannot add up to an unbounded evaluation either."""
    rule = f"{LIST200}.all(a, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].exists(b, a != b + 1000))"
    assert check_expression(rule).problem is None
    cost = check_expression(rule).cost
    count = MAX_POLICY_COST // cost + 1
    rules = "".join(f"    - {{name: r{i}, message: m, expression: '{rule}'}}\n" for i in range(count))
    with pytest.raises(PolicyError) as raised:
        load_policy_text(HEADER + "  rules:\n" + rules, "p.yaml")
    [issue] = raised.value.issues
    assert (issue.path, issue.line) == ("spec.rules", 5) and "rules together may take" in issue.message


def test_rules_are_not_run_over_more_attestations_than_the_budget_assumes() -> None:
    """The static cost holds for at most MAX_ATTESTATIONS; a file with more is denied, not evaluated."""
    spec = rule_policy("attestations.all(a, attestations.all(b, a.identity == b.identity))")
    policies = load_policy_text(spec)
    many = f.facts(*[f.attestation() for _ in range(MAX_ATTESTATIONS + 1)])
    decision = evaluate(policies, many, f.NOW)
    [violation] = decision.violations
    assert "rule not evaluated" in violation.message and f"at most {MAX_ATTESTATIONS}" in violation.message
    assert evaluate(policies, f.facts(*[f.attestation()] * MAX_ATTESTATIONS), f.NOW).violations == ()


def _policy_documents() -> list[tuple[str, str]]:
    """Every policy gate ships or documents: policies/, and the YAML blocks of README.md and docs/."""
    documents = [(str(p), p.read_text(encoding="utf-8")) for p in sorted((REPO / "policies").glob("*.yaml"))]
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for block in re.findall(r"```yaml\n(.*?)```", page.read_text(encoding="utf-8"), re.DOTALL):
            if "kind: Policy" in block:
                documents.append((str(page), block))
    return documents


@pytest.mark.parametrize(("where", "text"), _policy_documents(), ids=lambda v: v[-40:])
def test_every_shipped_and_documented_policy_type_checks(where: str, text: str) -> None:
    assert load_policy_text(text, where)


def test_every_generated_rule_type_checks() -> None:
    """Every structured field in every form compiles to rules the static check accepts, within budget."""
    signers = """
    signers:
      - {issuer: 'https://token.actions.githubusercontent.com', identity: 'https://github.com/pypa/*'}
      - {issuer: {regex: 'https://(token|accounts)\\..*'}, identity: {regex: 'https://github\\.com/.+'}}
      - publisher: {kind: GitHub, repository: 'pallets/*', workflow: publish.yml, environment: pypi}
      - publisher: {kind: GitLab, repository: group/project, workflowFilepath: .gitlab-ci.yml}
      - publisher: {kind: Google, email: '*@my-project.iam.gserviceaccount.com'}"""
    for required, channel, age, count in [
        ("true", "match", "7d", 5),
        ("false", "'https://c.example/ch'", "{age: 36h, whenUnknown: allow}", 4),
    ]:
        text = HEADER + f"""  minimumAge: {age}
  attestations:
    required: {required}
    predicateTypes: [https://docs.pypi.org/attestations/publish/v1, https://slsa.dev/provenance/v1]{signers}
    targetChannel: {channel}
"""
        (policy,) = load_policy_text(text)
        assert len(policy.rules) == count
        for rule in policy.rules:
            assert check_expression(rule.expression).problem is None


def test_shipped_policies_load_through_every_front_end_loader() -> None:
    assert [p.name for p in load_policies([REPO / "policies"])]


def test_now_is_a_timestamp_and_facts_are_checked_as_declared() -> None:
    assert "no operator > for (timestamp, string)" in load_error("now > '2026-01-01'").message
    policies = load_policy_text(rule_policy("now > timestamp('2026-01-01T00:00:00Z')"))
    later, earlier = dt.datetime(2026, 6, 1, tzinfo=dt.UTC), dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
    assert evaluate(policies, f.facts(), later).violations == ()
    assert evaluate(policies, f.facts(), earlier).violations != ()


def test_many_signers_stay_within_the_limits() -> None:
    """The compiler joins signers as a balanced tree, so 100 of them nest a few levels, not 100."""
    signers = "".join(f"      - publisher: {{kind: GitHub, repository: o/r{i}}}\n" for i in range(99))
    pypa = "      - publisher: {kind: GitHub, repository: pypa/*}\n"
    text = HEADER + "  attestations:\n    signers:\n" + signers + pypa
    policies = load_policy_text(text)
    assert evaluate(policies, f.facts(f.attestation()), f.NOW).violations == ()
    other = f.attestation(publisher=Publisher(kind="GitHub", repository="evil/x", workflow="release.yml"))
    assert [v.rule for v in evaluate(policies, f.facts(other), f.NOW).violations] == ["attestations.signers"]


def test_a_long_list_of_identity_signers_loads() -> None:
    """The rule gate makes of `signers` grows with them: the length limit and per-rule budget are for what
    people write; the policy's total budget still bounds it (150 signers: about 30,000 characters)."""
    signers = "".join(
        f"      - {{issuer: https://token.actions.githubusercontent.com, identity: 'https://github.com/org{i}/"
        f"project{i}/.github/workflows/release.yml@refs/tags/*'}}\n"
        for i in range(150)
    )
    policies = load_policy_text(HEADER + "  attestations:\n    signers:\n" + signers)
    assert [v.rule for v in evaluate(policies, f.facts(f.attestation()), f.NOW).violations] == ["attestations.signers"]
    too_many = "".join(signers for _ in range(4))  # 600 signers: past the policy's total budget
    with pytest.raises(PolicyError) as raised:
        load_policy_text(HEADER + "  attestations:\n    signers:\n" + too_many)
    assert "the policy's rules together may take" in raised.value.diagnostics()
