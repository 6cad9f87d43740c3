"""Facts about files on disk: name and version from the filename, digest, and evidence found beside them."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from gate.errors import UsageError
from gate.facts import AttestationFact, Ecosystem, Facts, FileFacts, FileKind
from gate.sources.conda import conda_file_facts, is_conda_filename
from gate.sources.conda_evidence import (
    MAX_SIDECAR_BYTES,
    SIGS,
    V0_SIGS,
    SidecarError,
    SidecarFetch,
    sidecar_attestations,
    verify_with,
)
from gate.verify.evidence import verify_evidence
from gate.verify.sigstore import BundleVerifier, Target

# Evidence looked for next to a distribution file, as `<file><suffix>`.
EVIDENCE_SUFFIXES = (
    ".publish.attestation",
    ".slsa.attestation",
    ".attestation",
    ".provenance",
    ".sigstore",
    ".sigstore.json",
)
DIST_SUFFIXES = (".whl", ".tar.gz", ".zip", ".conda", ".tar.bz2")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def python_file_facts(filename: str, sha256: str, size: int | None = None) -> FileFacts | None:
    """Facts from a wheel or sdist filename, or None when it is neither."""
    try:
        if filename.endswith(".whl"):
            name, version, _, _ = parse_wheel_filename(filename)
            kind = FileKind.WHEEL
        elif filename.endswith((".tar.gz", ".zip")):
            name, version = parse_sdist_filename(filename)
            kind = FileKind.SDIST
        else:
            return None
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    return FileFacts(
        ecosystem=Ecosystem.PYPI,
        name=canonicalize_name(name),
        version=str(version),
        filename=filename,
        kind=kind,
        sha256=sha256,
        size=size,
        prerelease=version.is_prerelease,
    )


def _repodata_record(path: Path) -> dict[str, Any] | None:
    """The record for a conda package in the `repodata.json` beside it, if there is one."""
    repodata = path.parent / "repodata.json"
    if not repodata.is_file():
        return None
    try:
        data = json.loads(repodata.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for key in ("packages.conda", "packages"):
        record = (data.get(key) or {}).get(path.name) if isinstance(data, dict) else None
        if isinstance(record, dict):
            return record
    return None


@dataclass(frozen=True)
class LocalOptions:
    """What `gate check` was told about local files beyond their bytes."""

    attestations: tuple[Path, ...] = ()
    uploaded: dt.datetime | None = None
    channel: str | None = None
    verifier: BundleVerifier | None = None


def file_facts(path: Path, options: LocalOptions) -> tuple[FileFacts, dict[str, Any] | None]:
    """Facts for one local file, and its repodata record when it is a conda package in a channel dir."""
    sha256 = sha256_file(path)
    size = path.stat().st_size
    record = None
    if is_conda_filename(path.name):
        record = _repodata_record(path)
        try:
            facts = conda_file_facts(path.name, sha256, record=record, channel=options.channel, size=size)
        except ValueError as err:
            raise UsageError(str(err)) from err
    else:
        found = python_file_facts(path.name, sha256, size)
        facts = found or FileFacts(
            ecosystem=Ecosystem.GENERIC,
            name=path.name,
            version="",
            filename=path.name,
            kind=FileKind.FILE,
            sha256=sha256,
            size=size,
        )
    if options.uploaded is not None:
        facts = replace(facts, uploaded=options.uploaded, uploadedFrom="--uploaded")
    return facts, record


def evidence_paths(path: Path, options: LocalOptions) -> list[Path]:
    """Evidence given on the command line, then evidence discovered beside a wheel or sdist.

    A conda package's own sidecars are left to `sidecar_attestations`, even when also given.
    """
    if is_conda_filename(path.name):
        own = {path.with_name(path.name + s).resolve() for s in (SIGS, V0_SIGS)}
        return [p for p in options.attestations if p.resolve() not in own]
    found = [path.with_name(path.name + s) for s in EVIDENCE_SUFFIXES]
    return list(options.attestations) + [p for p in found if p.is_file() and p not in options.attestations]


def _beside(path: Path) -> SidecarFetch:
    """Read conda sidecars from the package's directory."""

    def fetch(name: str) -> tuple[str, bytes] | None:
        sidecar = path.with_name(name)
        if not sidecar.is_file():
            return None
        if sidecar.stat().st_size > MAX_SIDECAR_BYTES:
            raise SidecarError(f"{sidecar} is larger than {MAX_SIDECAR_BYTES} bytes")
        try:
            return str(sidecar), sidecar.read_bytes()
        except OSError as err:
            raise SidecarError(f"cannot read {sidecar}: {err.strerror}") from err

    return fetch


def _read(evidence: Path) -> bytes:
    try:
        return evidence.read_bytes()
    except OSError as err:
        raise UsageError(f"cannot read attestation {evidence}: {err.strerror}") from err


def local_facts(path: Path, options: LocalOptions) -> Facts:
    """Everything gate knows about one local file, with every piece of evidence verified."""
    verifier = options.verifier or BundleVerifier()
    file, record = file_facts(path, options)
    target = Target(filename=file.filename, sha256=file.sha256, ecosystem=file.ecosystem)
    facts: list[AttestationFact] = []
    for evidence in evidence_paths(path, options):
        facts.extend(verify_evidence(_read(evidence), str(evidence), target, verifier))
    if is_conda_filename(path.name):
        facts.extend(sidecar_attestations(path.name, target, record, _beside(path), verify_with(verifier)))
    return Facts(file=file, attestations=tuple(facts))


def expand_paths(paths: list[Path]) -> Iterator[Path]:
    """Files as given; a directory (a wheelhouse, a channel subdir) yields its distribution files."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(DIST_SUFFIXES))
        elif path.is_file():
            yield path
        else:
            raise UsageError(f"no such file or directory: {path}")
