from __future__ import annotations

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
    with pytest.raises(ValueError, match=r"invalid regex 'pypa/\(': missing \), unterminated subpattern"):
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
