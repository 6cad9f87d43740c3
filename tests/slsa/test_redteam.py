"""Red-team findings on SLSA provenance and cosign evidence (issue 13): each test is a way an outsider who
holds valid Sigstore signatures of their own, real evidence of others, or a log or release host, got ALLOW (or
verified evidence) where slsa-verifier, cosign or sigstore-go would have refused."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from gate.evaluate import evaluate
from gate.facts import Ecosystem, FileFacts, FileKind
from gate.gather.ports import Uncached
from gate.gather.releases import ReleaseEvidence
from gate.policy.compile import load_policy_text
from gate.policy.model import ReleaseSource
from gate.sources.rekor import RekorLookup
from gate.verify.api import BundleVerifier, verify_evidence
from gate.verify.intoto import checked_facts
from gate.verify.rekor_set import CheckError, EntryLookupError
from tests import factories as f
from tests.policy.test_slsa_rules import GENERIC, judged
from tests.slsa.cases import CASES, SLSA_COSIGN
from tests.slsa.test_hostile import INTOTO, JAR, LEGACY, PRODUCTION, SOMETHING, only, target_for
from tests.slsa.test_verify import facts_of
from tests.support.rekor_log import RekorLog, rekor_log

ROOT = Path(PRODUCTION.trusted_root)
PROVENANCE_FACTS: dict[str, Any] = {
    "identity": f"{GENERIC}@refs/tags/v2.1.0", "sourceUri": "github.com/urllib3/urllib3",
    "sourceRef": "refs/tags/2.0.0", "builderId": f"{GENERIC}@refs/tags/v2.1.0",
}
REKOR_LOG_ID = "wNI9atQGlz+VWfO6LRygH4QUfY/8W4RFwiT5i5WRgB0="


# --- builderId without `@`: only a release of the builder, as slsa-verifier (IsValidBuilderTag) ----------------

@pytest.mark.parametrize(
    ("ref", "allowed"),
    [
        ("@refs/tags/v2.1.0", True),
        ("@refs/tags/v1.10.0", True),
        ("", True),  # the bare name
        ("@0123456789abcdef0123456789abcdef01234567", False),  # a commit: may be an imposter commit of a fork
        ("@refs/heads/main", False),  # unreleased code
        ("@refs/heads/evil", False),
        ("@refs/tags/v2.1.0-rc.0", False),  # slsa-verifier: no prerelease, no build metadata
        ("@refs/tags/v2.1.0/../evil", False),
        ("@refs/tags/v2", False),
        ("@refs/tags/v02.1.0", False),
        (".evil@refs/tags/v2.1.0", False),
    ],
)
def test_a_builder_id_without_version_matches_only_releases(ref: str, allowed: bool) -> None:
    messages = judged(f"{{builderId: '{GENERIC}'}}", builderId=GENERIC + ref)
    assert (not messages) is allowed, messages


def test_a_builder_id_written_with_a_version_or_glob_is_the_policy_s_own() -> None:
    assert not judged(f"{{builderId: '{GENERIC}@refs/heads/main'}}", builderId=f"{GENERIC}@refs/heads/main")
    assert not judged(f"{{builderId: '{GENERIC}@*'}}", builderId=f"{GENERIC}@0123abcd")


# --- the delegator exception: only slsa-github-generator's two delegators, at a release -----------------------

def _gradle_statement() -> tuple[dict[str, Any], Any]:
    (case,) = [c for c in CASES if c.id == "slsa-gradle-v2.1.0-intoto002-workflow_dispatch"]
    (fact,) = facts_of(case)
    envelope = json.loads(INTOTO.read_bytes())["dsseEnvelope"]
    return json.loads(base64.b64decode(envelope["payload"])), fact


def _certified(fact: Any) -> dict[str, str]:
    keys = ("sourceRepositoryUri", "sourceRepositoryRef", "sourceRepositoryDigest")
    return {k: fact.claims[k] for k in keys if k in fact.claims}


def test_the_real_delegated_build_keeps_its_builder_id() -> None:
    statement, fact = _gradle_statement()
    assert fact.identity.endswith("/delegator_lowperms-generic_slsa3.yml@refs/tags/v2.1.0")
    facts = checked_facts(statement, fact.identity, fact.issuer, _certified(fact))
    assert facts.builderId is not None and "builder_gradle_slsa3.yml" in facts.builderId


@pytest.mark.parametrize(
    "identity",
    [
        # an imposter commit: a fork's workflow, served by GitHub under slsa-framework's name at a sha
        "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/delegator_generic_slsa3.yml"
        "@0123456789abcdef0123456789abcdef01234567",
        "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/delegator_evil_slsa3.yml"
        "@0123456789abcdef0123456789abcdef01234567",
        "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/delegator_generic_slsa3.yml"
        "@refs/heads/attacker-branch",
        "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/delegator_generic_slsa3.yml.evil"
        "@refs/tags/v2.1.0",
    ],
)
def test_a_workflow_named_like_a_delegator_cannot_sign_for_another_builder(identity: str) -> None:
    """A certificate whose identity only looks like a delegator's: the predicate's builder id must then be
    the certificate's own identity, and it is not, so no SLSA fact reaches a policy."""
    statement, fact = _gradle_statement()
    with pytest.raises(CheckError, match="builder id"):
        checked_facts(statement, identity, fact.issuer, _certified(fact))


# --- the SET's log key: named by the trusted root, valid at the integrated time (sigstore-go's check) ---------

def _root_with_rekor_validity(tmp_path: Path, start: str, end: str | None = None) -> BundleVerifier:
    root = json.loads(ROOT.read_bytes())
    for tlog in root["tlogs"]:
        if tlog["logId"]["keyId"] == REKOR_LOG_ID:
            tlog["publicKey"]["validFor"] = {"start": start} | ({"end": end} if end else {})
    path = tmp_path / "trusted_root.json"
    path.write_text(json.dumps(root))
    return BundleVerifier(path)


@pytest.mark.parametrize(
    ("start", "end"),
    [("2026-01-01T00:00:00Z", None), ("2021-01-12T11:53:27Z", "2022-01-01T00:00:00Z")],
)
def test_a_set_outside_its_log_key_validity_is_not_evidence(tmp_path: Path, start: str, end: str | None) -> None:
    """A log key retired (or not yet valid) at the entry's integrated time vouches for nothing: the legacy
    cosign bundle (integrated 2022-11) and the intoto/0.0.2 bundle (2025-02) under a root whose Rekor key is
    valid only outside those times."""
    verifier = _root_with_rekor_validity(tmp_path, start, end)
    for data, target in ((LEGACY.read_bytes(), SOMETHING), (INTOTO.read_bytes(), JAR)):
        assert only(data, target) == (True, "")  # the production root: verified
        (fact,) = verify_evidence(data, "test", target, verifier)
        assert not fact.verified and (fact.error or "").startswith("tlog-key: integrated at"), fact.error


def test_a_set_under_a_log_the_root_does_not_name_is_not_evidence(tmp_path: Path) -> None:
    root = json.loads(ROOT.read_bytes())
    root["tlogs"] = [t for t in root["tlogs"] if t["logId"]["keyId"] != REKOR_LOG_ID] + [
        t | {"logId": {"keyId": base64.b64encode(b"\1" * 32).decode()}}
        for t in root["tlogs"] if t["logId"]["keyId"] == REKOR_LOG_ID
    ]
    path = tmp_path / "trusted_root.json"
    path.write_text(json.dumps(root))
    (fact,) = verify_evidence(LEGACY.read_bytes(), "test", SOMETHING, BundleVerifier(path))
    assert not fact.verified and (fact.error or "").startswith("tlog-key: the entry's logID"), fact.error


# --- githubReleases: the version of a direct file in a lock is a claim, never a path ---------------------------

@pytest.mark.parametrize("version", ["..", ".", "1.0/../../evil", "%2e%2e"])
def test_a_version_that_is_no_pep440_version_names_no_release(version: str) -> None:
    """A pylock.toml or pip report names a direct file's version itself: `..` as the tag would climb out of
    `releases/download/` (requests drops dot segments). No request is made; the evidence says why."""
    asked: list[str] = []

    def fetch(url: str) -> bytes | None:
        asked.append(url)
        return None

    source = ReleaseSource("sample", "owner/repo")
    releases = ReleaseEvidence("https://github.com", [source], fetch, Uncached(PRODUCTION))
    file = FileFacts(ecosystem=Ecosystem.PYPI, name="sample", version=version, filename="sample",
                     kind=FileKind.FILE, sha256="0" * 64)
    evidence = releases.evidence(file, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert asked == []
    (fact,) = evidence.facts
    assert not fact.verified and (fact.error or "").startswith("release: the file's version")


# --- docs/slsa.md's workflow-input rule asks for the inputs of the provenance it trusts -------------------------

def _release_input_rule(expression: str) -> str:
    return f"""apiVersion: gate/v1
kind: Policy
metadata: {{name: p}}
spec:
  rules:
    - name: release-input
      expression: {json.dumps(expression)}
      message: not built with release_version 1.2.3
"""


def _documented_rule() -> str:
    text = (Path(__file__).parents[2] / "docs" / "slsa.md").read_text()
    block = text.split("  - name: release-input\n    expression: >-\n", 1)[1].split("    message:", 1)[0]
    return " ".join(block.split())


def test_the_documented_input_rule_is_not_met_by_someone_elses_statement() -> None:
    """The real provenance (source, builder, no such input) and an outsider's own statement for the same digest
    with the input: the rule of docs/slsa.md denies; a rule asking for the input alone would allow."""
    real = f.attestation(**PROVENANCE_FACTS)
    outsider = f.attestation(identity="https://github.com/evil/x/.github/workflows/x.yml@refs/heads/main",
                             sourceUri="github.com/evil/x", builderId="https://github.com/evil/x/.github/workflows/"
                             "x.yml@refs/heads/main", workflowInputs={"release_version": "1.2.3"})
    naive = 'attestations.exists(a, a.verified && a.workflowInputs["release_version"] == "1.2.3")'
    documented = _documented_rule()
    assert "release_version" in documented and "sourceUri" in documented
    for expression, attestations, denied in [
        (naive, (real, outsider), False),
        (documented, (real, outsider), True),
        (documented, (f.attestation(**(PROVENANCE_FACTS | {"workflowInputs": {"release_version": "1.2.3"}})),), False),
    ]:
        policies = load_policy_text(_release_input_rule(expression))
        decision = evaluate(policies, f.facts(*attestations), f.NOW)
        assert bool(decision.violations) is denied, (expression, decision.violations)


@pytest.mark.parametrize(
    ("evidence_path", "artifact"),
    [
        ("cosign/AadarshLN-artifact.md.sigstore.json", "artifacts/cosign/AadarshLN-artifact.md"),  # hashedrekord
        ("slsa/MODULE.bazel.intoto.jsonl", "artifacts/slsa/MODULE.bazel"),  # dsse
    ],
)
def test_bundles_sigstore_verifies_are_held_to_the_log_key_validity_too(
    tmp_path: Path, evidence_path: str, artifact: str
) -> None:
    data = (SLSA_COSIGN / evidence_path).read_bytes()
    target = target_for(SLSA_COSIGN / artifact)
    assert only(data, target) == (True, "")
    verifier = _root_with_rekor_validity(tmp_path, "2021-01-12T11:53:27Z", "2022-01-01T00:00:00Z")
    (fact,) = verify_evidence(data, "test", target, verifier)
    assert not fact.verified and (fact.error or "").startswith("tlog-key: integrated at"), fact.error


# --- --rekor-url: a slow log costs a bounded time per run; a digest is asked once ------------------------------

def test_the_log_is_asked_within_one_budget_per_run_and_once_per_digest() -> None:
    bundle = json.loads(LEGACY.read_bytes())
    log = RekorLog()
    log.record(SOMETHING.sha256, bundle["rekorBundle"])
    with rekor_log(log) as server:
        lookup = RekorLookup(server.base)
        (entry,) = lookup(SOMETHING.sha256)
        asked = len(log.requests)
        assert asked == 2 and lookup(SOMETHING.sha256) == [entry] and len(log.requests) == asked
        spent = RekorLookup(server.base, budget=0.0)  # a run whose budget the log has used up
        with pytest.raises(EntryLookupError, match="took 0s in all this run"):
            spent(SOMETHING.sha256)
        with pytest.raises(EntryLookupError, match="took 0s in all this run"):
            spent("0" * 64)
    assert len(log.requests) == asked
