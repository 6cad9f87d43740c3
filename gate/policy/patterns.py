"""String matchers in policies (exact, glob, or `{regex: ...}`) turned into anchored RE2 regexes.

CEL's `matches()` runs them with RE2, and so does `Pattern.matches` (package globs, lock identities):
RE2 runs in time linear in the input, so no pattern can backtrack for minutes (`(a+)+$`, `*a*a*a*b`),
and a regex RE2 cannot run (a lookahead, a backreference) is an error when the policy loads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import re2

from gate.facts import Ecosystem

_NAME_SEPARATORS = re.compile(r"[-_.]+")
_REGEX_SPECIAL = set("\\.^$|?*+()[]{}")


_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # an invalid regex is reported with its policy; RE2's log line would repeat it


@lru_cache(maxsize=4096)
def _compiled(regex: str) -> Any:
    """An RE2 program (untyped library); raises re2.error, or UnicodeEncodeError for a lone surrogate."""
    return re2.compile(regex, _OPTIONS)


def unicode_text(value: str) -> str:
    """`value` as RE2 (UTF-8) can take it: a lone surrogate, which a file name that is not UTF-8 decodes
    to, becomes U+FFFD, the same on the pattern's side and the value's."""
    if value.isascii():
        return value
    return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


@dataclass(frozen=True)
class Pattern:
    """A compiled matcher: `regex` is anchored and valid for RE2, which runs it both in CEL `matches`
    and here."""

    source: str
    regex: str
    is_literal: bool
    is_glob: bool = False  # written as a glob (else a regex)
    _program: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.is_literal:  # a literal is compared as a string, never run
            object.__setattr__(self, "_program", _compiled(self.regex))

    def matches(self, value: str) -> bool:
        if self.is_literal:
            return value == self.source  # what `^<escaped source>$` matches
        value = unicode_text(value)
        if len(value) <= _CACHED_LENGTH:  # the files of one page share their name: RE2's wrapper is slow
            return _fullmatch(self.regex, value)
        return self._program.fullmatch(value) is not None


_CACHED_LENGTH = 256


@lru_cache(maxsize=8192)
def _fullmatch(regex: str, value: str) -> bool:
    return _compiled(regex).fullmatch(value) is not None


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
    return Pattern(
        source=text, regex=glob_to_regex(unicode_text(text)), is_literal=not any(c in text for c in "*?"), is_glob=True
    )


def regex_error(text: str) -> str | None:
    """Why RE2, the engine that runs every regex of a policy (patterns here, CEL's `matches()`), rejects
    `text`, or None."""
    try:
        _compiled(text)
    except UnicodeEncodeError as err:
        return f"invalid regex {text!r}: not Unicode text ({err.reason})"
    except re2.error as err:
        reason = err.args[0].decode(errors="replace") if err.args and isinstance(err.args[0], bytes) else str(err)
        return f"invalid regex {text!r} (RE2 syntax: no lookarounds or backreferences): {reason}"
    return None


def regex(text: str) -> Pattern:
    """A user regex must match the whole value (anchored), so `pypa/.*` cannot match `evil/pypa/x`;
    raises ValueError when RE2 rejects it."""
    if (error := regex_error(text)) is not None:
        raise ValueError(error)
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


# slsa-verifier's options as `attestations.slsa` keys: the prefix each fact's value has before what is written
_SLSA_PREFIXES = {"sourceUri": "", "sourceTag": "refs/tags/", "sourceBranch": "refs/heads/", "builderId": ""}


# the refs a builder id without `@` matches: a release tag vX.Y.Z (slsa-verifier's IsValidBuilderTag), never a
# branch or a commit sha (which may be an imposter commit from a fork, served under the builder's repository)
RELEASE_REF = r"refs/tags/v(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*)){2}"


def slsa_pattern(key: str, value: str | dict[str, str]) -> Pattern:
    """A pattern of `attestations.slsa` as slsa-verifier reads the option: `sourceUri` is `github.com/O/R`
    (a `https://` or `git+https://` written before it is dropped); `sourceTag` / `sourceBranch` name the tag or
    branch (`v*`), matched against `refs/tags/...` / `refs/heads/...`; a `builderId` without `@` matches any
    version of that builder (`...generic_slsa3.yml` matches `...generic_slsa3.yml@refs/tags/v2.1.0`), as
    `--builder-id` does: a release, `@refs/tags/vX.Y.Z`, as slsa-verifier requires of a builder's ref. Globs and
    `{regex: ...}` otherwise as everywhere. ValueError for a regex RE2 rejects."""
    prefix = _SLSA_PREFIXES[key]
    if isinstance(value, dict):
        return regex(f"{re2_escape(prefix)}(?:{value['regex']})" if prefix else value["regex"])
    if key == "sourceUri":
        value = value.removeprefix("git+").removeprefix("https://")
    if key == "builderId" and "@" not in value and not any(c in value for c in "*?"):
        return regex(glob_to_regex(value)[1:-1] + f"(?:@{RELEASE_REF})?")
    return glob(prefix + value)


def re2_escape(text: str) -> str:
    """`text` as a regex that matches it literally."""
    return "".join("\\" + c if c in _REGEX_SPECIAL else c for c in text)
