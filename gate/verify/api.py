"""Verification as front ends use it: a `BundleVerifier` for one trusted root and `verify_evidence`, which
load the Sigstore stack (sigstore, tuf, pypi-attestations, pydantic: most of a second) only when there is
evidence to verify; `gate check` of a wheel under an age-only policy never loads it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gate.facts import AttestationFact
from gate.verify.target import Target, default_trusted_root_path

if TYPE_CHECKING:
    from gate.verify.rekor_set import EntryLookup
    from gate.verify.sigstore import SigstoreVerifier


class BundleVerifier:
    """Verifies bundles against one trusted root (the production root shipped with sigstore by default).
    The root is loaded now (a bad `--trusted-root` is an error at start) unless `lazy`: then on first use."""

    def __init__(
        self, trusted_root: Path | None = None, *, rekor_lookup: EntryLookup | None = None, lazy: bool = False
    ) -> None:
        self.given = trusted_root
        self.rekor_lookup = rekor_lookup  # off unless the user opted in: `gate.verify.cosign`
        self._engine: SigstoreVerifier | None = None
        self._lock = threading.Lock()
        if not lazy:
            self.engine  # noqa: B018 (load and check the trusted root now)

    @property
    def trusted_root(self) -> Path:
        return (self.given or default_trusted_root_path()).resolve()

    @property
    def engine(self) -> SigstoreVerifier:
        """The sigstore verifier for the trusted root, loaded on first use."""
        with self._lock:
            if self._engine is None:
                from gate.verify.sigstore import SigstoreVerifier  # noqa: PLC0415 (only with evidence)

                self._engine = SigstoreVerifier(self.trusted_root, rekor_lookup=self.rekor_lookup)
            return self._engine

    def verify(self, bundle: Any, target: Target, source: str, *, pep740: bool = False) -> AttestationFact:
        """Verify a parsed sigstore `Bundle` as evidence for `target`; every failure is `verified: false`."""
        return self.engine.verify(bundle, target, source, pep740=pep740)


def verify_evidence(data: bytes, source: str, target: Target, verifier: BundleVerifier) -> list[AttestationFact]:
    """Every piece of evidence in `data` (a PEP 740 provenance or attestation, a Sigstore bundle or a list of
    them), verified for `target`: `gate.verify.evidence.verify_evidence`, loaded now."""
    from gate.verify.evidence import verify_evidence as verify  # noqa: PLC0415 (only with evidence)

    return verify(data, source, target, verifier.engine)


def verify_detached(
    signature: bytes, certificate: bytes, rekor: bytes | None, *, source: str, target: Target,
    verifier: BundleVerifier,
) -> AttestationFact:
    """A detached `.sig` and `.crt` (and `.rekor` SET) verified for `target`: `gate.verify.cosign`, loaded now."""
    from gate.verify.cosign import verify_detached as verify  # noqa: PLC0415 (only with evidence)

    return verify(signature, certificate, rekor, source=source, target=target, verifier=verifier.engine)
