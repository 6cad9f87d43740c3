"""Read policy YAML: every document of every file, with the line of every value for error messages.

Policies (and `*.gate-test.yaml` files) arrive in pull requests, so the reader is hostile-input safe and
never lets a document say something other than what a reviewer reads: a duplicate key is an error (not
"the last one wins"), aliases and merge keys are refused (no billion laughs, nothing pulled in from
elsewhere in the file), files larger than `MAX_POLICY_BYTES` are refused before they are parsed and
nesting deeper than `MAX_DEPTH` or more than `MAX_NODES` values as they are, rule expressions adding up
to more than `MAX_CEL_TEXT` characters are refused before any is parsed, and a file without a document
is an error rather than "no policy".
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError

from gate.errors import Issue, PolicyError
from gate.policy.cel_types import MAX_LENGTH

Path_ = tuple[str | int, ...]

MAX_POLICY_BYTES = 1 << 20  # a policy or test file larger than this (1 MiB) is refused unread
MAX_DEPTH = 100  # collections nested deeper than this are refused
MAX_NODES = 20_000  # values (scalars and collections) in one file: a policy has hundreds; more is an attack
# CEL text (every `spec.rules[].expression` of every document) in one file, counted before any CEL is
# parsed: parsing costs about a second per 10,000 characters, and a policy needs a few thousand.
MAX_CEL_TEXT = 64 * 1024
SUFFIXES = (".yaml", ".yml")  # of policy files in a directory, in any case (`.YAML` too)
_MERGE_TAG = "tag:yaml.org,2002:merge"
_HIDDEN_BREAK = re.compile("[\x85\u2028\u2029]")  # YAML 1.1 line breaks that no line-based tool shows as one
_HIDDEN = re.compile("[\x85\u2028\u2029\u202a-\u202e\u2066-\u2069]")  # and bidirectional controls


class _Refused(yaml.MarkedYAMLError):
    """A document gate will not read, with the code `gate lint` reports it under."""

    def __init__(self, code: str, problem: str, mark: Any) -> None:  # a yaml.error.Mark or a libyaml one
        super().__init__(problem=problem, problem_mark=mark)
        self.code = code


class _Loader(yaml.SafeLoader):
    """Safe YAML without implicit timestamps (`expires: 2027-01-31` stays a string for the schema), and
    without duplicate keys, aliases, merge keys, deep nesting or too many values."""

    def __init__(self, stream: str, file: str) -> None:
        super().__init__(stream)
        self.name = file
        self.depth = 0
        self.nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]  # untyped library
        if isinstance(event, yaml.AliasEvent):
            message = f"YAML aliases (*{event.anchor}) are not allowed in policies: write the value out"
            raise _Refused("yaml-alias", message, event.start_mark)
        self.depth += 1
        self.nodes += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _Refused("yaml-depth", f"nested more than {MAX_DEPTH} levels deep", event.start_mark)
            if self.nodes > MAX_NODES:
                raise _Refused("yaml-size", f"more than {MAX_NODES} YAML values in one file", event.start_mark)
            node = super().compose_node(parent, index)
        finally:
            self.depth -= 1
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                message = "YAML merge keys (<<) are not allowed in policies: write the keys out"
                raise _Refused("yaml-alias", message, key_node.start_mark)
            key = self.construct_object(key_node, deep=True)
            try:
                earlier = first.setdefault(key, key_node)
            except TypeError:
                raise ConstructorError(problem="found an unhashable key", problem_mark=key_node.start_mark) from None
            if earlier is not key_node:
                same_line = earlier.start_mark.line == key_node.start_mark.line
                first_at, again_at = (_where(m, same_line) for m in (earlier.start_mark, key_node.start_mark))
                message = f"duplicate key {key!r}: first at {first_at}, again at {again_at} (YAML keeps only the last)"
                raise _Refused("duplicate-key", message, key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def _where(mark: yaml.Mark, column: bool) -> str:
    """`file:line` of a mark, with `:column` when two marks share a line."""
    return f"{mark.name}:{mark.line + 1}" + (f":{mark.column + 1}" if column else "")


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True)
class RawPolicy:
    """One YAML document as loaded, before validation; `lines` maps a value's path to its line."""

    data: Any
    file: str
    lines: dict[Path_, int] = field(default_factory=dict)

    def line_of(self, path: Path_) -> int | None:
        """The line of the value at `path`, or of its nearest parent that has one."""
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = path[:-1]


def format_path(path: Path_) -> str:
    """`("spec", "attestations", "signers", 1, "identity")` -> `spec.attestations.signers[1].identity`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _record_lines(node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> None:
    """Map every value's path to its line; a mapping entry takes its key's line."""
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*path, str(key_node.value))
            lines[child] = key_node.start_mark.line + 1
            _record_lines(value_node, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _record_lines(item, (*path, i), lines)


def _reader_issue(err: yaml.reader.ReaderError, text: str, file: str) -> Issue:
    """A character YAML does not allow (a control character), at its line."""
    char: Any = err.character
    shown = f"U+{char if isinstance(char, int) else ord(char):04X}"
    line = text[: err.position].count("\n") + 1
    return Issue("", f"invalid YAML: character {shown} is not allowed", file, line, code="yaml")


def load_text(text: str, file: str) -> list[RawPolicy]:
    """All documents of one YAML text; a YAML error (syntax, duplicate key, alias, depth) or a text with
    no document at all becomes a PolicyError with its line and code."""
    if len(text) > MAX_POLICY_BYTES:
        raise PolicyError([Issue("", f"larger than {MAX_POLICY_BYTES} bytes: not read", file, code="file")])
    if (hidden := _HIDDEN.search(text)) is not None:
        at = text.count("\n", 0, hidden.start()) + 1
        why = (
            "is a line break to YAML but not to git, diffs or editors: what follows it would be read as a new "
            "line a reviewer sees as part of this one (a comment)"
            if _HIDDEN_BREAK.match(hidden.group())
            else "reorders how the text is displayed (a bidirectional control, 'Trojan Source'): a reviewer "
            "would not read what gate reads"
        )
        message = f"invalid YAML: character U+{ord(hidden.group()):04X} {why}"
        raise PolicyError([Issue("", message, file, at, code="yaml")])
    docs: list[RawPolicy] = []
    try:
        loader = _Loader(text, file)  # reads the text: a control character fails here
    except yaml.reader.ReaderError as err:
        raise PolicyError([_reader_issue(err, text, file)]) from err
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            lines: dict[Path_, int] = {}
            _record_lines(node, (), lines)
            data = loader.construct_document(node)
            if data is not None:
                docs.append(RawPolicy(data=data, file=file, lines=lines))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(err, "problem", None) or str(err)
        code = err.code if isinstance(err, _Refused) else "yaml"
        message = problem if isinstance(err, _Refused) else f"invalid YAML: {problem}"
        raise PolicyError([Issue(path="", message=message, file=file, line=line, code=code)]) from err
    except RecursionError as err:  # cannot happen within MAX_DEPTH; never a traceback if it does
        raise PolicyError([Issue("", "YAML nested too deeply", file, code="yaml-depth")]) from err
    finally:
        loader.dispose()
    _check_cel_text(docs, file)
    if not docs:
        message = "no YAML document (the file is empty or only comments), so it holds no policy"
        raise PolicyError([Issue("", message, file, 1, code="empty-file")])
    return docs


def _expressions(doc: RawPolicy) -> Iterator[tuple[Path_, str]]:
    """(path, text) of every rule expression of a document, whatever else is wrong with it."""
    spec = doc.data.get("spec") if isinstance(doc.data, dict) else None
    rules = spec.get("rules") if isinstance(spec, dict) else None
    for i, rule in enumerate(rules if isinstance(rules, list) else []):
        expression = rule.get("expression") if isinstance(rule, dict) else None
        if isinstance(expression, str):
            yield ("spec", "rules", i, "expression"), expression


def _check_cel_text(docs: list[RawPolicy], file: str) -> None:
    """Refuse a file whose rule expressions together exceed MAX_CEL_TEXT characters, before any is
    parsed (splitting them over documents does not help); the issue names the rule where it overflows."""
    total = 0
    for doc in docs:
        for path, expression in _expressions(doc):
            total += len(expression) if len(expression) <= MAX_LENGTH else 0  # refused by its own limit, unread
            if total > MAX_CEL_TEXT:
                message = (
                    f"the rule expressions of this file add up to more than {MAX_CEL_TEXT} characters of CEL "
                    f"(the limit per policy file, checked before any is parsed): shorten or split the rules"
                )
                raise PolicyError([Issue(format_path(path), message, file, doc.line_of(path), code="cel-size")])


def read_text(file: Path) -> str:
    """A policy or test file's text, refused before reading when larger than `MAX_POLICY_BYTES` and
    when it is not UTF-8 (the error names the line of the first bad byte)."""
    try:
        size = file.stat().st_size
        if size > MAX_POLICY_BYTES:
            raise PolicyError([_file_issue(file, f"{size} bytes, larger than the limit of {MAX_POLICY_BYTES}")])
        with file.open("rb") as stream:
            data = stream.read(MAX_POLICY_BYTES + 1)  # a file that grew since stat, or lies about its size
    except OSError as err:
        raise PolicyError([_file_issue(file, f"cannot read it: {err.strerror or err}")]) from err
    if len(data) > MAX_POLICY_BYTES:
        raise PolicyError([_file_issue(file, f"larger than the limit of {MAX_POLICY_BYTES} bytes")])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        message = f"not UTF-8 text (byte {err.start}: {err.reason})"
        raise PolicyError([Issue("", message, str(file), line, code="file")]) from err


def _file_issue(file: Path, message: str) -> Issue:
    return Issue("", message, str(file), code="file")


def load_file(file: Path) -> list[RawPolicy]:
    """Every document of one policy (or test) file: `read_text`, then `load_text`."""
    return load_text(read_text(file), str(file))


def is_policy_file(path: Path) -> bool:
    return path.suffix.lower() in SUFFIXES and path.is_file()


def policy_files(path: Path) -> Iterator[Path]:
    """A file, or every `*.yaml`/`*.yml` (any case) in a directory (sorted, not recursive)."""
    if path.is_dir():
        yield from sorted(p for p in path.iterdir() if is_policy_file(p))
    elif path.is_file():
        yield path
    else:
        raise PolicyError([_file_issue(path, "no such policy file or directory")])


def load_paths(paths: list[Path]) -> list[RawPolicy]:
    """Every document of every policy file under `paths`; the errors of all files are collected."""
    docs: list[RawPolicy] = []
    issues: list[Issue] = []
    for root in paths:
        try:
            files = list(policy_files(root))
        except PolicyError as err:
            issues.extend(err.issues)
            continue
        if not files:
            issues.append(_file_issue(root, "no *.yaml or *.yml policy files here"))
        for file in files:
            try:
                docs.extend(load_file(file))
            except PolicyError as err:
                issues.extend(err.issues)
    if issues:
        raise PolicyError(issues)
    return docs
