"""Every case of ../shared/fixtures/attestations/MANIFEST.json, decided by `gate check` as the manifest expects.

Each case becomes a policy built from its expected signer; the artifact (under the case's filename)
and its evidence go through gate's own command line and verifier, offline.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from gate.cli import main
from tests.conftest import ATTESTATIONS

MANIFEST = json.loads((ATTESTATIONS / "MANIFEST.json").read_text())
CONFORMANCE_IDENTITY = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
PUBLISHER_KEYS = {"workflow_filepath": "workflowFilepath"}


def _publisher(raw: dict[str, Any]) -> dict[str, Any]:
    return {PUBLISHER_KEYS.get(k, k): v for k, v in raw.items() if v not in (None, "") and k != "claims"}


def _signer(case: dict[str, Any]) -> dict[str, Any]:
    if case["kind"] == "conformance_bundle":
        folder = ATTESTATIONS / case["dir"]
        identity = folder / "identity"
        issuer = folder / "issuer"
        return {
            "identity": identity.read_text().strip() if identity.exists() else CONFORMANCE_IDENTITY,
            "issuer": issuer.read_text().strip() if issuer.exists() else GITHUB_ISSUER,
        }
    spec = case["policy"]
    if spec["kind"] == "identity":
        return {"identity": spec["identity"], "issuer": spec["issuer"]}
    if spec["kind"] == "publisher":
        return {"publisher": _publisher(spec["publisher"])}
    assert spec["kind"] == "provenance-publisher"
    return {"publisher": _publisher(case["expected"]["publisher"])}


def _policy(case: dict[str, Any]) -> dict[str, Any]:
    attestations: dict[str, Any] = {"required": True, "signers": [_signer(case)]}
    if "required_predicate_type" in case:
        attestations["predicateTypes"] = [case["required_predicate_type"]]
    if "expected_target_channel" in case:
        attestations["targetChannel"] = case["expected_target_channel"]
    return {
        "apiVersion": "gate/v1",
        "kind": "Policy",
        "metadata": {"name": "manifest-case"},
        "spec": {"attestations": attestations},
    }


def _stage(case: dict[str, Any], tmp: Path) -> tuple[Path, list[str]]:
    """Lay the case out in `tmp`: the artifact under its filename, evidence, and a repodata record."""
    if case["kind"] == "conformance_bundle":
        folder = ATTESTATIONS / case["dir"]
        source = folder / "artifact" if (folder / "artifact").exists() else ATTESTATIONS / case["default_artifact"]
        artifact = tmp / source.name
        shutil.copyfile(source, artifact)
        root = folder / "trusted_root.json" if (folder / "trusted_root.json").exists() else None
        args = ["--attestation", str(folder / "bundle.sigstore.json")]
        return artifact, [*args, "--trusted-root", str(root or ATTESTATIONS / case["trust_root"])]
    artifact = tmp / case["artifact"]["filename"]
    shutil.copyfile(ATTESTATIONS / case["artifact"]["path"], artifact)
    evidence = ATTESTATIONS / case["evidence"]["path"]
    args = ["--trusted-root", str(ATTESTATIONS / case["trust_root"])]
    if case["kind"] == "conda_sidecar":
        # Discovered beside the package, with the sidecar digest its repodata record advertises.
        shutil.copyfile(evidence, tmp / (artifact.name + ".sigs"))
        record = {"attestations_sha256": case["attestations_sha256"], "sha256": case["artifact"]["sha256"]}
        (tmp / "repodata.json").write_text(json.dumps({"packages.conda": {artifact.name: record}}))
        return artifact, args
    return artifact, [*args, "--attestation", str(evidence)]


# Divergences of sigstore-python the manifest records that gate resolves itself: intoto/0.0.2 entries are
# verified by gate.verify.rekor_set (issue 13)
RESOLVED_DIVERGENCES = frozenset({"conformance-intoto-with-custom-trust-root"})


def _params() -> list[Any]:
    out = []
    for case in MANIFEST["cases"]:
        marks = []
        if case.get("known_divergence") and case["id"] not in RESOLVED_DIVERGENCES:
            marks.append(pytest.mark.xfail(reason=case["known_divergence"], strict=True))
        out.append(pytest.param(case, id=case["id"], marks=marks))
    return out


@pytest.mark.parametrize("case", _params())
def test_manifest_case(case: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    artifact, args = _stage(case, tmp_path)
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(_policy(case)))
    code = main(["check", str(artifact), "--policy", str(policy), "--format", "json", *args])
    out, err = capsys.readouterr()
    if case["id"] == "conformance-trust-root-tlog-missing-validity-start_fail":
        assert code == 2 and "cannot load Sigstore trusted root" in err  # a broken trust root is a usage error
        return
    assert code in (0, 1), err
    report = json.loads(out)
    result = report["results"][0]
    expected = "allow" if case["expected_outcome"] == "pass" else "deny"
    assert result["verdict"] == expected, json.dumps(result, indent=1)
    assert code == (0 if expected == "allow" else 1)
    if expected == "allow" and case.get("expected"):
        _assert_evidence(case["expected"], result["attestations"])
    if expected == "deny":
        _assert_denied_for_the_right_reason(case, result)


# A policy-stage failure of the reference verifier is the rule gate's policy denies by.
POLICY_STAGES = {
    "policy-predicate-type": "attestations.predicateTypes",
    "policy-target-channel": "attestations.targetChannel",
}


def _assert_denied_for_the_right_reason(case: dict[str, Any], result: dict[str, Any]) -> None:
    """The evidence was read, and the deny comes from where the manifest says the case fails."""
    attestations = result["attestations"]
    rules = {v["rule"] for v in result["violations"]}
    stage = case.get("expected_stage") or case["observed"].get("stage", "")
    assert attestations, "no evidence was read"
    if stage in ("subject-name", "subject-digest", "sidecar-hash"):
        assert all(not a["verified"] and a["error"].startswith(stage) for a in attestations), attestations
    elif stage in POLICY_STAGES:
        assert any(a["verified"] for a in attestations) and POLICY_STAGES[stage] in rules, result
    else:
        # the reference's sigstore stage includes its identity check: gate verifies the bundle and then
        # denies the signer; conformance cases use the right identity, so theirs must fail verification
        assert "attestations.signers" in rules
        if case["kind"] == "conformance_bundle":
            assert not any(a["verified"] for a in attestations), attestations


def _assert_evidence(expected: dict[str, Any], attestations: list[dict[str, Any]]) -> None:
    """The verified facts are the manifest's: identity, issuer, predicate type, claims, publisher."""
    verified = [a for a in attestations if a["verified"]]
    assert verified
    att = next(a for a in verified if a["identity"] == expected["san"])
    assert att["issuer"] == expected["issuer"]
    if "predicate_type" in expected:
        assert att["predicateType"] == expected["predicate_type"]
    if "target_channel" in expected:
        assert att["targetChannel"] == expected["target_channel"]
    claims = expected.get("claims", {})
    if "source_repository_uri" in claims:
        assert att["claims"]["sourceRepositoryUri"] == claims["source_repository_uri"]
    if "build_config_uri" in claims:
        assert att["claims"]["buildConfigUri"] == claims["build_config_uri"]
    if expected.get("integrated_time"):
        when = dt.datetime.fromtimestamp(expected["integrated_time"], dt.UTC)
        assert att["integratedTime"] == when.isoformat().replace("+00:00", "Z")
    if expected.get("publisher"):
        want = _publisher(expected["publisher"])
        got = {k: v for k, v in att["publisher"].items() if v is not None}
        assert {k: got.get(k) for k in want} == want
