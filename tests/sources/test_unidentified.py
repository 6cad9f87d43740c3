"""Files do not escape by their name: a file an installer would take for a distribution whose name gate
cannot parse is denied as `gate/gate.unjudgeable` (the proxy's decision for such rows), never judged as a
`generic` file that a `match: {ecosystems: [pypi, conda]}` policy does not select."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest

from gate.cli import main
from gate.facts import Ecosystem, Unidentified
from gate.gather.pypi import row_facts
from gate.sources.pypi import ProjectPage, SimpleFile
from tests.conftest import ATTESTATIONS
from tests.preinstall.conftest import NOW
from tests.support.conda_policies import SIGNED_PATH as SIGNED_CONDA

WHEEL = ATTESTATIONS / "dists" / "sampleproject-4.0.0-py3-none-any.whl"
PACKAGES_ONLY = """\
apiVersion: gate/v1
kind: Policy
metadata: {name: packages}
spec:
  match: {ecosystems: [pypi, conda]}
  rules: [{name: never, expression: "false", message: no package may pass}]
"""
# Names an installer takes for a distribution that packaging (or conda's name-version-build) cannot parse.
ESCAPES = [
    "evil__pkg-1.0-py3-none-any.whl",  # pip installs this as evil__pkg
    "totally_legit.tar.gz",
    "x-1.0-fix.zip",
    "Sampleproject-4.0.0-py3-none-any.WHL",
    "evil-1.0.tgz",
    "evil-1.0.tar.xz",
    "evil-1.0.tar",
    "evil-1.0-py3.11.egg",
    "totally_legit.tar.bz2",
    "totally_legit.conda",
]


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "packages.yaml"
    path.write_text(PACKAGES_ONLY, encoding="utf-8")
    return path


def _check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    # `--unmatched allow`: the denial must come from the name alone, not from the unmatched default
    code = main(["check", *args, "--unmatched", "allow", "--now", NOW, "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("name", ESCAPES)
def test_a_distribution_gate_cannot_name_is_denied(
    name: str, tmp_path: Path, policy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shipped = tmp_path / "wheelhouse"
    shipped.mkdir()
    (shipped / name).write_bytes(WHEEL.read_bytes())
    code, report = _check(capsys, str(shipped / name), "-p", str(policy))
    assert code == 1 and report["verdict"] == "deny"
    (result,) = report["results"]
    (violation,) = result["violations"]
    assert (violation["policy"], violation["rule"]) == ("gate", "gate.unjudgeable")
    assert name in violation["message"]
    assert result["facts"]["ecosystem"] != Ecosystem.GENERIC.value
    # and the proxy, given the same name as an index row, cannot build facts for it either
    row = SimpleFile(filename=name, url=f"https://x/{name}", hashes={"sha256": "ab" * 32})
    assert isinstance(row_facts(ProjectPage(name="evil-pkg", files=(row,)), row, "https://x/"), Unidentified)


def test_a_wheelhouse_hides_no_distribution(tmp_path: Path, policy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A directory yields every file pip could install from it, so an odd one is judged, not skipped."""
    (tmp_path / "evil-1.0.tgz").write_bytes(b"not judged before")
    (tmp_path / "notes.txt").write_text("not a distribution")
    code, report = _check(capsys, str(tmp_path), "-p", str(policy))
    assert code == 1
    assert [r["file"] for r in report["results"]] == ["evil-1.0.tgz"]


def test_other_files_are_still_generic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file no installer takes for a package (a binary, a document) is a generic file, as before."""
    blob = tmp_path / "tool-linux-amd64"
    blob.write_bytes(b"\x7fELF...")
    generic = tmp_path / "generic.yaml"
    generic.write_text(PACKAGES_ONLY.replace("[pypi, conda]", "[generic]"), encoding="utf-8")
    code, report = _check(capsys, str(blob), "-p", str(generic))
    (result,) = report["results"]
    assert code == 1 and result["facts"]["ecosystem"] == "generic"
    assert [v["rule"] for v in result["violations"]] == ["never"]


def test_real_distributions_are_still_identified(policy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = _check(capsys, str(WHEEL), str(SIGNED_CONDA), "-p", str(policy))
    assert code == 1
    rules = [[v["rule"] for v in r["violations"]] for r in report["results"]]
    assert rules == [["never"], ["never"]]


def test_a_lock_entry_gate_cannot_name_is_denied(
    tmp_path: Path, policy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = tmp_path / "pylock.toml"
    lock.write_text(textwrap.dedent("""\
        lock-version = "1.0"
        created-by = "gate-tests"

        [[packages]]
        name = "sampleproject"
        version = "4.0.0"

        [[packages.wheels]]
        name = "evil__pkg-1.0-py3-none-any.whl"
        url = "http://127.0.0.1:9/files/evil__pkg-1.0-py3-none-any.whl"
        hashes = {sha256 = "c23e447ea90d796d1e645c35c4b2de125040add12a845825546f91c93f391b6b"}
        """), encoding="utf-8")
    code, report = _check(capsys, str(lock), "-p", str(policy), "--index-url", "http://127.0.0.1:9/simple/")
    assert code == 1
    (result,) = report["results"]
    assert [v["rule"] for v in result["violations"]] == ["gate.unjudgeable"]
    assert "evil__pkg-1.0-py3-none-any.whl" in result["violations"][0]["message"]


def test_an_unparseable_name_never_gets_past_a_copy(tmp_path: Path, policy: Path) -> None:
    """The same bytes under their real name are identified: only the name changed the outcome."""
    real = tmp_path / WHEEL.name
    shutil.copyfile(WHEEL, real)
    assert main(["check", str(real), "-p", str(policy), "--unmatched", "allow"]) == 1


CONDA_ONLY = """\
apiVersion: gate/v1
kind: Policy
metadata: {name: python}
spec:
  match: {ecosystems: [pypi]}
  rules: [{name: never, expression: "false", message: no Python package may pass}]
---
apiVersion: gate/v1
kind: Policy
metadata: {name: conda}
spec:
  match: {ecosystems: [conda]}
  rules: [{name: always, expression: "true", message: any conda package passes}]
"""


@pytest.mark.parametrize("name", ["evil-1.0-1.tar.bz2", "evil-2.0-0.tar.bz2", "evil-1.0-post1.tar.bz2"])
def test_a_tar_bz2_pip_reads_as_an_sdist_is_not_judged_as_conda_alone(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """pip installs `evil-1.0-1.tar.bz2` from a wheelhouse as the sdist evil 1.0.post1; conda reads it as build 1.
    Outside a channel (no repodata record, no --channel) only the conda policies were applied: ALLOW."""
    policies = tmp_path / "policies.yaml"
    policies.write_text(CONDA_ONLY, encoding="utf-8")
    shipped = tmp_path / "wheelhouse"
    shipped.mkdir()
    (shipped / name).write_bytes(WHEEL.read_bytes())
    code, report = _check(capsys, str(shipped), "-p", str(policies))
    assert code == 1 and report["verdict"] == "deny"
    (violation,) = report["results"][0]["violations"]
    assert (violation["policy"], violation["rule"]) == ("gate", "gate.unjudgeable")
    assert "pip sdist evil" in violation["message"]
    # told it is a conda channel, it is a conda package
    code, report = _check(capsys, str(shipped), "-p", str(policies), "--channel", "https://conda.example/ch")
    assert code == 0 and report["results"][0]["facts"]["ecosystem"] == "conda"


def test_a_conda_build_pip_cannot_read_stays_conda(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policies = tmp_path / "policies.yaml"
    policies.write_text(CONDA_ONLY, encoding="utf-8")
    shipped = tmp_path / "numpy-1.26.4-py311h64a7726_0.tar.bz2"
    shipped.write_bytes(b"bytes")
    code, report = _check(capsys, str(shipped), "-p", str(policies))
    assert code == 0 and report["results"][0]["facts"]["ecosystem"] == "conda"


@pytest.mark.parametrize("name", ["foo-1.0-1.tar.gz", "foo-2.0-2.zip", "foo-bar-1.0-1.tar.gz"])
def test_an_sdist_pip_splits_elsewhere_is_denied(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """packaging reads `foo-1.0-1.tar.gz` as project foo-1-0 at 1; pip, asked for foo, installs it as foo 1.0.post1.
    A policy or exception selecting `foo-*` judged a file pip installs as `foo`."""
    shipped = tmp_path / "wheelhouse"
    shipped.mkdir()
    (shipped / name).write_bytes(WHEEL.read_bytes())
    policies = tmp_path / "policies.yaml"
    policies.write_text(CONDA_ONLY.replace("ecosystems: [pypi]", "ecosystems: [pypi], exclude: ['foo-*']"), "utf-8")
    code, report = _check(capsys, str(shipped), "-p", str(policies))
    assert code == 1 and report["verdict"] == "deny"
    (violation,) = report["results"][0]["violations"]
    assert (violation["policy"], violation["rule"]) == ("gate", "gate.unjudgeable")
    assert "pip, asked for another project, also takes it for foo" in violation["message"]


@pytest.mark.parametrize("name", ["python-dateutil-2.8.2.tar.gz", "zope.interface-5.0.zip", "sample-4.0.0.tar.gz"])
def test_an_sdist_pip_reads_one_way_is_judged(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policies = tmp_path / "policies.yaml"
    policies.write_text(CONDA_ONLY.replace('expression: "false"', 'expression: "true"'), "utf-8")
    (tmp_path / name).write_bytes(b"bytes")
    code, report = _check(capsys, str(tmp_path / name), "-p", str(policies))
    assert code == 0 and report["results"][0]["facts"]["ecosystem"] == "pypi"
