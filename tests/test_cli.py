"""The `gate` command line: exit codes, reports, compile output, errors."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gate.cli import main
from tests.conftest import REPO

WHEEL = REPO / "examples" / "pypi" / "circleci_sign_publish_example-0.0.1.dev137-py3-none-any.whl"
EXAMPLE = REPO / "policies" / "example.yaml"
UPLOADED = "2026-02-05T22:59:42Z"  # when the wheel's attestation was logged (it is not on pypi.org)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _quick_start() -> tuple[list[str], list[str]]:
    """The README's quick start: the `gate check` arguments, and the `--now` it adds to see a denial."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    (command,) = re.findall(r"^python3 -m venv .* && \.venv/bin/gate (check .*)$", readme, re.MULTILINE)
    (now,) = re.findall(r"Add `(--now \S+)`\s+to\s+see", readme)
    return shlex.split(command), shlex.split(now)


def test_readme_quick_start_allows(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    code, out, _ = run(capsys, *_quick_start()[0])
    assert code == 0
    assert out.startswith("ALLOW gcb_attestation_test-0.0.0.tar.gz")
    assert "verified: https://docs.pypi.org/attestations/publish/v1" in out
    assert "publisher Google 919436158236-compute@developer.gserviceaccount.com" in out


def test_readme_quick_start_too_new_is_denied_with_reason(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    command, now = _quick_start()
    code, out, _ = run(capsys, *command, *now)
    assert code == 1
    assert "DENY  example/minimumAge: published less than 7d ago" in out


def test_missing_evidence_is_denied(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lone = tmp_path / WHEEL.name
    shutil.copyfile(WHEEL, lone)
    code, out, _ = run(capsys, "check", str(lone), "-p", str(EXAMPLE), "--uploaded", UPLOADED, "--format", "json")
    report = json.loads(out)
    assert code == 1 and report["verdict"] == "deny"
    rules = {v["rule"] for v in report["results"][0]["violations"]}
    assert rules == {"attestations.required", "attestations.signers", "attestations.predicateTypes"}
    assert report["results"][0]["attestations"] == []


def test_tampered_file_is_denied(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / WHEEL.name
    bad.write_bytes(WHEEL.read_bytes() + b"\0")
    evidence = WHEEL.with_name(WHEEL.name + ".publish.attestation")
    code, out, _ = run(
        capsys, "check", str(bad), "-p", str(EXAMPLE), "--attestation", str(evidence), "--uploaded", UPLOADED
    )
    assert code == 1
    assert "not verified (subject-digest: no subject has this file's sha256" in out


def test_json_report_shape(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", str(WHEEL), "-p", str(EXAMPLE), "--uploaded", UPLOADED, "--format", "json")
    report = json.loads(out)
    assert code == 0 and report["verdict"] == "allow"
    (result,) = report["results"]
    assert {"file", "sha256", "verdict", "violations", "attestations"} <= set(result)
    (att,) = result["attestations"]
    assert {"verified", "error", "predicateType", "identity", "issuer", "publisher", "claims"} <= set(att)
    assert att["issuer"] == "https://oidc.circleci.com" and att["publisher"] is None  # no CircleCI publisher kind
    assert att["claims"]["sourceRepositoryUri"] == "github.com/CircleCI-Public/sign-and-publish-examples"


def test_wheelhouse_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copyfile(WHEEL, tmp_path / WHEEL.name)
    (tmp_path / "notes.txt").write_text("not a distribution")
    code, out, _ = run(capsys, "check", str(tmp_path), "-p", str(EXAMPLE), "--uploaded", UPLOADED)
    assert code == 1 and out.count("circleci_sign_publish_example-0.0.1.dev137") == 1 and "notes.txt" not in out


def test_broken_policy_exits_2_with_every_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: gate/v1\nkind: Policy\nmetadata: {name: bad}\nspec:\n"
        "  minimumAge: soon\n  attestations:\n    signers:\n      - {identity: x}\n"
    )
    code, out, err = run(capsys, "check", str(WHEEL), "-p", str(bad))
    assert code == 2 and out == ""
    assert f"{bad}:5: spec.minimumAge: invalid duration 'soon'" in err
    assert f"{bad}:8: spec.attestations.signers[0]: a signer is either" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check", "/nonexistent.whl", "-p", str(EXAMPLE)], "no such file or directory: /nonexistent.whl"),
        (["check", str(WHEEL), "-p", "/nonexistent-policies"], "no such policy file or directory"),
        (
            ["check", str(WHEEL), "-p", str(EXAMPLE), "--trusted-root", str(EXAMPLE)],
            "cannot load Sigstore trusted root",
        ),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, *args)
    assert code == 2 and message in err


def test_unreadable_policy_is_a_policy_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"metadata: {name: caf\xe9}\n")
    code, _, err = run(capsys, "check", str(WHEEL), "-p", str(tmp_path))
    assert code == 2 and f"{bad}:1: not UTF-8 text" in err


def test_bad_time_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "check", str(WHEEL), "-p", str(EXAMPLE), "--now", "yesterday")
    assert code == 2 and "not an ISO 8601 time" in err


def test_compile_prints_named_cel(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "compile", "-p", str(EXAMPLE))
    assert code == 0
    assert "rule minimumAge:" in out
    assert 'cel: file.uploaded != null && now - file.uploaded >= duration("604800s")' in out
    code, out, _ = run(capsys, "compile", "-p", str(EXAMPLE), "--format", "json")
    assert [r["name"] for r in json.loads(out)[0]["rules"]][:2] == ["minimumAge", "attestations.required"]


def test_python_dash_m_gate() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gate", "compile", "-p", str(EXAMPLE)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and "rule attestations.signers:" in done.stdout
