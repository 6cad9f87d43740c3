"""Nothing governs it: denied. A file no policy matches is denied as `gate/gate.unmatched` (with what would
change that), unless `--unmatched warn|allow` (or `GATE_UNMATCHED`) says otherwise; zero policies: gate
refuses to run at all."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gate.cli import main
from gate.decision import Verdict
from gate.errors import GateError, UsageError
from gate.evaluate import Evaluator, Unmatched, evaluate, policy_digest, require_policies
from gate.facts import Ecosystem, FileKind
from gate.policy.compile import load_policies, load_policy_text
from gate.proxy import wsgi
from tests import factories as f
from tests.conftest import ATTESTATIONS

WHEEL = ATTESTATIONS / "dists" / "sampleproject-4.0.0-py3-none-any.whl"
CONDA_ONLY = """\
apiVersion: gate/v1
kind: Policy
metadata: {name: conda-only}
spec:
  match: {ecosystems: [conda]}
  minimumAge: 7d
"""


@pytest.mark.parametrize("ecosystem", [Ecosystem.PYPI, Ecosystem.GENERIC])
def test_unmatched_file_is_denied_with_what_would_change_it(ecosystem: Ecosystem) -> None:
    compiled = load_policy_text(CONDA_ONLY)
    facts = f.facts(ecosystem=ecosystem)
    for decision in (evaluate(compiled, facts, f.NOW), Evaluator(compiled).judge(facts, f.NOW).decision):
        assert decision.verdict is Verdict.DENY and decision.policies == ()
        (violation,) = decision.denying
        assert violation.ref == "gate/gate.unmatched"
        assert f"no policy governs {ecosystem.value} package 'sampleproject'" in violation.message
        assert "add a policy whose match selects it" in violation.message
        assert "--unmatched warn|allow" in violation.message


def test_unmatched_warn_allows_and_reports_allow_allows_silently() -> None:
    compiled = load_policy_text(CONDA_ONLY)
    facts = f.facts()
    warned = evaluate(compiled, facts, f.NOW, unmatched=Unmatched.WARN)
    assert warned == Evaluator(compiled, unmatched=Unmatched.WARN).judge(facts, f.NOW).decision
    assert warned.verdict is Verdict.ALLOW
    (violation,) = warned.violations
    assert violation.rule == "gate.unmatched" and not violation.enforced
    assert warned.to_json()["audit"][0]["rule"] == "gate.unmatched"
    allowed = evaluate(compiled, facts, f.NOW, unmatched=Unmatched.ALLOW)
    assert allowed == Evaluator(compiled, unmatched=Unmatched.ALLOW).judge(facts, f.NOW).decision
    assert allowed.verdict is Verdict.ALLOW and allowed.violations == ()


def test_matched_files_are_unaffected_by_the_setting() -> None:
    compiled = load_policy_text(CONDA_ONLY)
    conda = f.facts(ecosystem=Ecosystem.CONDA, kind=FileKind.CONDA, uploaded=None)
    for mode in Unmatched:
        decision = evaluate(compiled, conda, f.NOW, unmatched=mode)
        assert [v.ref for v in decision.denying] == ["conda-only/minimumAge"]


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_denies_an_ungoverned_file_unless_told(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "conda-only.yaml"
    policy.write_text(CONDA_ONLY, encoding="utf-8")
    code, out, _ = _run(capsys, "check", str(WHEEL), "-p", str(policy))
    assert code == 1
    assert "DENY  gate/gate.unmatched: no policy governs pypi package 'sampleproject'" in out
    code, out, _ = _run(capsys, "check", str(WHEEL), "-p", str(policy), "--unmatched", "warn")
    assert code == 0 and "AUDIT gate/gate.unmatched" in out
    code, out, _ = _run(capsys, "check", str(WHEEL), "-p", str(policy), "--unmatched", "allow")
    assert code == 0 and "gate.unmatched" not in out
    code, _, err = _run(capsys, "check", str(WHEEL), "-p", str(policy), "--unmatched", "yes")
    assert code == 2 and "--unmatched" in err


def _no_policy(tmp_path: Path) -> list[Path]:
    """Three ways to give gate no policy: an empty directory, a directory of other files, and a YAML file
    of comments only (the last may also be refused by the loader itself: exit 2 either way)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    others = tmp_path / "others"
    others.mkdir()
    (others / "README.md").write_text("policies go here\n")
    comments = tmp_path / "comments.yaml"
    comments.write_text("# nothing yet\n")
    return [empty, others, comments]


def test_a_file_of_comments_is_no_policy(tmp_path: Path) -> None:
    comments = tmp_path / "comments.yaml"
    comments.write_text("# nothing yet\n")
    with pytest.raises(GateError) as refused:
        require_policies(load_policies([comments]), [comments])
    assert "comments.yaml" in refused.value.diagnostics()


@pytest.mark.parametrize("command", [["check", str(WHEEL)], ["serve"], ["serve", "--workers", "1"]])
def test_zero_policies_refuse_to_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("gate started serving without a policy")

    monkeypatch.setattr("gate.proxy.server.Gunicorn.run", never)
    for where in _no_policy(tmp_path):
        code, out, err = _run(capsys, *command, "--policy", str(where), "--port", "1") if command[0] == "serve" \
            else _run(capsys, *command, "--policy", str(where))
        assert code == 2, (where, out, err)
        assert "Traceback" not in err and err.strip(), where


def test_wsgi_refuses_to_boot_without_policies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATE_POLICY", raising=False)
    monkeypatch.delenv("GATE_UNMATCHED", raising=False)
    with pytest.raises(UsageError, match="GATE_POLICY is not set"):
        wsgi.app()
    for where in _no_policy(tmp_path):  # refused by the loader or for holding no policy: never served
        monkeypatch.setenv("GATE_POLICY", str(where))
        with pytest.raises(GateError):
            wsgi.app()
    policy = tmp_path / "p.yaml"
    policy.write_text(CONDA_ONLY, encoding="utf-8")
    monkeypatch.setenv("GATE_POLICY", str(policy))
    monkeypatch.setenv("GATE_UNMATCHED", "sometimes")
    with pytest.raises(UsageError, match="GATE_UNMATCHED must be one of deny, warn, allow"):
        wsgi.app()


def test_bare_gunicorn_without_gate_policy_does_not_boot(tmp_path: Path) -> None:
    """A real gunicorn, as the README runs it, with GATE_POLICY unset: it stops (never serves), saying why."""
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent))
    assert gunicorn is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATE_")}
    result = subprocess.run(
        [gunicorn, "-w", "1", "-b", "127.0.0.1:0", "gate.proxy.wsgi:app()"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode != 0
    assert "GATE_POLICY is not set" in result.stderr


def test_every_mode_has_its_own_policy_digest() -> None:
    """Cached proxy pages are keyed by the digest: a page rendered under one mode (or by a gate that let
    unmatched files through, before the mode existed) is never served under another."""
    compiled = load_policy_text(CONDA_ONLY)
    digests = {policy_digest(compiled, mode) for mode in Unmatched}
    legacy = hashlib.sha256(
        json.dumps([[p.policy.file, p.policy.raw.data] for p in compiled], sort_keys=True, default=str).encode()
    ).hexdigest()
    assert len(digests) == 3 and legacy not in digests
