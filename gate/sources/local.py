"""Facts about files on disk: name and version from the filename, digest, and evidence found beside them."""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from msgspec.structs import replace
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from gate.errors import GateError, UsageError
from gate.facts import AttestationFact, Ecosystem, Facts, FileFacts, FileKind, Unidentified
from gate.sources.conda import CONDA_SUFFIXES, conda_file_facts, is_conda_filename, record_for_bytes
from gate.sources.conda_channel import MAX_REPODATA_BYTES, find_record, parse_repodata
from gate.sources.conda_evidence import (
    MAX_SIDECAR_BYTES,
    SIGS,
    V0_SIGS,
    SidecarError,
    SidecarFetch,
    sidecar_attestations,
    verify_with,
)
from gate.sources.versions import VERSIONS, parse_version
from gate.verify.bounded import MAX_EVIDENCE_BYTES
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
# Every suffix an installer takes as a distribution: pip's archive formats (wheels, sdists in any archive it
# unpacks), eggs, conda packages. A file with one of these (in any case) is judged as a package: when its name
# cannot be parsed it is denied as unjudgeable, never checked as a `generic` file no package policy selects.
# Only other files (a binary, a document) are generic, checked by digest with a Sigstore bundle.
DIST_SUFFIXES = (
    ".whl", ".tar.gz", ".zip", *CONDA_SUFFIXES,
    ".tgz", ".tar", ".tbz", ".tar.xz", ".txz", ".tlz", ".tar.lz", ".tar.lzma", ".egg",
)


def is_distribution_filename(filename: str) -> bool:
    """Whether an installer could take `filename` for a distribution (its suffix, in any case)."""
    return filename.lower().endswith(DIST_SUFFIXES)


def pip_sdist_readings(filename: str) -> list[tuple[str, str]]:
    """Every (canonical name, version) pip could take an sdist filename for (`.tar.gz`, `.zip`, and `.tar.bz2`,
    which conda also takes). pip splits `name-version` at whichever dash follows the project name asked for, so
    any dash with a PEP 440 version after it will do: `old-1.0-0.tar.bz2` is project `old` at 1.0.post0 for pip
    (build 0 for conda), and `foo-1.0-1.tar.gz` is `foo` 1.0.post1 for pip, `foo-1-0` 1 for packaging."""
    stem = next((filename[: -len(s)] for s in (".tar.gz", ".zip", ".tar.bz2") if filename.endswith(s)), None)
    if stem is None:
        return []
    return [
        (canonicalize_name(stem[:i]), version[0])
        for i, char in enumerate(stem)
        if char == "-" and i and (version := parse_version(stem[i + 1 :])) is not None
    ]


class UnidentifiedFileError(GateError):
    """A local file with a distribution suffix whose name does not say which package it is."""

    def __init__(self, file: Unidentified) -> None:
        super().__init__(f"{file.filename}: {file.reason}")
        self.file = file


def read_regular(path: Path) -> bytes:
    """A file's bytes, no more than the size it had when opened: one that yields more (a /proc file such as
    /proc/self/pagemap says 0 bytes and reads for hundreds of GiB; a symlink in a pull request reaches it)
    raises OSError (EFBIG) like any unreadable file, so it is never read into memory without end."""
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        data = handle.read(size + 1)
    if len(data) > size:
        raise OSError(errno.EFBIG, f"yields more than the {size} bytes its size says (not a regular file)")
    return data


def sha256_file(path: Path) -> tuple[str, int]:
    """The sha256 and size of a file, read no further than the size it had when opened: a file that yields
    more (a procfs file such as /proc/self/pagemap says 0 bytes and reads for hundreds of GiB, and a symlink
    in a wheelhouse reaches it) or grows while it is read is refused (UsageError), never read forever."""
    digest = hashlib.sha256()
    read = 0
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            while chunk := handle.read(min(1 << 20, size + 1 - read)):
                read += len(chunk)
                if read > size:
                    raise UsageError(
                        f"{path}: yields more than the {size} bytes its size says (a /proc file, or one still "
                        "being written): gate reads only regular files of a fixed size"
                    )
                digest.update(chunk)
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror or err}") from err
    return digest.hexdigest(), read


# `python_filename` memo: filename pieces that were part of a filename packaging parsed successfully, per
# kind and split the same way packaging splits. packaging judges a filename by independent checks of its
# pieces (the name, the build tag, the tag set; the version with `Version()`), so a filename made only of
# known-good pieces parses exactly as packaging would; anything else is handed to packaging itself.
# tests/proxy/test_filenames.py checks the equivalence over many ordinary and odd filenames.
_MEMO_LIMIT = 20_000
_WHEEL_NAMES: dict[str, str] = {}  # name part -> canonical name
_WHEEL_BUILDS: set[str] = set()
_WHEEL_TAGS: set[str] = set()
_SDIST_NAMES: dict[str, str] = {}
_VERSIONS = VERSIONS  # versions are memoized in gate.sources.versions (shared with conda, with its own limit)

PythonFilename = tuple[str, str, FileKind, bool]  # canonical name, version, kind, prerelease


def _remember(memo: dict[str, Any] | set[str], key: str, value: Any = None) -> None:
    if len(memo) >= _MEMO_LIMIT:
        memo.clear()
    if isinstance(memo, set):
        memo.add(key)
    else:
        memo[key] = value


def _packaging_wheel(filename: str, name_part: str, build_part: str | None, tags: str) -> PythonFilename | None:
    try:
        name, version, _, _ = parse_wheel_filename(filename)
    except InvalidWheelFilename:
        return None
    _remember(_WHEEL_NAMES, name_part, canonicalize_name(name))
    if build_part is not None:
        _remember(_WHEEL_BUILDS, build_part)
    _remember(_WHEEL_TAGS, tags)
    return canonicalize_name(name), str(version), FileKind.WHEEL, version.is_prerelease


def _packaging_sdist(filename: str, name_part: str) -> PythonFilename | None:
    try:
        name, version = parse_sdist_filename(filename)
    except InvalidSdistFilename:
        return None
    _remember(_SDIST_NAMES, name_part, canonicalize_name(name))
    return canonicalize_name(name), str(version), FileKind.SDIST, version.is_prerelease


def python_filename(filename: str) -> PythonFilename | None:
    """(canonical name, version, kind, prerelease) of a wheel or sdist filename, None when it is neither
    (exactly what packaging's `parse_wheel_filename`/`parse_sdist_filename` give, memoized by piece)."""
    if filename.endswith(".whl"):
        stem = filename[:-4]
        dashes = stem.count("-")
        if dashes not in (4, 5):  # packaging's first check, verbatim
            return None
        parts = stem.split("-", dashes - 2)
        name_part, tags = parts[0], parts[-1]
        build_part = parts[2] if dashes == 5 else None
        name = _WHEEL_NAMES.get(name_part)
        if name is None or tags not in _WHEEL_TAGS or (build_part is not None and build_part not in _WHEEL_BUILDS):
            return _packaging_wheel(filename, name_part, build_part, tags)
        version = parse_version(parts[1])
        return None if version is None else (name, version[0], FileKind.WHEEL, version[1])
    if filename.endswith(".tar.gz"):
        stem = filename[:-7]
    elif filename.endswith(".zip"):
        stem = filename[:-4]
    else:
        return None
    name_part, sep, version_part = stem.rpartition("-")
    name = _SDIST_NAMES.get(name_part) if sep else None
    if name is None:
        return _packaging_sdist(filename, name_part)
    version = parse_version(version_part)
    return None if version is None else (name, version[0], FileKind.SDIST, version[1])


def python_file_facts(
    filename: str, sha256: str, size: int | None = None, *, index: str | None = None,
    uploaded: dt.datetime | None = None, uploaded_from: str | None = None, yanked: bool = False,
) -> FileFacts | None:
    """Facts from a wheel or sdist filename (and what an index said about the file), or None when it is
    neither."""
    parsed = python_filename(filename)
    if parsed is None:
        return None
    name, version, kind, prerelease = parsed
    return FileFacts(
        ecosystem=Ecosystem.PYPI,
        name=name,
        version=version,
        filename=filename,
        kind=kind,
        sha256=sha256,
        size=size,
        index=index,
        uploaded=uploaded,
        uploadedFrom=uploaded_from,
        yanked=yanked,
        prerelease=prerelease,
    )


@lru_cache(maxsize=8)
def _repodata(path: Path, mtime_ns: int) -> dict[str, Any]:
    """A `repodata.json`, parsed once per version of the file (a channel subdir checks many packages)."""
    try:
        if path.stat().st_size > MAX_REPODATA_BYTES:  # as big as the proxy takes from an upstream
            return {}
        return parse_repodata(read_regular(path))
    except (OSError, ValueError):
        return {}


def _repodata_record(path: Path, sha256: str) -> dict[str, Any] | None:
    """The record for a conda package in the `repodata.json` beside it, if there is one for these bytes."""
    repodata = path.parent / "repodata.json"
    try:
        data = _repodata(repodata, repodata.stat().st_mtime_ns)
    except OSError:
        return None
    return record_for_bytes(find_record(data, path.name), sha256)


# (ecosystem, name) -> whether a policy that governs such files reads `attestations` (so evidence that must
# be fetched is worth fetching); `gate.evaluate.Evaluator.reads_attestations` is one.
ReadsAttestations = Callable[[Ecosystem, str], bool]


def every_file(ecosystem: Ecosystem, name: str) -> bool:
    """`ReadsAttestations` for when the policies are not known: evidence is fetched for every file."""
    return True


@dataclass(frozen=True)
class LocalOptions:
    """What `gate check` was told about local files beyond their bytes; conda sidecars are read only for
    packages `reads_attestations` says a policy needs them for."""

    attestations: tuple[Path, ...] = ()
    uploaded: dt.datetime | None = None
    channel: str | None = None
    verifier: BundleVerifier = field(default_factory=BundleVerifier)
    reads_attestations: ReadsAttestations = every_file


def file_facts(path: Path, options: LocalOptions) -> tuple[FileFacts, dict[str, Any] | None]:
    """Facts for one local file, and its repodata record when it is a conda package in a channel dir; raise
    UnidentifiedFileError for a distribution whose name (or record) does not say which package it is."""
    sha256, size = sha256_file(path)
    record = None
    if is_conda_filename(path.name):
        try:
            record = _repodata_record(path, sha256)
            facts = conda_file_facts(path.name, sha256, record=record, channel=options.channel, size=size)
        except ValueError as err:
            raise UnidentifiedFileError(Unidentified(Ecosystem.CONDA, path.name, path.name, sha256, str(err))) from err
        if record is None and options.channel is None and (readings := pip_sdist_readings(path.name)):
            reason = (
                f"{path.name} reads as conda package {facts.name} {facts.version} and as the pip sdist "
                f"{' '.join(readings[0])} "
                "(pip installs .tar.bz2 sdists): with no repodata.json record beside it and no --channel, gate "
                "cannot tell which installer takes it, so neither ecosystem's policies can be trusted to select it; "
                "check it in its channel directory or with --channel"
            )
            raise UnidentifiedFileError(Unidentified(Ecosystem.CONDA, facts.name, path.name, sha256, reason))
    elif (found := python_file_facts(path.name, sha256, size)) is not None:
        facts = found
        if others := [f"{n} {v}" for n, v in pip_sdist_readings(path.name) if n != found.name]:
            reason = (
                f"{path.name} is the sdist {found.name} {found.version}, but pip, asked for another project, also "
                f"takes it for {' or '.join(others)} (it splits name and version at any dash): gate cannot tell "
                "which package it is; check it under the filename its index gives it"
            )
            raise UnidentifiedFileError(Unidentified(Ecosystem.PYPI, found.name, path.name, sha256, reason))
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
    given = {p.resolve() for p in options.attestations}
    found = [path.with_name(path.name + s) for s in EVIDENCE_SUFFIXES]
    return list(options.attestations) + [p for p in found if p.is_file() and p.resolve() not in given]


def _beside(path: Path) -> SidecarFetch:
    """Read conda sidecars from the package's directory."""

    def fetch(name: str) -> tuple[str, bytes] | None:
        sidecar = path.with_name(name)
        if not sidecar.is_file():
            return None
        if sidecar.stat().st_size > MAX_SIDECAR_BYTES:
            raise SidecarError(f"{sidecar} is larger than {MAX_SIDECAR_BYTES} bytes")
        try:
            return str(sidecar), read_regular(sidecar)
        except OSError as err:
            raise SidecarError(f"cannot read {sidecar}: {err.strerror}") from err

    return fetch


def _read(evidence: Path) -> bytes:
    """The evidence file's bytes, at most one more than any evidence may have (`verify_evidence` rejects
    a larger document), so a huge file or a device never fills memory."""
    try:
        with evidence.open("rb") as handle:
            return handle.read(MAX_EVIDENCE_BYTES + 1)
    except OSError as err:
        raise UsageError(f"cannot read attestation {evidence}: {err.strerror}") from err


def local_facts(path: Path, options: LocalOptions) -> Facts:
    """Everything gate knows about one local file, with every piece of evidence verified."""
    file, record = file_facts(path, options)
    target = Target(filename=file.filename, sha256=file.sha256, ecosystem=file.ecosystem)
    facts: list[AttestationFact] = []
    for evidence in evidence_paths(path, options):
        facts.extend(verify_evidence(_read(evidence), str(evidence), target, options.verifier))
    if is_conda_filename(path.name) and options.reads_attestations(file.ecosystem, file.name):
        facts.extend(sidecar_attestations(path.name, target, record, _beside(path), verify_with(options.verifier)))
    return Facts(file=file, attestations=tuple(facts))


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
