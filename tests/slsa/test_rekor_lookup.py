"""`--rekor-url` (off by default): evidence without a log entry (a bare `.sig` + `.crt`, a plain DSSE envelope)
becomes evidence when the transparency log the user opted into has its entry, verified like a shipped one.
The log is a loopback stand-in serving real recorded entries from the fixtures (cosign's rekorBundle and a
`.rekor` file: what Rekor returned for them). The fixtures hold no entry for slsa-verifier's plain-DSSE
provenance (annotated-tag, workflow-inputs): Rekor's answer for them (body, integratedTime, logIndex, logID,
SignedEntryTimestamp) is not in any file here, so for them only the negative paths are tested."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from gate.cli import main
from tests.slsa.cases import CASES, SLSA_COSIGN, Case
from tests.support.rekor_log import RekorLog, rekor_log

BY_ID = {c.id: c for c in CASES}
LEGACY = ["cosign-legacy-bundle-sigstore-rs-2022", "cosign-legacy-bundle-2024-github-oauth",
          "h-cosign-legacy-bundle-a", "h-cosign-legacy-bundle-b"]


def policy(tmp_path: Path, case: Case) -> Path:
    path = tmp_path / "policy.yaml"
    signer = {"identity": case.policy["identity"], "issuer": case.policy["issuer"]}
    path.write_text(yaml.safe_dump({"apiVersion": "gate/v1", "kind": "Policy", "metadata": {"name": "p"},
                                    "spec": {"attestations": {"signers": [signer]}}}))
    return path


def gate_check(tmp_path: Path, case: Case, artifact: Path, capsys: pytest.CaptureFixture[str],
               rekor_url: str | None) -> tuple[int, list[dict[str, Any]]]:
    args = ["check", str(artifact), "--policy", str(policy(tmp_path, case)), "--trusted-root",
            str(case.trusted_root), "--format", "json"]
    if rekor_url is not None:
        args += ["--rekor-url", rekor_url]
    capsys.readouterr()
    code = main(args)
    report = json.loads(capsys.readouterr().out)
    attestations: list[dict[str, Any]] = report["results"][0]["attestations"]
    return code, attestations


def detached_from_legacy(case: Case, directory: Path) -> tuple[Path, dict[str, Any]]:
    """The cosign legacy bundle's artifact with its signature and certificate as a bare `.sig` + `.crt`
    beside it (what `cosign sign-blob --output-signature --output-certificate` writes), and its rekorBundle."""
    bundle = json.loads(case.evidence[0].read_bytes())
    artifact = directory / case.artifact.name
    shutil.copyfile(case.artifact, artifact)
    artifact.with_name(artifact.name + ".sig").write_text(bundle["base64Signature"])
    artifact.with_name(artifact.name + ".crt").write_bytes(base64.b64decode(bundle["cert"]))
    rekor_bundle: dict[str, Any] = bundle["rekorBundle"]
    return artifact, rekor_bundle


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("case_id", LEGACY)
def test_a_bare_signature_is_evidence_once_its_entry_is_looked_up(
    case_id: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = BY_ID[case_id]
    artifact, entry = detached_from_legacy(case, tmp_path)
    log = RekorLog()
    log.record(sha256(artifact), entry)
    with rekor_log(log) as server:
        code, (fact,) = gate_check(tmp_path, case, artifact, capsys, None)
        assert code == 1 and fact["error"].startswith("unverifiable:") and log.requests == []  # off by default
        code, (fact,) = gate_check(tmp_path, case, artifact, capsys, server.base)
    assert (code, fact["verified"]) == (0, True), fact["error"]
    assert fact["integratedTime"] is not None
    assert log.requests[0] == "POST /api/v1/index/retrieve"


def test_the_sigstore_python_rekor_file_pair_without_its_rekor_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """offline-rekor.txt (staging): its `.rekor` file is the entry Rekor returned; served by the log instead."""
    case = BY_ID["h-cosign-cert-sig-rekor-set-staging"]
    artifact = tmp_path / case.artifact.name
    shutil.copyfile(case.artifact, artifact)
    for suffix in (".sig", ".crt"):
        shutil.copyfile(case.evidence[0].with_suffix(suffix), artifact.with_name(artifact.name + suffix))
    log = RekorLog()
    log.record(sha256(artifact), json.loads(case.evidence[0].with_suffix(".rekor").read_bytes()))
    with rekor_log(log) as server:
        code, (fact,) = gate_check(tmp_path, case, artifact, capsys, server.base)
    assert (code, fact["verified"]) == (0, True), fact["error"]


def test_a_plain_dsse_envelope_is_evidence_once_its_entry_is_looked_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """cosign attest-blob's envelope and certificate as a plain DSSE line (cert embedded, as
    slsa-github-generator < v2 writes them), its dsse entry found by the payload's sha256."""
    case = BY_ID["h-cosign-attest-blob-wheel"]
    bundle = json.loads(case.evidence[0].read_bytes())
    envelope = json.loads(base64.b64decode(bundle["base64Signature"]))
    envelope["signatures"][0]["cert"] = base64.b64decode(bundle["cert"]).decode()
    artifact = tmp_path / case.artifact.name
    shutil.copyfile(case.artifact, artifact)
    artifact.with_name(artifact.name + ".intoto.jsonl").write_text(json.dumps(envelope) + "\n")
    log = RekorLog()
    log.record(hashlib.sha256(base64.b64decode(envelope["payload"])).hexdigest(), bundle["rekorBundle"])
    with rekor_log(log) as server:
        code, (fact,) = gate_check(tmp_path, case, artifact, capsys, None)
        assert code == 1 and fact["error"].startswith("unverifiable:")
        code, (fact,) = gate_check(tmp_path, case, artifact, capsys, server.base)
    assert (code, fact["verified"], fact["predicateType"]) == (0, True, "https://cyclonedx.org/bom"), fact["error"]


def _shifted() -> dict[str, Any]:
    bundle: dict[str, Any] = json.loads((SLSA_COSIGN / "negative" / "sigstore-rs-artifact.txt.time-plus-1.bundle")
                                        .read_bytes())["rekorBundle"]
    return bundle


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        ({}, "the transparency log has no entry for it"),
        ({"entry": "other"}, "do not record it: cert-validity"),  # another signature's real entry
        ({"entry": "shifted"}, "do not record it: tlog-set"),  # integratedTime moved: the SET fails
        ({"status": 500}, "lookup failed: the transparency log answered 500"),
        ({"redirect_to": "http://127.0.0.2:9"}, "lookup failed: the transparency log answered 307"),
        ({"oversized": True}, "lookup failed: upstream"),
    ],
)
def test_what_the_log_cannot_prove_stays_unverifiable(
    script: dict[str, Any], reason: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = BY_ID["cosign-legacy-bundle-sigstore-rs-2022"]
    artifact, _ = detached_from_legacy(case, tmp_path)
    log = RekorLog(status=script.get("status", 200), redirect_to=script.get("redirect_to"),
                   oversized=script.get("oversized", False))
    if script.get("entry") == "other":
        (tmp_path / "other").mkdir()
        _, other = detached_from_legacy(BY_ID["cosign-legacy-bundle-2024-github-oauth"], tmp_path / "other")
        log.record(sha256(artifact), other)
    elif script.get("entry") == "shifted":
        log.record(sha256(artifact), _shifted())
    with rekor_log(log) as server:
        code, (fact,) = gate_check(tmp_path, case, artifact, capsys, server.base)
    assert code == 1 and not fact["verified"]
    assert fact["error"].startswith("unverifiable: no transparency-log entry proves when it was signed")
    assert reason in fact["error"], fact["error"]


def test_slsa_plain_dsse_with_no_recorded_entry_stays_unverifiable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = BY_ID["slsa-generic-v1.2.2-plain-dsse-annotated-tag"]
    artifact = tmp_path / case.artifact.name
    shutil.copyfile(case.artifact, artifact)
    shutil.copyfile(case.evidence[0], tmp_path / "multiple.intoto.jsonl")
    log = RekorLog()
    with rekor_log(log) as server:
        code, (fact,) = gate_check(tmp_path, case, artifact, capsys, server.base)
    assert code == 1 and "the transparency log has no entry for it" in fact["error"]
    assert log.requests == ["POST /api/v1/index/retrieve"]


@pytest.mark.parametrize("url", ["ftp://rekor.example", "rekor.sigstore.dev", "https://user@rekor.example"])
def test_a_rekor_url_that_is_not_one_is_a_usage_error(url: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    case = BY_ID["cosign-legacy-bundle-sigstore-rs-2022"]
    code = main(["check", str(case.artifact), "--policy", str(policy(tmp_path, case)), "--rekor-url", url])
    assert code == 2 and "--rekor-url must be an http(s) URL" in capsys.readouterr().err
