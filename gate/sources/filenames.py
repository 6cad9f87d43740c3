"""Wheel and sdist filenames as installers read them: which package and version a filename names, and which
suffixes make a file a distribution at all. Pure; memoized for the proxy's pages of thousands of files."""

from __future__ import annotations

import datetime as dt

from packaging.utils import (
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from gate.facts import Ecosystem, FileFacts, FileKind
from gate.memo import MISSING, Memo
from gate.sources.conda import CONDA_SUFFIXES
from gate.sources.versions import VERSIONS, parse_version

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



# `python_filename` memo: filename pieces that were part of a filename packaging parsed successfully, per
# kind and split the same way packaging splits. packaging judges a filename by independent checks of its
# pieces (the name, the build tag, the tag set; the version with `Version()`), so a filename made only of
# known-good pieces parses exactly as packaging would; anything else is handed to packaging itself.
# tests/sources/test_filenames.py checks the equivalence over many ordinary and odd filenames.
_MEMO_LIMIT = 20_000
_WHEEL_NAMES: Memo[str, str] = Memo(_MEMO_LIMIT)  # name part -> canonical name
_WHEEL_BUILDS: Memo[str, None] = Memo(_MEMO_LIMIT)  # build tags packaging accepted
_WHEEL_TAGS: Memo[str, None] = Memo(_MEMO_LIMIT)  # tag sets packaging accepted
_SDIST_NAMES: Memo[str, str] = Memo(_MEMO_LIMIT)
_VERSIONS = VERSIONS  # versions are memoized in gate.sources.versions (shared with conda, with its own limit)

PythonFilename = tuple[str, str, FileKind, bool]  # canonical name, version, kind, prerelease


def _packaging_wheel(filename: str, name_part: str, build_part: str | None, tags: str) -> PythonFilename | None:
    try:
        name, version, _, _ = parse_wheel_filename(filename)
    except ValueError:  # InvalidWheelFilename, or a version with more digits than int() converts
        return None
    _WHEEL_NAMES.put(name_part, canonicalize_name(name))
    if build_part is not None:
        _WHEEL_BUILDS.put(build_part, None)
    _WHEEL_TAGS.put(tags, None)
    return canonicalize_name(name), str(version), FileKind.WHEEL, version.is_prerelease


def _packaging_sdist(filename: str, name_part: str) -> PythonFilename | None:
    try:
        name, version = parse_sdist_filename(filename)
    except ValueError:  # InvalidSdistFilename, or a version with more digits than int() converts
        return None
    _SDIST_NAMES.put(name_part, canonicalize_name(name))
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
        if name is MISSING or tags not in _WHEEL_TAGS or (build_part is not None and build_part not in _WHEEL_BUILDS):
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
    name = _SDIST_NAMES.get(name_part) if sep else MISSING
    if name is MISSING:
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

