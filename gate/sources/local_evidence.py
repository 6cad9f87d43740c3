"""Evidence for a local file: given with `--attestation`, or found beside it, as `gate check` reads it.

Beside `X`: `X.publish.attestation`, `X.slsa.attestation`, `X.attestation`, `X.provenance`, `X.sigstore`,
`X.sigstore.json` (PEP 740, Sigstore bundles), `X.intoto.jsonl` and the release-wide `multiple.intoto.jsonl`
in the same directory (slsa-github-generator), `X.bundle` (cosign's `--bundle`), and a detached `X.sig` with
`X.crt` (and `X.rekor`, the SET of its Rekor entry, when there is one). A `.sig` or `.crt` given with
`--attestation` is read with its partner beside it (same name, the other suffix).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gate.errors import UsageError
from gate.facts import AttestationFact
from gate.verify.api import BundleVerifier, verify_detached, verify_evidence
from gate.verify.bounded import MAX_EVIDENCE_BYTES
from gate.verify.target import Target, unverified

# Evidence looked for next to a distribution file, as `<file><suffix>`.
EVIDENCE_SUFFIXES = (
    ".publish.attestation",
    ".slsa.attestation",
    ".attestation",
    ".provenance",
    ".sigstore",
    ".sigstore.json",
    ".intoto.jsonl",
    ".bundle",
)
RELEASE_PROVENANCE = "multiple.intoto.jsonl"  # slsa-github-generator's name for one covering every file


@dataclass(frozen=True)
class Detached:
    """A detached signature and its certificate (and the `.rekor` SET file beside them, when there is one)."""

    signature: Path
    certificate: Path
    rekor: Path | None

    @classmethod
    def beside(cls, stem: Path) -> Detached:
        """The pair named `<stem>.sig` / `<stem>.crt`, with `<stem>.rekor` when that file exists."""
        rekor = stem.with_name(stem.name + ".rekor")
        return cls(stem.with_name(stem.name + ".sig"), stem.with_name(stem.name + ".crt"),
                   rekor if rekor.is_file() else None)


Evidence = Path | Detached


def _given(attestations: tuple[Path, ...]) -> list[Evidence]:
    """The `--attestation` files, a `.sig` or `.crt` taken with its partner (once, whichever was given)."""
    items: list[Evidence] = []
    for path in attestations:
        if path.suffix in (".sig", ".crt"):
            pair = Detached.beside(path.with_suffix(""))
            if pair not in items:
                items.append(pair)
        else:
            items.append(path)
    return items


def evidence_items(path: Path, attestations: tuple[Path, ...]) -> list[Evidence]:
    """Evidence given on the command line, then evidence discovered beside `path` (not given again)."""
    items = _given(attestations)
    given = {p.resolve() for p in attestations}
    found = [path.with_name(path.name + s) for s in EVIDENCE_SUFFIXES] + [path.with_name(RELEASE_PROVENANCE)]
    items += [p for p in found if p.is_file() and p.resolve() not in given]
    pair = Detached.beside(path)
    if pair.signature.is_file() and pair.certificate.is_file() and pair not in items:
        items.append(pair)
    return items


def read_evidence(evidence: Path, limit: int = MAX_EVIDENCE_BYTES) -> bytes:
    """The file's bytes, at most one more than any evidence may have (the verifier rejects a larger
    document), so a huge file or a device never fills memory."""
    try:
        with evidence.open("rb") as handle:
            return handle.read(limit + 1)
    except OSError as err:
        raise UsageError(f"cannot read attestation {evidence}: {err.strerror}") from err


def verify_item(item: Evidence, target: Target, verifier: BundleVerifier) -> list[AttestationFact]:
    """Every fact one piece of local evidence gives for `target`."""
    if isinstance(item, Path):
        return verify_evidence(read_evidence(item), str(item), target, verifier)
    source = f"{item.signature} + {item.certificate.name}" + (f" + {item.rekor.name}" if item.rekor else "")
    if not item.certificate.is_file():
        return [unverified(source, f"parse: no certificate {item.certificate.name} beside {item.signature.name}")]
    if not item.signature.is_file():
        return [unverified(source, f"parse: no signature {item.signature.name} beside {item.certificate.name}")]
    parts = [read_evidence(p) for p in (item.signature, item.certificate)]
    rekor = read_evidence(item.rekor) if item.rekor is not None else None
    if any(len(p) > MAX_EVIDENCE_BYTES for p in [*parts, rekor or b""]):
        return [unverified(source, f"parse: larger than {MAX_EVIDENCE_BYTES} bytes")]
    return [verify_detached(parts[0], parts[1], rekor, source=source, target=target, verifier=verifier)]
