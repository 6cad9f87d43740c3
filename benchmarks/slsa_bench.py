"""Verification time per evidence format (issue 13), as a ratio to a Sigstore bundle verified by
sigstore-python's own `Verifier` in the same run (the machine is shared and noisy: only ratios compare).

Run: python benchmarks/slsa_bench.py [--rounds N]. Uses the real cases of ../shared/fixtures/slsa-cosign:
each evidence document is verified for its artifact `rounds` times through `gate.verify.evidence`
(`verify_detached` for a .sig + .crt pair); prints a Markdown table of the median time and its ratio to the
Sigstore dsse/0.0.1 bundle, and the worst case of a JSON Lines file (MAX_LINES plain DSSE lines, each
checked as far as offline checks go).
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from gate.facts import AttestationFact, Ecosystem
from gate.verify.api import BundleVerifier, verify_detached, verify_evidence
from gate.verify.evidence import MAX_LINES
from gate.verify.target import Target

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "slsa-cosign"
PRODUCTION = FIXTURES / "trust" / "sigstore-production-trusted_root.json"
STAGING = FIXTURES / "trust" / "sigstore-staging-trusted_root.json"


def target(path: Path) -> Target:
    return Target(path.name, hashlib.sha256(path.read_bytes()).hexdigest(), Ecosystem.GENERIC)


Run = Callable[[], list[AttestationFact]]


def cases() -> list[tuple[str, Run]]:
    prod, staging = BundleVerifier(PRODUCTION), BundleVerifier(STAGING)
    art, cos, more = FIXTURES / "artifacts", FIXTURES / "cosign", FIXTURES / "more"

    def document(evidence: Path, artifact: Path, verifier: BundleVerifier = prod) -> Run:
        data, tgt = evidence.read_bytes(), target(artifact)
        return lambda: verify_evidence(data, evidence.name, tgt, verifier)

    plain = (FIXTURES / "slsa" / "annotated-tag.intoto.jsonl").read_bytes().splitlines()[0]
    many = b"\n".join([plain] * MAX_LINES)
    tag = target(art / "slsa" / "annotated-tag")
    rekor = more / "cosign" / "offline-rekor.txt"
    return [
        ("Sigstore bundle, dsse/0.0.1 (sigstore-python)", document(
            FIXTURES / "slsa" / "MODULE.bazel.intoto.jsonl", art / "slsa" / "MODULE.bazel")),
        ("Sigstore bundle, hashedrekord + TSA (sigstore-python)", document(
            cos / "AadarshLN-artifact.md.sigstore.json", art / "cosign" / "AadarshLN-artifact.md")),
        ("Sigstore bundle, intoto/0.0.2 (gate.verify.rekor_set)", document(
            FIXTURES / "slsa" / "gha_gradle-v2.1.0-workflow_dispatch.build.slsa",
            art / "slsa" / "workflow_dispatch-0.5.29.jar")),
        ("cosign legacy bundle, hashedrekord (SET)", document(
            cos / "sigstore-rs-artifact.txt.bundle", art / "cosign" / "something.txt")),
        ("cosign attest-blob legacy bundle, dsse (SET)", document(
            cos / "dz_python_rekor_monitor-4.0.2-py3-none-any.whl.sbom-attestation.bundle",
            art / "cosign" / "dz_python_rekor_monitor-4.0.2-py3-none-any.whl")),
        (".sig + .crt + .rekor (SET, staging)", lambda: [verify_detached(
            rekor.with_suffix(".txt.sig").read_bytes(), rekor.with_suffix(".txt.crt").read_bytes(),
            rekor.with_suffix(".txt.rekor").read_bytes(), source="b", target=target(more / "artifacts" / "cosign" /
                                                                                    "offline-rekor.txt"),
            verifier=staging)]),
        ("plain DSSE (unverifiable after every other check)", document(
            FIXTURES / "slsa" / "annotated-tag.intoto.jsonl", art / "slsa" / "annotated-tag")),
        (f"JSON Lines, {MAX_LINES} plain DSSE lines naming the file (16 verified, the rest skipped)",
         lambda: verify_evidence(many, "many", tag, prod)),
        (f"JSON Lines, {MAX_LINES} plain DSSE lines naming other files (refused before any crypto)",
         lambda: verify_evidence(many, "many", target(art / "cosign" / "something.txt"), prod)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    rounds = parser.parse_args().rounds
    rows = []
    for name, run in cases():
        run()  # warm: parse caches, keyrings
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            facts = run()
            times.append(time.perf_counter() - started)
        rows.append((name, statistics.median(times), facts))
    base = rows[0][1]
    print("| evidence | median ms | ratio to the dsse bundle | outcome |")
    print("|---|---:|---:|---|")
    for name, median, facts in rows:
        outcome = "verified" if all(f.verified for f in facts) else (facts[0].error or "")[:40]
        print(f"| {name} | {median * 1000:.2f} | {median / base:.2f}x | {outcome} |")


if __name__ == "__main__":
    main()
