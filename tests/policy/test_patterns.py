from __future__ import annotations

import subprocess
import sys

import pytest

from gate.facts import Ecosystem
from gate.policy import patterns


@pytest.mark.parametrize(
    ("glob", "value", "matches"),
    [
        ("https://github.com/pypa/*", "https://github.com/pypa/sampleproject/.github/workflows/r.yml@refs/x", True),
        ("https://github.com/pypa/*", "https://github.com/pypa-evil/x", False),
        ("https://github.com/pypa/*", "https://evil.example/https://github.com/pypa/x", False),
        ("release.yml", "release.yml", True),
        ("release.yml", "releaseXyml", False),  # '.' is literal
        ("v?.yml", "v1.yml", True),
        ("a+b", "a+b", True),
        ("(x)", "(x)", True),
    ],
)
def test_glob(glob: str, value: str, matches: bool) -> None:
    assert patterns.glob(glob).matches(value) is matches


def test_regex_is_anchored() -> None:
    pattern = patterns.regex("pypa/.*")
    assert pattern.matches("pypa/sampleproject")
    assert not pattern.matches("evil/pypa/sampleproject")


def test_regex_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match=r"invalid regex 'pypa/\(' \(RE2 syntax.*\): missing \)"):
        patterns.regex("pypa/(")


@pytest.mark.parametrize(
    ("glob", "name", "matches"),
    [("Corp_*", "corp-tools", True), ("corp.tools", "corp-tools", True), ("corp-*", "corporate", False)],
)
def test_package_glob_normalizes(glob: str, name: str, matches: bool) -> None:
    assert patterns.package_glob(glob).matches(name, Ecosystem.PYPI) is matches


@pytest.mark.parametrize(
    ("glob", "name", "matches"),
    [
        ("python_abi", "python_abi", True),  # conda names keep their separators
        ("python_abi", "python-abi", False),  # a different conda package
        ("libgcc-*", "libgcc-ng", True),
        ("LibGCC*", "libgcc", True),
        ("foo.bar", "foo_bar", False),
    ],
)
def test_conda_names_compare_exactly(glob: str, name: str, matches: bool) -> None:
    assert patterns.package_glob(glob).matches(name, Ecosystem.CONDA) is matches


# Each snippet matches a pattern that backtracks exponentially (or as n^8) in Python's `re` against an
# input large enough that backtracking would take hours; RE2 answers at once. The subprocess's timeout
# only detects a hang.
REDOS = {
    "glob": "print(patterns.package_glob('*a*a*a*a*a*a*a*a*b').matches('a' * 64, Ecosystem.PYPI))",
    "conda-glob": "print(patterns.package_glob('*a*a*a*a*a*a*a*a*b').matches('a' * 64, Ecosystem.CONDA))",
    "regex": "print(patterns.regex('(a+)+').matches('a' * 64 + 'b'))",
    "nested-regex": "print(patterns.regex('(a|aa)+(b|c)*$').matches('a' * 60 + '!'))",
    "google-identity": (
        "from gate.policy.model import IdentitySigner\n"
        "from gate.preinstall.identities import signer_allows\n"
        "signer = IdentitySigner(identity=patterns.regex('(a+)+@x\\\\.iam\\\\.gserviceaccount\\\\.com'),"
        " issuer=patterns.glob('https://accounts.google.com'))\n"
        "print(signer_allows(signer, {'kind': 'Google', 'email': 'a' * 64 + '!'}))"
    ),
    "long-lock-identity": (
        "from gate.policy.model import IdentitySigner\n"
        "from gate.preinstall.identities import signer_allows\n"
        "signer = IdentitySigner(identity=patterns.regex('https://github\\\\.com/' + '.*a' * 12 + 'b@.*'),"
        " issuer=patterns.glob('https://token.actions.githubusercontent.com'))\n"
        "print(signer_allows(signer, {'kind': 'GitHub', 'repository': 'a/' + 'a' * 200_000, 'workflow': 'w.yml'}))"
    ),
}


@pytest.mark.parametrize("snippet", REDOS.values(), ids=REDOS.keys())
def test_patterns_cannot_backtrack(snippet: str) -> None:
    code = "from gate.facts import Ecosystem\nfrom gate.policy import patterns\n" + snippet
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize("regex", ["(?=a)b", "(a)\\1", "(?<=x)y", "a++"])
def test_regexes_re2_cannot_run_are_rejected(regex: str) -> None:
    """Python's `re` accepts these; RE2, which runs every pattern, does not: an error at load."""
    with pytest.raises(ValueError, match="RE2 syntax"):
        patterns.regex(regex)


def test_lone_surrogates_neither_crash_nor_escape() -> None:
    """A file name that is not UTF-8 decodes to lone surrogates, which RE2 (UTF-8) cannot take as they are."""
    assert patterns.package_glob("foo*").matches("foo\udcff", Ecosystem.PYPI)
    assert not patterns.package_glob("bar*").matches("foo\udcff", Ecosystem.CONDA)
    assert patterns.glob("a\ud800*").matches("a\ud800bc")
    with pytest.raises(ValueError, match="not Unicode text"):
        patterns.regex("a\ud800")


def test_a_pattern_knows_whether_it_was_written_as_a_glob() -> None:
    """Lint judges globs and regexes differently; a glob's regex is built from text RE2 can take (a lone
    surrogate becomes U+FFFD), so comparing regexes misread such a glob as a regex."""
    assert patterns.glob("pypa/\udc80*").is_glob and patterns.glob("pypa/x").is_glob
    assert not patterns.regex("pypa/.*").is_glob
