"""The policy reader refuses what would let a policy say something other than what a reviewer reads
(duplicate keys, aliases, an empty file, a skipped `*.YAML`), and input that would exhaust it (billion
laughs, deep nesting, huge files), each with its file and line. `check`, `lint` and `test` share it."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.cli import build_parser, main
from gate.commands.serve import settings_from
from gate.errors import PolicyError
from gate.policy import cel
from gate.policy.compile import load_policies, load_policy_text
from gate.policy.lint import lint_paths
from gate.policy.load import MAX_CEL_TEXT, MAX_DEPTH, MAX_NODES, MAX_POLICY_BYTES, load_paths, load_text
from gate.policytest.cases import load_case_file
from gate.proxy.server import check_settings
from tests.policy.lint.test_lint import OPTIONS
from tests.test_cli import UPLOADED, WHEEL

HEADER = "apiVersion: gate/v1\nkind: Policy\nmetadata: {name: p}\n"
DENY_ALL = HEADER + "spec:\n  rules:\n    - {name: never, expression: 'false', message: denied}\n"


def slow_cel(documents: int, rules: int) -> str:
    """The red team's slow policy: rules of `size([0,0,...4900 zeros]) > 0` (each within the length limit
    of one expression, 9,811 characters; each took seconds to parse), split over several documents."""
    expression = "size([" + ",".join(["0"] * 4900) + "]) > 0"
    body = "".join(f"    - name: r{i}\n      expression: '{expression}'\n      message: m\n" for i in range(rules))
    header = "spec:\n  rules:\n"
    return "---\n".join(HEADER.replace("{name: p}", f"{{name: p{d}}}") + header + body for d in range(documents))


SLOW_CEL = slow_cel(2, 4)  # the 7th expression (line 31: second document, third rule) is over MAX_CEL_TEXT


def issues(text: str) -> list[tuple[str, str | None]]:
    with pytest.raises(PolicyError) as caught:
        load_policy_text(text, "p.yaml")
    return [(str(issue), issue.code) for issue in caught.value.issues]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the second value would silently win: enforce -> audit, required -> false, a second spec
        (
            HEADER + "spec:\n  mode: enforce\n  minimumAge: 7d\n  mode: audit\n",
            "p.yaml:7: duplicate key 'mode': first at p.yaml:5, again at p.yaml:7",
        ),
        (
            HEADER + "spec:\n  attestations:\n    required: true\n    required: false\n",
            "p.yaml:7: duplicate key 'required': first at p.yaml:6, again at p.yaml:7",
        ),
        (
            HEADER + "spec: {minimumAge: 7d}\nspec: {}\n",
            "p.yaml:5: duplicate key 'spec': first at p.yaml:4, again at p.yaml:5",
        ),
        (
            HEADER + "spec: {mode: enforce, mode: audit}\n",
            "p.yaml:4: duplicate key 'mode': first at p.yaml:4:8, again at p.yaml:4:23",
        ),
        # the same key written two ways is still the same key
        (HEADER + "spec: {}\n'spec': {}\n", "p.yaml:5: duplicate key 'spec'"),
    ],
)
def test_duplicate_keys_are_errors_naming_both_lines(text: str, expected: str) -> None:
    found = issues(text)
    assert [code for _, code in found] == ["duplicate-key"]
    assert found[0][0].startswith(expected), found


@pytest.mark.parametrize(
    "text",
    [
        "",
        "# a policy\n# that was commented out\n",
        "---\n---\n",
        "\n\n   \n",
    ],
)
def test_a_file_without_a_document_is_an_error(text: str) -> None:
    assert issues(text) == [
        ("p.yaml:1: no YAML document (the file is empty or only comments), so it holds no policy", "empty-file")
    ]


def test_billion_laughs_is_refused_at_the_first_alias() -> None:
    levels = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    found = issues("\n".join(levels) + "\n")
    assert found == [("p.yaml:2: YAML aliases (*a0) are not allowed in policies: write the value out", "yaml-alias")]


def test_aliases_and_merge_keys_are_refused() -> None:
    text = HEADER + "x: &sig {identity: a, issuer: b}\nspec:\n  attestations: {signers: [*sig]}\n"
    assert issues(text)[0][1] == "yaml-alias"
    merged = HEADER + "spec:\n  <<: {mode: audit}\n"
    assert issues(merged) == [
        ("p.yaml:5: YAML merge keys (<<) are not allowed in policies: write the keys out", "yaml-alias")
    ]


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 20_000])
def test_deep_nesting_is_refused(depth: int) -> None:
    flow = HEADER + "spec: {rules: " + "[" * depth + "]" * depth + "}\n"
    assert issues(flow) == [(f"p.yaml:4: nested more than {MAX_DEPTH} levels deep", "yaml-depth")]
    block = "".join("  " * i + f"k{i}:\n" for i in range(depth if depth < 1000 else 1000))
    assert issues(block) == [(f"p.yaml:{MAX_DEPTH}: nested more than {MAX_DEPTH} levels deep", "yaml-depth")]


def test_nesting_up_to_the_limit_loads() -> None:
    text = HEADER + "spec:\n  match:\n    packages: " + "[" * (MAX_DEPTH - 3) + "]" * (MAX_DEPTH - 3) + "\n"
    found = issues(text)  # a schema error (nested lists are not globs), not a YAML one
    assert all(code is None for _, code in found), found


def test_too_many_values_are_refused_as_they_are_read() -> None:
    """Under 1 MiB, `[{}, {}, ...]` made 786,132 schema errors, 690 MB and two minutes of `gate lint`."""
    items = ", ".join(["{}"] * MAX_NODES)
    assert issues(HEADER + f"spec: {{rules: [{items}]}}\n") == [
        (f"p.yaml:4: more than {MAX_NODES} YAML values in one file", "yaml-size")
    ]
    fine = ", ".join(["{}"] * (MAX_NODES - 20))
    assert len(load_text(HEADER + f"spec: {{rules: [{fine}]}}\n", "p.yaml")[0].data["spec"]["rules"]) == MAX_NODES - 20


def test_too_much_cel_is_refused_before_any_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    """986 KB of 100 such rules took 261 s of `gate check` (three parses of each) before the cost budget
    refused it; many documents each within the budget loaded after the same delay."""
    def no_parsing(expression: str) -> None:
        raise AssertionError("CEL was parsed before the size check")

    monkeypatch.setattr(cel._env(), "compile", no_parsing)
    message = (
        f"the rule expressions of this file add up to more than {MAX_CEL_TEXT} characters of CEL "
        "(the limit per policy file, checked before any is parsed): shorten or split the rules"
    )
    assert issues(SLOW_CEL) == [(f"p.yaml:31: spec.rules[2].expression: {message}", "cel-size")]
    assert issues(slow_cel(1, 100))[0][0].startswith("p.yaml:25: spec.rules[6].expression: the rule expressions")
    monkeypatch.undo()
    assert len(load_policy_text(slow_cel(1, 1), "p.yaml")[0].rules) == 1  # one is within the limit


def test_each_expression_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The schema's syntax check and the static check used to parse every expression each."""
    parsed: list[str] = []
    compile_ = cel._env().compile

    def counted(expression: str) -> object:
        parsed.append(expression)
        return compile_(expression)

    monkeypatch.setattr(cel._env(), "compile", counted)
    rules = "".join(f"    - {{name: r{i}, expression: 'size([{i}]) > 0', message: m}}\n" for i in range(3))
    [policy] = load_policy_text(HEADER + "spec:\n  rules:\n" + rules, "p.yaml")
    assert sorted(parsed) == [f"size([{i}]) > 0" for i in range(3)]
    assert [rule.evaluate({})[0] for rule in policy.rules] == [True] * 3


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("w", encoding="utf-8") as out:
        out.write(DENY_ALL)
        out.write(("# padding" + " " * 90 + "\n") * (MAX_POLICY_BYTES // 100 + 1))
    with pytest.raises(PolicyError) as caught:
        load_paths([big])
    [issue] = caught.value.issues
    assert issue.code == "file" and issue.file == str(big)
    assert f"larger than the limit of {MAX_POLICY_BYTES}" in issue.message


def test_upper_case_suffixes_in_a_directory_are_policies(tmp_path: Path) -> None:
    (tmp_path / "allow.yaml").write_text(HEADER.replace("name: p", "name: base") + "spec: {minimumAge: 1d}\n")
    (tmp_path / "STRICT.YAML").write_text(DENY_ALL)
    (tmp_path / "other.Yml").write_text(DENY_ALL.replace("name: p", "name: q"))
    (tmp_path / "notes.txt").write_text("not a policy")
    assert sorted(p.name for p in load_policies([tmp_path])) == ["base", "p", "q"]


def test_check_denies_by_the_upper_case_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "STRICT.YAML").write_text(DENY_ALL)
    code = main(["check", str(WHEEL), "-p", str(tmp_path), "--uploaded", UPLOADED])
    out = capsys.readouterr().out
    assert code == 1 and "p/never: denied" in out


@pytest.mark.parametrize(
    ("text", "code", "line"),
    [
        (HEADER + "spec:\n  mode: enforce\n  mode: audit\n", "duplicate-key", 6),
        ("# nothing here\n", "empty-file", 1),
        (HEADER + "spec: &s {}\nx: *s\n", "yaml-alias", 5),
        ("x: " + "[" * 500 + "]" * 500 + "\n", "yaml-depth", 1),
        (SLOW_CEL, "cel-size", 31),
    ],
)
def test_check_and_lint_and_test_agree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, code: str, line: int
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(text, encoding="utf-8")
    assert main(["check", str(WHEEL), "-p", str(policy), "--uploaded", UPLOADED]) == 2
    err = capsys.readouterr().err
    assert f"{policy}:{line}: " in err and "Traceback" not in err
    serve = build_parser().parse_args(["serve", "-p", str(policy)])
    with pytest.raises(PolicyError) as refused:  # what `gate serve` checks before it listens
        check_settings(settings_from(serve))
    assert (refused.value.issues[0].code, refused.value.issues[0].line) == (code, line)
    [finding] = lint_paths([policy], OPTIONS)
    assert (finding.code, finding.issue.line, finding.level) == (code, line, "error")
    assert main(["lint", str(policy)]) == 1
    capsys.readouterr()
    case = tmp_path / "t.gate-test.yaml"
    case.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_case_file(case)
    assert caught.value.issues[0].code == code and caught.value.issues[0].line == line


def test_gate_test_files_are_read_by_the_same_reader(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p.yaml").write_text(DENY_ALL)
    cases = tmp_path / "dup.GATE-TEST.YAML"
    cases.write_text(
        "now: 2026-11-22T00:00:00Z\ncases:\n"
        "  - name: a\n    file: {name: x, version: '1'}\n    expect: {verdict: deny}\n"
        "    expect: {verdict: allow}\n"
    )
    assert main(["test", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"ERROR {cases}" in out and f"{cases}:6: duplicate key 'expect': first at {cases}:5" in out


@pytest.mark.parametrize("char", ["\x07", "\x1b", "\ufffe", "\x85\x00"])
def test_characters_yaml_refuses_are_policy_errors(char: str) -> None:
    """The YAML reader checks characters when it is made: that too is a PolicyError, with the line."""
    found = issues(HEADER + f"spec: {{minimumAge: '1d{char}'}}\n")
    assert len(found) == 1 and found[0][0].startswith("p.yaml:4: invalid YAML: character U+"), found


@pytest.mark.parametrize("char", ["\x85", "\u2028", "\u2029"])
def test_a_line_break_only_yaml_sees_is_refused(
    char: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """NEL, LINE SEPARATOR and PARAGRAPH SEPARATOR end a line for YAML, not for git, diffs or editors: the
    reviewer sees a comment, YAML sees `mode: audit` and the policy allowed everything."""
    text = (
        "apiVersion: gate/v1\nkind: Policy\nmetadata: {name: p}\nspec:\n  match: {ecosystems: [pypi]}\n"
        f"  minimumAge: 9999d  # the default{char}  mode: audit\n"
    )
    with pytest.raises(PolicyError) as err:
        load_text(text, "p.yaml")
    [issue] = err.value.issues
    assert f"U+{ord(char):04X} is a line break to YAML" in issue.message and issue.line == 6
    policy = tmp_path / "p.yaml"
    policy.write_text(text, encoding="utf-8")
    assert main(["check", str(WHEEL), "-p", str(policy), "--uploaded", UPLOADED]) == 2
    [finding] = lint_paths([policy], OPTIONS)
    assert finding.code == "yaml" and finding.issue.line == 6


@pytest.mark.parametrize("char", ["\u202e", "\u2066", "\u2069"])
def test_a_bidirectional_control_is_refused(char: str) -> None:
    """'Trojan Source': a bidi control makes a line display other than it reads (`mode: audit` shown reversed
    inside what looks like a comment)."""
    text = f"apiVersion: gate/v1\nkind: Policy\nmetadata: {{name: p}}\nspec:\n  minimumAge: 7d {char}\n"
    with pytest.raises(PolicyError) as err:
        load_text(text, "p.yaml")
    [issue] = err.value.issues
    assert f"U+{ord(char):04X} reorders how the text is displayed" in issue.message and issue.line == 5
