"""`gate check` starts without what it does not need: a wheel under an age-only policy loads neither the
Sigstore stack (sigstore, tuf, pypi-attestations, pydantic) nor the server, nor an HTTP library (requests,
urllib3), nor cel-python (its parser, lark, pendulum), nor jsonschema (the policy conforms to the schema, so
`gate.policy.conformance` says so without it); each subcommand's module is imported only when it runs
(benchmarks/startup_bench.py times it against pip)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gate import cli
from tests.conftest import REPO

AGE_ONLY = "apiVersion: gate/v1\nkind: Policy\nmetadata: {name: age}\nspec: {minimumAge: 7d}\n"
WHEEL = REPO / "examples" / "pypi" / "circleci_sign_publish_example-0.0.1.dev137-py3-none-any.whl"
HEAVY = ("sigstore", "tuf", "pypi_attestations", "pydantic", "flask", "werkzeug", "gunicorn", "rich.progress",
         "requests", "urllib3", "celpy", "lark", "pendulum", "jsonschema")

PROBE = """
import json, sys
from gate import cli
code = cli.main(sys.argv[1:])
print(json.dumps({"code": code, "loaded": sorted(m for m in %r if m in sys.modules)}))
"""


def _run(*args: str) -> tuple[dict[str, object], str]:
    """The probe's line (exit code, heavy modules loaded) and what gate printed before it."""
    probe = subprocess.run([sys.executable, "-c", PROBE % (HEAVY,), *args], capture_output=True, text=True,
                           cwd=REPO, check=False, timeout=120)
    assert probe.returncode == 0, probe.stderr  # the probe itself ran to its last line (gate's code is in it)
    output, _, line = probe.stdout.strip().rpartition("\n")
    result: dict[str, object] = json.loads(line)
    return result, output


def test_gate_check_of_a_wheel_under_an_age_only_policy_loads_no_sigstore(tmp_path: Path) -> None:
    wheel = tmp_path / WHEEL.name  # without the attestation beside it in examples/
    wheel.write_bytes(WHEEL.read_bytes())
    (tmp_path / "age.yaml").write_text(AGE_ONLY)
    result, _ = _run("check", str(wheel), "--policy", str(tmp_path / "age.yaml"),
                     "--uploaded", "2025-01-01T00:00:00Z", "--now", "2025-02-01T00:00:00Z")
    assert result == {"code": 0, "loaded": []}


def test_a_denial_is_made_and_explained_without_cel_too(tmp_path: Path) -> None:
    wheel = tmp_path / WHEEL.name
    wheel.write_bytes(WHEEL.read_bytes())
    (tmp_path / "age.yaml").write_text(AGE_ONLY)
    result, output = _run("check", str(wheel), "--policy", str(tmp_path / "age.yaml"),
                          "--uploaded", "2025-01-01T00:00:00Z", "--now", "2025-01-03T00:00:00Z")
    assert result == {"code": 1, "loaded": []}
    assert "allowed from 2025-01-08T00:00:00Z (minimum age 7d)" in output


def test_a_custom_rule_runs_as_cel_and_an_invalid_policy_gets_jsonschemas_report(tmp_path: Path) -> None:
    """The other side: what needs cel-python or jsonschema still loads them (and decides or refuses as before)."""
    wheel = tmp_path / WHEEL.name
    wheel.write_bytes(WHEEL.read_bytes())
    custom = AGE_ONLY.replace("spec: {minimumAge: 7d}", "spec:\n  rules: [{name: small, expression: 'file.size < 10', "
                              "message: too big}]")
    (tmp_path / "custom.yaml").write_text(custom)
    result, output = _run("check", str(wheel), "--policy", str(tmp_path / "custom.yaml"))
    assert result["code"] == 1 and "celpy" in result["loaded"] and "jsonschema" not in result["loaded"]  # type: ignore[operator]
    assert "too big" in output
    (tmp_path / "bad.yaml").write_text(AGE_ONLY.replace("7d", "7 days"))
    probe = subprocess.run([sys.executable, "-c", PROBE % (HEAVY,), "check", str(wheel), "--policy",
                            str(tmp_path / "bad.yaml")], capture_output=True, text=True, cwd=REPO, check=True,
                           timeout=120)
    result = json.loads(probe.stdout.strip().rpartition("\n")[2])
    assert result["code"] == 2 and "jsonschema" in result["loaded"]
    assert "bad.yaml:4: spec.minimumAge: invalid duration '7 days'" in probe.stderr


def test_evidence_beside_the_wheel_loads_sigstore_and_is_verified(tmp_path: Path) -> None:
    """The other side: evidence present is verified (the Sigstore stack is loaded then, not skipped)."""
    (tmp_path / "age.yaml").write_text(AGE_ONLY)
    result, output = _run("check", str(WHEEL), "--policy", str(tmp_path / "age.yaml"),
                          "--uploaded", "2025-01-01T00:00:00Z", "--now", "2025-02-01T00:00:00Z", "--format", "json")
    assert result["code"] == 0 and "sigstore" in result["loaded"]  # type: ignore[operator]
    [attestation] = json.loads(output)["results"][0]["attestations"]
    assert attestation["verified"] is True and attestation["error"] is None


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_each_subcommand_help_is_its_modules(name: str) -> None:
    assert cli.COMMANDS[name] == cli.command_module(name).HELP


def test_every_subcommand_is_listed_and_parsed(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in cli.COMMANDS)
    assert cli.main(["check", "--help"]) == 0 and "--pip-report" in capsys.readouterr().out
    assert cli.main(["nonsense"]) == 2
    capsys.readouterr()
    assert cli.main(["check"]) == 2 and "required: --policy" in capsys.readouterr().err
