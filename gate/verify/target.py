"""What verification is about and what it says when it cannot start, without the Sigstore libraries: the
file a bundle must be evidence for (`Target`), the fact for evidence that could not be read (`unverified`),
and where the production trusted root is. `gate.verify.sigstore` and `gate.verify.evidence` (which load
sigstore, pypi-attestations and pydantic) import this module; front ends reach them through
`gate.verify.api`, which loads them only when there is evidence to verify."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from gate.facts import AttestationFact, Ecosystem

PRODUCTION_ROOT = "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev/trusted_root.json"
# Fulcio certificate extensions (OID suffix after 1.3.6.1.4.1.57264.1.) -> claim name (camelCase, as policies
# read them); here, apart from the certificate parsing in gate.verify.claims, for the CEL types too
CLAIM_OIDS = {
    8: "issuer",
    9: "buildSignerUri",
    10: "buildSignerDigest",
    11: "runnerEnvironment",
    12: "sourceRepositoryUri",
    13: "sourceRepositoryDigest",
    14: "sourceRepositoryRef",
    15: "sourceRepositoryIdentifier",
    16: "sourceRepositoryOwnerUri",
    17: "sourceRepositoryOwnerIdentifier",
    18: "buildConfigUri",
    19: "buildConfigDigest",
    20: "buildTrigger",
    21: "runInvocationUri",
    22: "sourceRepositoryVisibility",
    23: "deploymentEnvironment",
}


@dataclass(frozen=True)
class Target:
    """The file a bundle must be evidence for."""

    filename: str
    sha256: str
    ecosystem: Ecosystem


def unverified(source: str, error: str) -> AttestationFact:
    """The fact for evidence at `source` that could not be fetched or parsed: `verified: false`, and why."""
    return AttestationFact(verified=False, source=source, error=error)


def describe_error(err: Exception) -> str:
    """An exception as one short line for a fact's `error`: its type and message."""
    return " ".join(f"{type(err).__name__}: {err}".split())[:300]


def default_trusted_root_path() -> Path:
    """The production trusted root shipped inside the `sigstore` package (never the user's cache)."""
    path = resources.files("sigstore").joinpath("_store", PRODUCTION_ROOT)
    return Path(str(path))
