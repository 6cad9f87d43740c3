"""`attestations.slsa`: slsa-verifier's options as one rule over the SLSA facts of verified attestations.

A file passes when one verified attestation from an allowed signer (when signers are listed) has every fact
the keys ask for: `sourceUri` (`--source-uri`), `sourceTag` (`--source-tag`, glob), `sourceBranch`
(`--source-branch`), `builderId` (`--builder-id`). The facts are set by the verifier only where the signing
certificate confirms the predicate (`gate.verify.intoto`), so a null fact never matches.

The compiler makes the rule's CEL from `slsa_fields` (`gate.policy.compile`); `SlsaCheck` is the same
judgement in Python, built from the same model and held to the CEL by tests/policy/test_slsa_rules.py.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from gate.facts import AttestationFact, Facts, visible_attestations
from gate.policy.describe import listed, no_verified_evidence, shown, signer_text
from gate.policy.model import Attestations, IdentitySigner, PublisherSigner, Signer, Slsa
from gate.policy.native import RuleResult, beyond_budget, not_evaluated
from gate.policy.patterns import Pattern

# (the attestation fact, the model field) of each key, in the order of the rule's CEL
_FIELDS = (("sourceUri", "source_uri"), ("sourceRef", "source_tag"), ("sourceBranch", "source_branch"),
           ("builderId", "builder_id"))


def slsa_fields(slsa: Slsa) -> list[tuple[str, Pattern]]:
    """(attestation fact, pattern) for each key the policy gives."""
    return [(fact, pattern) for fact, field in _FIELDS if (pattern := getattr(slsa, field)) is not None]


def required_text(slsa: Slsa) -> str:
    """What the policy asks, as it wrote it: `sourceUri github.com/o/r, sourceTag v*`."""
    return ", ".join(f"{key} {shown(value)}" for key, value in slsa.written)


def _matches(value: str | None, pattern: Pattern) -> bool:
    return value is not None and pattern.matches(value)


def signed_by(att: AttestationFact, signer: Signer) -> bool:
    """CEL's `signer_expression` (`gate.policy.compile`) in Python: null fields never match."""
    match signer:
        case IdentitySigner(identity=identity, issuer=issuer):
            return _matches(att.identity, identity) and _matches(att.issuer, issuer)
        case PublisherSigner(kind=kind, fields=fields):
            publisher = att.publisher
            if (publisher.kind if publisher is not None else "") != kind:
                return False
            return all(_matches(getattr(publisher, key, None), pattern) for key, pattern in fields)


@dataclass(frozen=True)
class SlsaCheck:
    """The native form of `attestations.slsa`."""

    attestations: Attestations

    def __call__(self, facts: Facts, now: dt.datetime) -> RuleResult:
        visible = visible_attestations(facts.attestations)
        if (beyond := beyond_budget(len(visible), (len(a.claims) for a in visible))) is not None:
            return not_evaluated(beyond)
        if not visible and not self.attestations.required:
            return True, None, None
        slsa = self.attestations.slsa
        assert slsa is not None
        wanted = slsa_fields(slsa)
        signers = self.attestations.signers
        passed = any(
            (not signers or any(signed_by(a, s) for s in signers))
            and all(_matches(getattr(a, fact), pattern) for fact, pattern in wanted)
            for a in visible
        )
        return passed, None, None


def _provenance(att: AttestationFact) -> str:
    if att.sourceUri is None and att.builderId is None:
        return f"{shown(att.predicateType)} without SLSA facts"
    return (f"source {shown(att.sourceUri)} ref {shown(att.sourceRef)} branch {shown(att.sourceBranch)} "
            f"builder {shown(att.builderId)}")


@dataclass(frozen=True)
class SlsaDescription:
    """`attestations.slsa`: the provenance verified evidence shows, and what the policy asks."""

    attestations: Attestations

    def __call__(self, facts: Facts) -> str:
        slsa = self.attestations.slsa
        assert slsa is not None
        required = f"required SLSA provenance: {required_text(slsa)}"
        visible = visible_attestations(facts.attestations)
        if not visible:
            return f"{no_verified_evidence(facts)}; {required}"
        signers = self.attestations.signers
        if signers and not any(signed_by(a, s) for a in visible for s in signers):
            allowed = listed(signer_text(s) for s in signers)
            return f"no verified provenance from an allowed signer ({allowed}); {required}"
        return f"verified provenance: {listed(_provenance(a) for a in visible)}; {required}"
