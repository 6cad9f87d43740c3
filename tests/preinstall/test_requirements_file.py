"""What gate lets pip read of a requirements file under check (gate.sources.requirements): named
requirements and their hashes only; options, includes, editables, paths, URLs and variables are refused,
so a requirements file in a pull request cannot point pip elsewhere or make it build (run) anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.cli import main
from gate.errors import UsageError
from gate.sources.requirements import safe_requirements
from tests.preinstall.conftest import EXAMPLE_POLICY

HASH = "a" * 64


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sampleproject==4.0.0\n", "sampleproject==4.0.0\n"),
        ("# pinned\nrequests[socks] >= 2.31 ; python_version >= '3.8'  # why\n\n",
         'requests[socks]>=2.31; python_version >= "3.8"\n'),
        (f"demo==1.0 \\\n    --hash=sha256:{HASH.upper()} \\\n    --hash=sha256:{'b' * 64}\n",
         f"demo==1.0 --hash=sha256:{HASH} --hash=sha256:{'b' * 64}\n"),
    ],
)
def test_named_requirements_and_hashes_pass(text: str, expected: str) -> None:
    assert safe_requirements(Path("r.txt"), text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("--find-links /tmp/evil\nevil\n", r"r.txt:1: gate check -r does not take pip options"),
        ("evil\n-i https://evil.example/simple/\n", r"r.txt:2: .* pip options"),
        ("--extra-index-url=https://evil.example/simple/\n", "pip options"),
        ("-e ./evil\n", "pip options"),
        ("-r other.txt\n", "pip options"),
        ("-c constraints.txt\n", "pip options"),
        ("--trusted-host evil.example\n", "pip options"),
        ("evil @ https://evil.example/evil-1.0.tar.gz\n", "direct reference"),
        ("evil @ file:///tmp/evil\n", "direct reference"),
        ("./evil\n", "not a named requirement"),
        ("https://evil.example/evil-1.0.tar.gz\n", "not a named requirement"),
        ("evil==${VERSION}\n", "environment variables"),
        ("demo==1.0 --global-option=--evil\n", "only --hash options"),
        ("demo==1.0 --hash=md5:abc\n", "only --hash options"),
        ("demo \\\n  --index-url https://evil.example/\n", "only --hash options"),
        ("# nothing\n\n", "no requirements"),
    ],
)
def test_anything_else_is_refused(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        safe_requirements(Path("r.txt"), text)


def test_check_refuses_find_links_before_pip_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The red-team repro: `--find-links` to a folder whose sdist's setup.py would run during the resolve."""
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evilwh"
    evil.mkdir()
    (evil / "setup.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"--find-links {evil}\n--no-index\n./{evil.name}\n")
    code = main(["check", "-p", str(EXAMPLE_POLICY), "-r", str(requirements), "--index-url", "http://127.0.0.1:9/"])
    assert code == 2
    assert "does not take pip options from the file (--find-links)" in capsys.readouterr().err
    assert not marker.exists()
