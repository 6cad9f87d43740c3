"""Issue 13's acceptance: every case of both slsa-cosign manifests decides as stated through `gate check`
(unverifiable is denied, with the reason), with the case's policy written as a gate policy; a flipped
artifact byte or another case's evidence is always denied."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from gate.cli import main
from tests.slsa.cases import CASES, Case


def policy_text(case: Case) -> str:
    """The manifest's policy as gate writes it: the exact signer; for SLSA cases the source repository
    (`--source-uri`), the builder (a glob over the prefix) and one of the SLSA predicate types."""
    spec: dict[str, Any] = {
        "attestations": {
            "required": True,
            "signers": [{"identity": case.policy["identity"], "issuer": case.policy["issuer"]}],
        }
    }
    rules = []
    if "source_repository" in case.policy:
        spec["attestations"]["slsa"] = {"sourceUri": case.policy["source_repository"]}
        if "builder_id_prefix" in case.policy:
            spec["attestations"]["slsa"]["builderId"] = case.policy["builder_id_prefix"] + "*"
    if types := case.policy.get("predicate_types"):
        listed = ", ".join(json.dumps(t) for t in types)
        expression = f"attestations.exists(a, a.verified && a.predicateType in [{listed}])"
        rules.append({"name": "slsa-predicate", "expression": expression, "message": "no SLSA provenance"})
    if rules:
        spec["rules"] = rules
    return yaml.safe_dump({"apiVersion": "gate/v1", "kind": "Policy", "metadata": {"name": "case"}, "spec": spec})


def check(tmp_path: Path, case: Case, artifact: Path, evidence: list[Path],
          capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_text(case))
    args = ["check", str(artifact), "--policy", str(policy), "--trusted-root", str(case.trusted_root),
            "--format", "json"]
    for path in evidence:
        args += ["--attestation", str(path)]
    capsys.readouterr()
    code = main(args)
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    return code, report


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_every_case_decides_as_the_manifest_says(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = check(tmp_path, case, case.artifact, case.evidence, capsys)
    (result,) = report["results"]
    messages = " | ".join(v["message"] for v in result["violations"])
    if case.expected == "pass":
        assert (code, result["verdict"]) == (0, "allow"), messages
        return
    assert (code, result["verdict"]) == (1, "deny"), messages
    errors = [a["error"] for a in result["attestations"]]
    if case.expected == "unverifiable":
        assert errors and all(e.startswith("unverifiable: no transparency-log entry") for e in errors), errors
        assert "unverifiable" in messages  # the reason reaches the denial
    elif not case.policy_level:  # evidence that fails a check other than the time's
        assert errors and not any(a["verified"] for a in result["attestations"])
        assert not any(e.startswith("unverifiable") for e in errors), errors
    else:  # genuine evidence, another signer or source than the policy asks for
        assert all(a["verified"] for a in result["attestations"])
        assert {v["rule"] for v in result["violations"]} & {"attestations.signers", "attestations.slsa"}


def _flipped(path: Path, tmp_path: Path) -> Path:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    flipped = tmp_path / "flipped" / path.name
    flipped.parent.mkdir()
    flipped.write_bytes(bytes(data))
    return flipped


PASSING = [c for c in CASES if c.expected == "pass"]


@pytest.mark.parametrize("case", PASSING, ids=[c.id for c in PASSING])
def test_a_flipped_artifact_byte_is_denied(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = check(tmp_path, case, _flipped(case.artifact, tmp_path), case.evidence, capsys)
    assert code == 1 and not any(a["verified"] for a in report["results"][0]["attestations"])


def _other(case: Case) -> list[Case]:
    """Every other passing case whose artifact differs (two cases share bytes and evidence)."""
    digest = hashlib.sha256(case.artifact.read_bytes()).hexdigest()
    return [o for o in PASSING if o.id != case.id and hashlib.sha256(o.artifact.read_bytes()).hexdigest() != digest]


@pytest.mark.parametrize("case", PASSING, ids=[c.id for c in PASSING])
def test_another_cases_evidence_is_denied(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The artifact of `case` with each other passing case's evidence, under the other case's policy and root
    (so only the evidence's binding to the file can deny it)."""
    for other in _other(case):
        copy = tmp_path / other.id / case.artifact.name
        copy.parent.mkdir()
        shutil.copyfile(case.artifact, copy)
        code, report = check(copy.parent, other, copy, other.evidence, capsys)
        assert code == 1, (other.id, report)
        assert not any(a["verified"] for a in report["results"][0]["attestations"]), other.id


def test_evidence_beside_the_file_is_found(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`multiple.intoto.jsonl` beside a file, `X.bundle`, and `X.sig` + `X.crt` + `X.rekor`, without
    --attestation."""
    by_id = {c.id: c for c in CASES}
    layouts: dict[str, Callable[[Case, str], dict[str, Path]]] = {
        "slsa-generic-v2.1.0-bundle-push-v14": lambda c, d: {"multiple.intoto.jsonl": c.evidence[0]},
        "cosign-legacy-bundle-2024-github-oauth": lambda c, d: {d + ".bundle": c.evidence[0]},
        "h-cosign-cert-sig-rekor-set-staging": lambda c, d: {
            d + ".sig": c.evidence[0], d + ".crt": c.evidence[0].with_suffix(".crt"),
            d + ".rekor": c.evidence[0].with_suffix(".rekor"),
        },
    }
    for case_id, layout in layouts.items():
        case = by_id[case_id]
        directory = tmp_path / case_id
        directory.mkdir()
        artifact = directory / case.artifact.name
        shutil.copyfile(case.artifact, artifact)
        for name, source in layout(case, artifact.name).items():
            shutil.copyfile(source, directory / name)
        code, report = check(directory, case, artifact, [], capsys)
        assert code == 0, (case_id, report)
