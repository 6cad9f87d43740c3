"""Files on disk for `gate check`: their facts (from `gate.gather`, as the proxy has them for the same
file), their digest, and the evidence found beside them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from msgspec.structs import replace

from gate.errors import GateError, UsageError
from gate.facts import AttestationFact, Ecosystem, Facts, FileFacts, FileKind, Unidentified, with_signed_time
from gate.gather.conda import CondaFacts, SidecarLocator, bytes_facts
from gate.gather.ports import Uncached, VulnerabilityLookup, no_vulnerabilities
from gate.gather.pypi import ReadsAttestations, every_file, known_vulnerabilities, local_file_facts
from gate.sources.conda import is_conda_filename, record_for_bytes
from gate.sources.conda_channel import MAX_REPODATA_BYTES, Record, find_record, parse_repodata
from gate.sources.conda_evidence import MAX_SIDECAR_BYTES, SIGS, V0_SIGS, SidecarError
from gate.sources.filenames import is_distribution_filename, pip_sdist_readings
from gate.sources.local_evidence import Evidence, evidence_items, verify_item
from gate.sources.localfile import read_regular, sha256_file
from gate.verify.api import BundleVerifier
from gate.verify.target import Target


class UnidentifiedFileError(GateError):
    """A local file with a distribution suffix whose name does not say which package it is."""

    def __init__(self, file: Unidentified) -> None:
        super().__init__(f"{file.filename}: {file.reason}")
        self.file = file


@lru_cache(maxsize=8)
def _repodata(path: Path, mtime_ns: int) -> dict[str, Any]:
    """A `repodata.json`, parsed once per version of the file (a channel subdir checks many packages)."""
    try:
        if path.stat().st_size > MAX_REPODATA_BYTES:  # as big as the proxy takes from an upstream
            return {}
        return parse_repodata(read_regular(path))
    except (OSError, ValueError):
        return {}


def _repodata_record(path: Path) -> dict[str, Any] | None:
    """The record `repodata.json` beside a conda package lists under its filename (None: none, or no readable
    repodata); ValueError when it lists the filename with records that differ."""
    repodata = path.parent / "repodata.json"
    try:
        data = _repodata(repodata, repodata.stat().st_mtime_ns)
    except OSError:
        return None
    return find_record(data, path.name)


@dataclass(frozen=True)
class LocalOptions:
    """What `gate check` was told about local files beyond their bytes; conda sidecars are read only for
    packages `reads_attestations` says a policy needs them for."""

    attestations: tuple[Path, ...] = ()
    uploaded: dt.datetime | None = None
    channel: str | None = None
    verifier: BundleVerifier = field(default_factory=lambda: BundleVerifier(lazy=True))
    reads_attestations: ReadsAttestations = every_file
    vulnerabilities: VulnerabilityLookup = no_vulnerabilities  # the OSV records of a release (--osv)


def _conda_facts(path: Path, sha256: str, size: int, options: LocalOptions) -> tuple[FileFacts, Record | None]:
    """A conda package's facts (as the proxy has them for the record beside it, `gate.gather.conda`) and that
    record when it describes these bytes; UnidentifiedFileError when gate cannot tell which package it is."""
    try:
        record = _repodata_record(path)
    except ValueError as err:
        raise UnidentifiedFileError(Unidentified(Ecosystem.CONDA, path.name, path.name, sha256, str(err))) from err
    facts = bytes_facts(path.name, sha256, size, record, options.channel)
    if isinstance(facts, Unidentified):
        raise UnidentifiedFileError(facts)
    record = record_for_bytes(record, sha256)
    if record is None and options.channel is None and (readings := pip_sdist_readings(path.name)):
        reason = (
            f"{path.name} reads as conda package {facts.name} {facts.version} and as the pip sdist "
            f"{' '.join(readings[0])} "
            "(pip installs .tar.bz2 sdists): with no repodata.json record beside it and no --channel, gate "
            "cannot tell which installer takes it, so neither ecosystem's policies can be trusted to select it; "
            "check it in its channel directory or with --channel"
        )
        raise UnidentifiedFileError(Unidentified(Ecosystem.CONDA, facts.name, path.name, sha256, reason))
    return facts, record


def identify(path: Path, options: LocalOptions) -> tuple[FileFacts, Record | None]:
    """Facts for one local file, and its repodata record when it is a conda package in a channel dir; raise
    UnidentifiedFileError for a distribution whose name (or record) does not say which package it is."""
    sha256, size = sha256_file(path)
    record = None
    if is_conda_filename(path.name):
        facts, record = _conda_facts(path, sha256, size, options)
    elif (found := local_file_facts(path.name, sha256, size)) is not None:
        if isinstance(found, Unidentified):
            raise UnidentifiedFileError(found)
        facts = found
    elif is_distribution_filename(path.name):
        reason = (
            f"{path.name} has a distribution suffix but is not a valid wheel, sdist or conda package filename "
            "(name-version[-build]-python-abi-platform.whl, name-version.tar.gz or .zip, "
            "name-version-build.conda or .tar.bz2): gate cannot tell which package it is, so no policy can "
            "select it; check it under the filename its index gives it"
        )
        raise UnidentifiedFileError(Unidentified(Ecosystem.PYPI, path.name, path.name, sha256, reason))
    else:
        facts = FileFacts(
            ecosystem=Ecosystem.GENERIC, name=path.name, version="", filename=path.name, kind=FileKind.FILE,
            sha256=sha256, size=size,
        )
    if options.uploaded is not None:
        facts = replace(facts, uploaded=options.uploaded, uploadedFrom="--uploaded")
    return facts, record


def evidence_paths(path: Path, options: LocalOptions) -> list[Evidence]:
    """Evidence given on the command line, then evidence discovered beside a file (`gate.sources.local_evidence`).

    A conda package's own sidecars are left to `sidecar_attestations`, even when also given.
    """
    if is_conda_filename(path.name):
        own = {path.with_name(path.name + s).resolve() for s in (SIGS, V0_SIGS)}
        return [p for p in options.attestations if p.resolve() not in own]
    return evidence_items(path, options.attestations)


def _beside(path: Path) -> SidecarLocator:
    """Conda sidecars are read from the package's directory."""

    def locate(name: str) -> tuple[str, Callable[[], bytes | None]]:
        sidecar = path.with_name(name)

        def read() -> bytes | None:
            if not sidecar.is_file():
                return None
            if sidecar.stat().st_size > MAX_SIDECAR_BYTES:
                raise SidecarError(f"{sidecar} is larger than {MAX_SIDECAR_BYTES} bytes")
            try:
                return read_regular(sidecar)
            except OSError as err:
                raise SidecarError(f"cannot read {sidecar}: {err.strerror}") from err

        return str(sidecar), read

    return locate


def local_facts(path: Path, options: LocalOptions, now: dt.datetime | None = None) -> Facts:
    """Everything gate knows about one local file, with every piece of evidence verified."""
    file, record = identify(path, options)
    target = Target(filename=file.filename, sha256=file.sha256, ecosystem=file.ecosystem)
    facts: list[AttestationFact] = []
    for evidence in evidence_paths(path, options):
        facts.extend(verify_item(evidence, target, options.verifier))
    if is_conda_filename(path.name):
        service = CondaFacts(Uncached(options.verifier), options.reads_attestations)
        found, _ = service.gather(file, record, _beside(path), now or dt.datetime.now(dt.UTC))
        facts.extend(found.attestations)
    records = known_vulnerabilities(options.vulnerabilities, file)
    return Facts(file=with_signed_time(file, tuple(facts)), attestations=tuple(facts), vulnerabilities=records)


def expand_paths(paths: list[Path]) -> Iterator[Path]:
    """Files as given; a directory (a wheelhouse, a channel subdir) yields every file an installer could take
    for a distribution (so one it cannot name is judged, and denied, rather than skipped)."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.iterdir() if p.is_file() and is_distribution_filename(p.name))
        elif path.is_file():
            yield path
        else:
            raise UsageError(f"no such file or directory: {path}")
