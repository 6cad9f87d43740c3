"""`gate.policy.conformance` lets a policy skip jsonschema only when jsonschema would find nothing: the two agree
on every policy the project ships or documents, on the invalid-policy corpus of tests/policy/test_schema.py, and
on thousands of mutations of a policy that uses every part of the schema; a document that does not conform gets
jsonschema's own report, message for message."""

from __future__ import annotations

import copy
import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gate.errors import PolicyError
from gate.policy.compile import compile_documents, load_policy_text
from gate.policy.conformance import conforms, policy_schema
from gate.policy.load import RawPolicy, load_paths, load_text
from gate.policy.schema import policy_validator, schema_issues
from tests.conftest import REPO
from tests.policy import test_schema

# Every part of the schema: each signer form, each publisher kind, SLSA, conda channels, vulnerabilities,
# continuity, release evidence, exceptions with version selectors, and custom rules.
EVERYTHING = """\
apiVersion: gate/v1
kind: Policy
metadata: {name: every-part, description: all of it, labels: {team: security}}
spec:
  mode: audit
  match: {ecosystems: [pypi, conda], packages: ["*"], exclude: ["corp-*"]}
  minimumAge: {age: 7d, whenUnknown: allow, timeSources: [index, transparencyLog], backdating: 1h}
  continuity: {noDowngrade: true, within: major, ignoreAfter: 365d, whenUnknown: deny}
  evidence:
    githubReleases: {urllib3: urllib3/urllib3, other: {repository: o/r, tag: "v{version}", asset: m.intoto.jsonl}}
  attestations:
    required: true
    predicateTypes: ["https://docs.pypi.org/attestations/publish/v1"]
    signers:
      - {identity: "https://github.com/pypa/*", issuer: https://token.actions.githubusercontent.com}
      - {identity: {regex: "https://github\\\\.com/pallets/.*"}, issuer: https://token.actions.githubusercontent.com}
      - publisher: {kind: GitHub, repository: "pallets/*", workflow: publish.yml, environment: pypi}
      - publisher: {kind: GitLab, repository: group/project, workflowFilepath: .gitlab-ci.yml}
      - publisher: {kind: Google, email: {regex: ".*@my-project\\\\.iam\\\\.gserviceaccount\\\\.com"}}
    targetChannel: match
    slsa: {sourceUri: github.com/urllib3/urllib3, builderId: {regex: "https://github.com/slsa-framework/.*"}}
  vulnerabilities:
    maxSeverity: medium
    malicious: deny
    ignore:
      - {ids: [GHSA-9wx4-h78v-vm56], reason: not reachable, owner: security@example.com, expires: 2027-01-31}
  exceptions:
    - packages: ["legacy-lib<2", requests]
      waive: [attestations, minimumAge]
      reason: vendor has no trusted publishing yet
      owner: security@example.com
      expires: 2027-01-31
  rules:
    - {name: no-yanked, expression: "!file.yanked", message: yanked releases are not allowed}
"""

# Values put in place of each value of EVERYTHING: other types, empty and odd strings, each format's bad form.
REPLACEMENTS: tuple[Any, ...] = (
    None, True, False, 0, 7, -1, 1.0, 2.5, "", "x", "7d", "7 days", "2027-01-31", "2027-13-45", "a(", "x>>1",
    "file.name ==", "GitHub", "gate/v1", "Policy", "enforce", "match", "UPPER", "a" * 300, [], ["x"], [1], {},
    {"regex": "a("}, {"regex": "a"}, {"x": 1}, {1: "int key"}, ["x", "x"],
)


def _paths(value: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield at
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*at, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*at, index))


def _set(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    changed = copy.deepcopy(document)
    parent = changed
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return changed


def _without(document: Any, path: tuple[Any, ...]) -> Any:
    changed = copy.deepcopy(document)
    parent = changed
    for step in path[:-1]:
        parent = parent[step]
    del parent[path[-1]]
    return changed


def mutations(document: Any) -> Iterator[Any]:
    """`document` with one change: each value replaced (REPLACEMENTS), each key or item removed, an unknown key
    added to each mapping, each list emptied or its first item repeated."""
    for path in _paths(document):
        for value in REPLACEMENTS:
            yield _set(document, path, value)
        if path:
            yield _without(document, path)
        target = _set(document, (), document)
        for step in path:
            target = target[step]
        if isinstance(target, dict):
            yield _set(document, path, {**target, "bogus": 1})
        if isinstance(target, list) and target:
            yield _set(document, path, [*target, target[0]])


def _documented() -> list[RawPolicy]:
    """The policies the project ships (policies/) and shows in its README and docs."""
    found = load_paths([REPO / "policies"])
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for block in re.findall(r"```yaml\n(.*?)```", page.read_text(encoding="utf-8"), re.S):
            if "apiVersion: gate/v1" in block and "kind: Policy" in block:
                found += load_text(block, str(page.relative_to(REPO)))
    return found


def _jsonschema_valid(data: Any) -> bool:
    return next(iter(policy_validator().iter_errors(data)), None) is None


def _unjudged(data: Any) -> bool:
    """A float (jsonschema takes 1.0 as an integer) or a key that is not a string anywhere: `conforms` leaves
    such a document to jsonschema."""
    if isinstance(data, float):
        return True
    if isinstance(data, dict):
        return any(not isinstance(k, str) or _unjudged(v) for k, v in data.items())
    return isinstance(data, list) and any(_unjudged(v) for v in data)


def test_every_policy_the_project_shows_conforms() -> None:
    documents = _documented()
    assert len(documents) >= 4  # policies/ and the README's and docs' examples were read
    for raw in documents:
        assert _jsonschema_valid(raw.data), raw.file
        assert conforms(raw.data), raw.file  # the fast path is taken for real policies


def test_conformance_agrees_with_jsonschema_on_every_mutation() -> None:
    [everything] = load_text(EVERYTHING, "every.yaml")
    assert conforms(everything.data) and _jsonschema_valid(everything.data)
    compile_documents([everything])  # a policy gate accepts whole, not only its schema
    checked = valid = 0
    for document in mutations(everything.data):
        verdict, reference = conforms(document), _jsonschema_valid(document)
        assert not verdict or reference, document  # never conforms where jsonschema finds a problem
        if not _unjudged(document):
            assert verdict == reference, document  # and leaves nothing else to jsonschema
        checked, valid = checked + 1, valid + reference
    assert checked > 2000 and 100 < valid < checked  # both verdicts were exercised


def _corpus() -> list[str]:
    """The invalid specs of tests/policy/test_schema.py's error-message cases, as whole policies."""
    marks = getattr(test_schema.test_error_messages, "pytestmark")  # noqa: B009 (set by pytest, unknown to mypy)
    [cases] = [mark.args[1] for mark in marks if mark.name == "parametrize"]
    return [test_schema.HEADER + "spec:\n  " + spec + "\n" for spec, _ in cases]


@pytest.mark.parametrize("text", _corpus())
def test_the_invalid_corpus_is_refused_with_jsonschemas_messages(text: str) -> None:
    [raw] = load_text(text, "p.yaml")
    expected = schema_issues(raw)  # jsonschema's report, as before this check existed
    with pytest.raises(PolicyError) as caught:
        load_policy_text(text, "p.yaml")
    if expected:  # a schema problem: the same issues, each with its path, line and message
        assert not conforms(raw.data)
        assert [str(issue) for issue in caught.value.issues] == [str(issue) for issue in expected]
    else:  # a problem past the schema (a rule name, a waived rule that does not exist): the model says it
        assert conforms(raw.data)


HEAD = {"apiVersion": "gate/v1", "kind": "Policy", "metadata": {"name": "p"}}


@pytest.mark.parametrize(
    "spec", [{1: "x"}, {"minimumAge": b"7d"}, {"rules": ({},)}, {"minimumAge": dt.datetime(2027, 1, 1, tzinfo=dt.UTC)}]
)
def test_what_yaml_can_hold_beyond_json_is_left_to_jsonschema(spec: dict[Any, Any]) -> None:
    """A key that is not a string, bytes (`!!binary`), a tuple, a time (`!!timestamp`): not known to conform, so
    jsonschema decides and says why."""
    data = {**HEAD, "spec": spec}
    assert not conforms(data) and not _jsonschema_valid(data)


def test_patterns_are_searched_as_jsonschema_searches_them() -> None:
    """`re.search`, as jsonschema: `$` also matches before a final newline, so both take `p\\n` as a name (the
    model then has its say) and both refuse `P`."""
    assert conforms({**HEAD, "metadata": {"name": "p\n"}, "spec": {}}) == _jsonschema_valid(
        {**HEAD, "metadata": {"name": "p\n"}, "spec": {}}
    )
    assert not conforms({**HEAD, "metadata": {"name": "P"}, "spec": {}})


def test_an_unknown_keyword_or_reference_is_not_assumed_to_pass() -> None:
    schema = policy_schema()
    assert not conforms({"x": 1}, {"type": "object", "patternProperties": {"^x$": {"type": "string"}}})
    assert not conforms({"x": 1}, {"dependentRequired": {"x": ["y"]}})
    assert not conforms("a", {"$ref": "https://elsewhere.example/schema.json"})
    assert not conforms("a", {"type": "string", "format": "email"})  # a format gate does not check
    assert conforms("a", {"$ref": "#/$defs/glob", "$defs": schema["$defs"]})


def test_it_reads_the_shipped_schema() -> None:
    shipped = (REPO / "schemas" / "policy.v1.schema.json").read_text(encoding="utf-8")
    assert policy_schema()["$id"] in shipped and Path(REPO / "gate" / "schemas" / "policy.v1.schema.json").exists()
