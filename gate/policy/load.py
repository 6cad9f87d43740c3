"""Read policy YAML: every document of every file, with the line of every value for error messages."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gate.errors import Issue, PolicyError

Path_ = tuple[str | int, ...]


class _Loader(yaml.SafeLoader):
    """Safe YAML without implicit timestamps: `expires: 2027-01-31` stays a string for the schema."""


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


def load_text(text: str, file: str) -> list[RawPolicy]:
    """All documents of one YAML text; a YAML syntax error becomes a PolicyError with its line."""
    loader = _Loader(text)
    docs: list[RawPolicy] = []
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
        raise PolicyError([Issue(path="", message=f"invalid YAML: {problem}", file=file, line=line)]) from err
    finally:
        loader.dispose()
    return docs


def policy_files(path: Path) -> Iterator[Path]:
    """A file, or every `*.yaml`/`*.yml` in a directory (sorted, not recursive)."""
    if path.is_dir():
        yield from sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    elif path.is_file():
        yield path
    else:
        raise PolicyError([Issue(path="", message="no such policy file or directory", file=str(path))])


def load_paths(paths: list[Path]) -> list[RawPolicy]:
    """Every document of every policy file under `paths`; syntax errors of all files are collected."""
    docs: list[RawPolicy] = []
    issues: list[Issue] = []
    for root in paths:
        try:
            files = list(policy_files(root))
        except PolicyError as err:
            issues.extend(err.issues)
            continue
        if not files:
            issues.append(Issue(path="", message="no *.yaml or *.yml policy files here", file=str(root)))
        for file in files:
            try:
                docs.extend(load_text(file.read_text(encoding="utf-8"), str(file)))
            except PolicyError as err:
                issues.extend(err.issues)
            except (OSError, UnicodeDecodeError) as err:
                reason = err.strerror if isinstance(err, OSError) else f"not UTF-8 text ({err.reason})"
                issues.append(Issue(path="", message=f"cannot read policy: {reason}", file=str(file)))
    if issues:
        raise PolicyError(issues)
    return docs
