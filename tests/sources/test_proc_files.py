"""Files that say one size and read another: a symlink (committed in a pull request) from a wheelhouse entry,
a lock, a report, an @EXPLICIT file, a package URL, a conda sidecar or a repodata.json to a /proc file that
reports 0 bytes and reads for hundreds of GiB (/proc/self/pagemap). gate reads no further than the size the
file had when opened: such a file is refused (exit 2) or is no evidence, never read forever."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.preinstall.conftest import AGE_POLICY, NOW, SAMPLE_WHEEL
from tests.support.conda_policies import SIGNED_PATH as SIGNED_CONDA

ENDLESS = Path("/proc/self/pagemap")
pytestmark = pytest.mark.skipif(not ENDLESS.is_file(), reason="needs Linux /proc/self/pagemap")
CONDA_SIGNED = """\
apiVersion: gate/v1
kind: Policy
metadata: {name: signed}
spec:
  attestations: {required: true}
"""
HANG = 300  # seconds: only detects a hang (the old code read for hours)


def gate(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "gate", "check", "--now", NOW, *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=HANG)


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "age.yaml"
    path.write_text(AGE_POLICY, encoding="utf-8")
    return path


def test_a_wheelhouse_entry(tmp_path: Path, policy: Path) -> None:
    (tmp_path / "wheelhouse").mkdir()
    (tmp_path / "wheelhouse" / SAMPLE_WHEEL).symlink_to(ENDLESS)
    done = gate("-p", str(policy), str(tmp_path / "wheelhouse"))
    assert done.returncode == 2, done.stderr
    assert "yields more than the 0 bytes its size says" in done.stderr


@pytest.mark.parametrize("name", ["pylock.toml", "report.json"])
def test_a_document(name: str, tmp_path: Path, policy: Path) -> None:
    document = tmp_path / name
    document.symlink_to(ENDLESS)
    args = ["--pip-report", str(document)] if name == "report.json" else [str(document)]
    done = gate("-p", str(policy), "--index-url", "http://127.0.0.1:9/simple/", *args)
    assert done.returncode == 2, done.stderr
    assert "yields more than the 0 bytes its size says" in done.stderr


def test_an_explicit_package_url(tmp_path: Path, policy: Path) -> None:
    noarch = tmp_path / "channel" / "noarch"
    noarch.mkdir(parents=True)
    (noarch / "a-1.0-0.conda").symlink_to(ENDLESS)
    explicit = tmp_path / "env.txt"
    explicit.write_text(f"@EXPLICIT\n{(noarch / 'a-1.0-0.conda').as_uri()}\n", encoding="utf-8")
    done = gate("-p", str(policy), str(explicit))
    assert done.returncode == 2, done.stderr
    assert "yields more than the 0 bytes its size says" in done.stderr


@pytest.mark.parametrize("beside", ["repodata.json", SIGNED_CONDA.name + ".sigs"])
def test_a_file_beside_a_conda_package(beside: str, tmp_path: Path) -> None:
    policy = tmp_path / "signed.yaml"
    policy.write_text(CONDA_SIGNED, encoding="utf-8")
    noarch = tmp_path / "noarch"
    noarch.mkdir()
    (noarch / SIGNED_CONDA.name).write_bytes(SIGNED_CONDA.read_bytes())
    (noarch / beside).symlink_to(ENDLESS)
    done = gate("-p", str(policy), "--format", "json", str(noarch / SIGNED_CONDA.name))
    assert done.returncode == 1, done.stderr  # denied: no verified evidence
    (result,) = json.loads(done.stdout)["results"]
    assert result["verdict"] == "deny"
