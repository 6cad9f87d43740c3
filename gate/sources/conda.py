"""Facts about conda packages: filenames and repodata records (CEP 47 upload times)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from gate.facts import Ecosystem, FileFacts, FileKind
from gate.sources.versions import parse_version

CONDA_SUFFIXES = (".conda", ".tar.bz2")
_ABSENT = object()


def is_conda_filename(filename: str) -> bool:
    return filename.endswith(CONDA_SUFFIXES)


def split_conda_filename(filename: str) -> tuple[str, str, str]:
    """`name-version-build.conda` -> (name, version, build); raise ValueError otherwise."""
    if filename.endswith(".conda"):
        stem = filename[:-6]
    elif filename.endswith(".tar.bz2"):
        stem = filename[:-8]
    else:
        stem = ""
    parts = stem.rsplit("-", 2) if stem else []
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"not a conda package filename (name-version-build.conda): {filename}")
    name, version, build = parts
    return name.lower(), version, build


def record_for_bytes(record: dict[str, Any] | None, sha256: str) -> dict[str, Any] | None:
    """`record`, unless it describes other bytes under this filename (a different sha256)."""
    if record is None:
        return None
    listed = record.get("sha256")
    return record if listed is None or str(listed).lower() == sha256 else None


def record_time(value: Any) -> dt.datetime | None:
    """Repodata times are milliseconds since the epoch; some old records use seconds. None for no time (not
    a number, or not positive); ValueError for a time no date has (the record cannot be judged)."""
    if type(value) not in (int, float) and (not isinstance(value, int | float) or isinstance(value, bool)):
        return None
    if value <= 0:
        return None
    seconds = value / 1000 if value > 1e11 else value
    try:
        return dt.datetime.fromtimestamp(seconds, _UTC)
    except (OverflowError, OSError, ValueError) as err:
        raise ValueError(f"its repodata time {value!r} is not a date ({err})") from err


def upload_time(record: Mapping[str, Any]) -> tuple[dt.datetime | None, str | None]:
    """Prefer CEP 47 `indexed_timestamp` (set by the channel) over builder-controlled `timestamp`."""
    value = record.get("indexed_timestamp")
    if value is not None and (when := record_time(value)) is not None:
        return when, "indexed_timestamp"
    value = record.get("timestamp")
    if value is not None and (when := record_time(value)) is not None:
        return when, "timestamp"
    return None, None


_UTC = dt.UTC
_RELEASE = re.compile(r"[0-9]{1,18}(?:\.[0-9]{1,18})*")  # a PEP 440 final release: never a pre-release


def is_prerelease(version: str) -> bool:
    """Whether `version` is a PEP 440 pre-release (False when it is not PEP 440); a plain release such as
    `1.26.4` (most conda versions) is answered without parsing it."""
    if _RELEASE.fullmatch(version):
        return False
    parsed = parse_version(version)
    return parsed is not None and parsed[1]


def check_record_names(filename: str, record: Mapping[str, Any], name: str, version: str, build: str) -> None:
    """Raise ValueError when the record names another package than its filename: the facts a policy judges
    (name, version, build) must describe the bytes a client installs, which conda names by filename (a record
    saying `numpy 9.9` for `signed-package-2.1.0-...conda` is a denial, never a rename)."""
    get = record.get
    if get("name") == name and get("version") == version and get("build") == build:
        return  # the common case, answered at once
    for field, from_name in (("name", name), ("version", version), ("build", build)):
        value = record.get(field, _ABSENT)
        if value is _ABSENT or value == from_name:
            continue
        said = value.lower() if field == "name" and isinstance(value, str) else value
        if said != from_name:
            raise ValueError(
                f"its repodata record says {field} {value!r} but the filename {filename} says {from_name!r}: "
                "record and filename disagree, so gate cannot tell which package this is "
                "(the channel must fix the record)"
            )


def conda_file_facts(
    filename: str,
    sha256: str,
    *,
    record: Mapping[str, Any] | None = None,
    channel: str | None = None,
    size: int | None = None,
) -> FileFacts:
    """Facts for one conda package; `record` is its repodata entry when one is known. Raise ValueError for a
    filename that is not `name-version-build`, or a record whose name, version or build disagree with it."""
    name, version, build = split_conda_filename(filename)
    record = record or {}
    check_record_names(filename, record, name, version, build)
    uploaded, uploaded_from = upload_time(record)
    return package_facts(filename, name, version, build, sha256=sha256, record=record, channel=channel, size=size,
                         uploaded=uploaded, uploaded_from=uploaded_from)


def package_facts(
    filename: str, name: str, version: str, build: str, *, sha256: str, record: Mapping[str, Any],
    channel: str | None, size: int | None, uploaded: dt.datetime | None, uploaded_from: str | None,
) -> FileFacts:
    """`conda_file_facts` of a package whose filename and record have been read (`size`: of its bytes, when
    known; else the record's)."""
    return FileFacts(
        ecosystem=Ecosystem.CONDA,
        name=name,
        version=version,
        filename=filename,
        kind=FileKind.CONDA,
        sha256=sha256,
        size=size if size is not None else record.get("size"),
        index=channel.rstrip("/") if channel else None,
        uploaded=uploaded,
        uploadedFrom=uploaded_from,
        prerelease=is_prerelease(version),
        subdir=record.get("subdir"),
        build=build,
    )
