"""String matchers in policies (exact, glob, or `{regex: ...}`) turned into anchored RE2 regexes for CEL."""

from __future__ import annotations

import re
from dataclasses import dataclass

from gate.facts import Ecosystem

_NAME_SEPARATORS = re.compile(r"[-_.]+")
_REGEX_SPECIAL = set("\\.^$|?*+()[]{}")


@dataclass(frozen=True)
class Pattern:
    """A compiled matcher: `regex` is anchored and valid for both RE2 (CEL `matches`) and Python `re`."""

    source: str
    regex: str
    is_literal: bool

    def matches(self, value: str) -> bool:
        return re.fullmatch(self.regex, value) is not None


def glob_to_regex(glob: str) -> str:
    """`*` matches any run of characters (including `/`), `?` one character; everything else is literal."""
    parts = []
    for char in glob:
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append("\\" + char if char in _REGEX_SPECIAL else char)
    return "^" + "".join(parts) + "$"


def glob(text: str) -> Pattern:
    return Pattern(source=text, regex=glob_to_regex(text), is_literal=not any(c in text for c in "*?"))


def regex(text: str) -> Pattern:
    """A user regex must match the whole value (anchored), so `pypa/.*` cannot match `evil/pypa/x`."""
    try:
        re.compile(text)
    except re.error as err:
        raise ValueError(f"invalid regex {text!r}: {err}") from err
    return Pattern(source=text, regex=f"^(?:{text})$", is_literal=False)


@dataclass(frozen=True)
class PackagePattern:
    """A glob on package names. PyPI names compare normalized (PEP 503: `Corp_*` matches `corp-tools`);
    conda (and other) names compare lowercased only, since `foo_bar` and `foo-bar` are two conda packages."""

    source: str
    pypi: Pattern
    exact: Pattern

    def matches(self, name: str, ecosystem: Ecosystem) -> bool:
        if ecosystem is Ecosystem.PYPI:
            return self.pypi.matches(name)
        return self.exact.matches(name.lower())


def package_glob(text: str) -> PackagePattern:
    return PackagePattern(source=text, pypi=glob(_NAME_SEPARATORS.sub("-", text).lower()), exact=glob(text.lower()))
