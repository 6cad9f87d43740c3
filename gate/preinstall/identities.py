"""A pylock.toml's `attestation-identities`, judged against the policies and the verified provenance.

The identities a lock lists are claims, not evidence: they never satisfy a rule. They are checked twice:
an identity that no signer of a matching policy allows means the locked package cannot pass (reported
under `attestations.signers`, so exceptions can waive it); verified provenance from a publisher the lock
does not list means the file is not what the lock pinned (`pylock/attestation-identities`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from gate.decision import Decision, Violation
from gate.evaluate import waiver
from gate.facts import GITHUB_ISSUER, GITLAB_ISSUER, IDENTITY_PREFIXES, PUBLISHER_ISSUERS, Publisher
from gate.policy.compile import CompiledPolicy
from gate.policy.model import IdentitySigner, PublisherSigner, Signer
from gate.policy.reach import can_start_with

LOCK_POLICY = "pylock"
# No publisher's identity is longer (GitHub: owner 39 and repository 100 characters, a workflow file name
# 255); a longer one, which only a hand-edited lock can hold, allows nothing and is not matched at all.
_MAX_IDENTITY = 1024
# PEP 740 / pylock key -> the policy's (and facts') field name
_KEYS = {"workflow_filepath": "workflowFilepath"}


def _normal(identity: Mapping[str, str]) -> dict[str, str]:
    return {_KEYS.get(k, k): v for k, v in identity.items()}


def _identity_prefix(identity: dict[str, str]) -> str | None:
    """The start of the certificate SAN a workflow of this publisher gets (None: none it could get)."""
    if sum(len(value) for value in identity.values()) > _MAX_IDENTITY:
        return None
    repo = identity.get("repository")
    match identity.get("kind"):
        case "GitHub" if repo and identity.get("workflow"):
            return f"{IDENTITY_PREFIXES[GITHUB_ISSUER]}{repo}/.github/workflows/{identity['workflow']}@"
        case "GitLab" if repo and identity.get("workflowFilepath"):
            return f"{IDENTITY_PREFIXES[GITLAB_ISSUER]}{repo}//{identity['workflowFilepath']}@"
        case "Google" if identity.get("email"):
            return identity["email"]
    return None


def signer_allows(signer: Signer, identity: dict[str, str]) -> bool:
    """Whether an attestation from this publisher could satisfy `signer`."""
    match signer:
        case PublisherSigner(kind=kind, fields=fields):
            return kind == identity.get("kind") and all(
                key in identity and pattern.matches(identity[key]) for key, pattern in fields
            )
        case IdentitySigner(identity=allowed, issuer=allowed_issuer):
            issuer = PUBLISHER_ISSUERS.get(identity.get("kind", ""))
            prefix = _identity_prefix(identity)
            if issuer is None or prefix is None or not allowed_issuer.matches(issuer):
                return False
            if identity.get("kind") == "Google":
                return allowed.matches(prefix)
            return can_start_with(allowed.regex, prefix)


def _shown(identities: Sequence[dict[str, str]]) -> str:
    return "; ".join(" ".join(f"{k}={v}" for k, v in sorted(i.items())) for i in identities)


def _same_publisher(publisher: Publisher, identity: dict[str, str]) -> bool:
    if publisher.kind != identity.get("kind"):
        return False
    for key in ("repository", "workflow", "workflowFilepath", "email", "environment"):
        want, have = identity.get(key), getattr(publisher, key)
        if want and (have or key != "environment") and want != have:
            return False
    return True


def with_lock_identities(
    decision: Decision, identities: Sequence[Mapping[str, str]], policies: Sequence[CompiledPolicy], now: dt.datetime
) -> Decision:
    """The decision with violations for lock identities no policy allows or the provenance contradicts."""
    if not identities:
        return decision
    wanted = [_normal(i) for i in identities]
    extra: list[Violation] = []
    for policy in policies:
        att = policy.policy.attestations
        if policy.name not in decision.policies or att is None or not att.signers:
            continue
        if not any(signer_allows(s, i) for s in att.signers for i in wanted):
            extra.append(Violation(
                policy=policy.name, rule="attestations.signers",
                message=f"the lock's attestation-identities ({_shown(wanted)}) are not allowed by its signers",
                enforced=policy.enforced, waived=waiver(policy, "attestations.signers", decision.facts, now),
            ))
    publishers = [a.publisher for a in decision.facts.attestations if a.verified and a.publisher is not None]
    if publishers and not any(_same_publisher(p, i) for p in publishers for i in wanted):
        found = "; ".join(f"{p.kind} {p.repository or p.email} {p.workflow or p.workflowFilepath or ''}".strip()
                          for p in publishers)
        extra.append(Violation(
            policy=LOCK_POLICY, rule="attestation-identities",
            message=f"verified provenance was published by {found}, not by the lock's identities ({_shown(wanted)})",
        ))
    return Decision(facts=decision.facts, violations=decision.violations + tuple(extra), policies=decision.policies)
