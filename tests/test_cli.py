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
    assert (
        "DENY  example/minimumAge: uploaded 2025-04-23T18:29:31Z; allowed from 2025-04-30T18:29:31Z (minimum age 7d)"
        in out
    )


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


POLICY_HEADER = "apiVersion: gate/v1\nkind: Policy\nmetadata: {name: p}\nspec:\n"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("  minimumAge: 99999999999d\n", ":5: spec.minimumAge: invalid duration '99999999999d': longer than 36525d"),
        ("  minimumAge: {age: P99999999999D}\n", ":5: spec.minimumAge.age: invalid duration 'P99999999999D'"),
        (
            "  minimumAge: 1d\n  exceptions:\n    - {packages: [x], waive: [minimumAge], reason: r,"
            " expires: '0001-01-01T00:00:00+01:00'}\n",
            ":7: spec.exceptions[0].expires: invalid expiry '0001-01-01T00:00:00+01:00': outside the years 1 to 9999",
        ),
    ],
)
def test_values_that_overflowed_are_policy_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: str, message: str
) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY_HEADER + spec, encoding="utf-8")
    code, out, err = run(capsys, "check", str(WHEEL), "-p", str(policy), "--uploaded", UPLOADED)
    assert (code, out) == (2, "") and f"{policy}{message}" in err and "Traceback" not in err
    code, out, _ = run(capsys, "lint", str(policy))
    where, _, what = message.partition(": ")
    assert code == 1 and f"{policy}{where}: error: {what}" in out


def test_an_expiry_on_the_last_day_is_no_overflow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(
        POLICY_HEADER + "  minimumAge: 7d\n  exceptions:\n"
        "    - {packages: [circleci-sign-publish-example], waive: [minimumAge], reason: r, expires: 9999-12-31}\n",
        encoding="utf-8",
    )
    code, out, err = run(capsys, "check", str(WHEEL), "-p", str(policy), "--uploaded", UPLOADED, "--now", UPLOADED)
    assert code == 0 and "WAIVED p/minimumAge" in out and err == ""
    assert run(capsys, "lint", str(policy))[0] == 0
    assert run(capsys, "compile", "-p", str(policy))[0] == 0


def test_lint_of_non_utf8_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(POLICY_HEADER.encode() + b"  rules: [{name: caf\xe9, expression: 'true', message: m}]\n")
    code, out, err = run(capsys, "lint", str(bad))
    assert code == 2 and f"{bad}:5: error: not UTF-8 text (byte 79: invalid continuation byte) [file]" in out
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "args",
    [
        ["lint"],
        ["check", "--format", "xml", str(WHEEL)],
        ["frobnicate"],
        ["--nope"],
        ["check", str(WHEEL), "-p", str(EXAMPLE), "--now", "9999-12-31T23:59:59-14:00"],  # overflowed in CEL
    ],
)
def test_argument_errors_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, *args)[0] == 2


def _crash(args: object) -> int:
    raise RuntimeError("boom\nsecond line \x1b[31m")


def test_internal_error_exits_3_with_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug is neither allow (0) nor deny (1); without --debug, no traceback."""
    monkeypatch.setattr("gate.commands.compile.run", _crash)
    code, out, err = run(capsys, "compile", "-p", str(EXAMPLE))
    assert (code, out) == (3, "")
    assert err == "gate: internal error: RuntimeError: boom second line ?[31m (--debug shows the traceback)\n"
    code, _, err = run(capsys, "--debug", "compile", "-p", str(EXAMPLE))
    assert code == 3 and "Traceback (most recent call last)" in err and "RuntimeError: boom" in err
    assert err.rstrip().endswith("gate: internal error: RuntimeError: boom second line ?[31m")


@pytest.mark.parametrize(
    ("command", "policy", "code", "where"),
    [
        ("check", POLICY_HEADER.encode() + b"  minimumAge: P99999999999D\n", 2, "{p}:5: spec.minimumAge: invalid"),
        ("lint", POLICY_HEADER.encode() + b"  minimumAge: 99999999999d\n", 1, "{p}:5: error: spec.minimumAge: invalid"),
        ("lint", POLICY_HEADER.encode() + b"  rules: [{name: caf\xe9}]\n", 2, "{p}:5: error: not UTF-8 text"),
        (
            "check",
            POLICY_HEADER.encode() + b"  minimumAge: 7d\n  exceptions:\n"
            b"    - {packages: [circleci-sign-publish-example], waive: [minimumAge], reason: r, expires: 9999-12-31}\n",
            0,
            "allow: 1 allowed, 0 denied",
        ),
        ("check", POLICY_HEADER.encode() + b"  mode: audit\n  mode: enforce\n", 2, "{p}:6: duplicate key 'mode'"),
    ],
)
def test_exit_codes_of_a_real_process(tmp_path: Path, command: str, policy: bytes, code: int, where: str) -> None:
    """The console exit codes as CI sees them, and never a traceback for what a policy says."""
    path = tmp_path / "p.yaml"
    path.write_bytes(policy)
    args = ["check", str(WHEEL), "-p", str(path), "--uploaded", UPLOADED] if command == "check" else ["lint", str(path)]
    done = subprocess.run([sys.executable, "-m", "gate", *args], capture_output=True, text=True, check=False)
    assert done.returncode == code and "Traceback" not in done.stderr, done.stderr
    assert where.format(p=path) in done.stdout + done.stderr


def test_internal_error_of_a_real_process() -> None:
    crash = (
        "import sys, gate.commands.compile as c, gate.cli\n"
        "c.run = lambda args: 1 // 0\n"
        f"sys.exit(gate.cli.main(['compile', '-p', {str(EXAMPLE)!r}]))\n"
    )
    done = subprocess.run([sys.executable, "-c", crash], capture_output=True, text=True, check=False)
    assert done.returncode == 3
    assert done.stderr == (
        "gate: internal error: ZeroDivisionError: integer division or modulo by zero (--debug shows the traceback)\n"
    )


def test_a_reader_that_leaves_early_is_not_a_traceback(tmp_path: Path) -> None:
    """`gate check ... --format json | head`: the pipe closes before gate writes; gate stops quietly, with
    the deny code (its report was not read, so it is not an allow) and no traceback."""
    wheel = tmp_path / "evil__pkg-1.0-py3-none-any.whl"
    wheel.write_bytes(b"x")
    policy = tmp_path / "p.yaml"
    policy.write_text("apiVersion: gate/v1\nkind: Policy\nmetadata: {name: p}\nspec:\n  match: {ecosystems: [pypi]}\n"
                      "  minimumAge: 1d\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "gate", "check", str(wheel), "--policy", str(policy), "--format", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader is gone before gate writes a byte
    err = process.stderr.read().decode()
    process.stderr.close()
    assert process.wait(timeout=120) == 1
    assert "Traceback" not in err and "BrokenPipe" not in err, err
