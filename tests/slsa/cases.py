"""The real SLSA provenance and cosign cases of ../shared/fixtures/slsa-cosign (MANIFEST.json and
more/MANIFEST.json): each case's artifact, evidence, trusted root, policy and the outcome it must reach."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import FIXTURES

SLSA_COSIGN = FIXTURES / "slsa-cosign"
MANIFESTS = (SLSA_COSIGN / "MANIFEST.json", SLSA_COSIGN / "more" / "MANIFEST.json")


@dataclass(frozen=True)
class Case:
    id: str
    base: Path
    raw: dict[str, Any]

    @property
    def artifact(self) -> Path:
        return self.base / str(self.raw["artifact"]["path"])

    @property
    def trusted_root(self) -> Path:
        return self.base / str(self.raw["trust_root"])

    @property
    def expected(self) -> str:
        """`pass`, `fail` or `unverifiable`: what gate must decide (offline)."""
        result: str = self.raw["offline"]["expected_gate_result"]
        return result

    @property
    def policy_only(self) -> bool:
        """Genuine evidence that only the case's policy rejects (it verifies)."""
        return self.id.startswith("policy-")

    @property
    def policy_level(self) -> bool:
        """Genuine evidence the case's policy rejects (another signer or source than it asks for): it
        verifies, and the policy denies it."""
        return self.policy_only or self.raw["expected"].get("failure") in ("identity", "source")

    @property
    def evidence(self) -> list[Path]:
        """The `--attestation` arguments: the bundle, provenance, or the detached .sig (its .crt and .rekor
        are found beside it)."""
        ev = self.raw["evidence"]
        if "signature" in ev:
            return [self.base / ev["signature"]]
        return [self.base / (ev.get("bundle") or ev["provenance"])]

    @property
    def policy(self) -> dict[str, Any]:
        policy: dict[str, Any] = self.raw["policy"]
        return policy


def load_cases() -> list[Case]:
    return [
        Case(case["id"], manifest.parent, case)
        for manifest in MANIFESTS
        for case in json.loads(manifest.read_text())["cases"]
    ]


CASES = load_cases()
