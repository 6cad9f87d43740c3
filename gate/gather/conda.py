"""The conda facts service: a repodata record, or a conda package's bytes with the record beside them ->
`FileFacts`, or `Unidentified` with the reason it cannot be judged; and the package's attestation sidecars,
verified, when a policy reads them.

Every front end judges a package by these: the proxy (`gate.proxy.conda`), `gate check` of a channel
directory or a package file (`gate.sources.local`) and of an `@EXPLICIT` environment
(`gate.sources.conda_explicit`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from typing import Any

from gate.facts import AttestationFact, Ecosystem, Facts, FileFacts, Unidentified, with_signed_time
from gate.gather.ports import FETCH_RETRY, Evidence, EvidenceCache, earliest
from gate.gather.pypi import ReadsAttestations
from gate.sources.conda import conda_file_facts, package_facts, split_conda_filename
from gate.sources.conda_evidence import SidecarError, SidecarFetch, sidecar_attestations
from gate.sources.failure import UpstreamError
from gate.sources.segments import segment_problem
from gate.verify.target import Target

SIDECARS = "conda.sidecar"  # the evidence namespace of sidecars
SIDECAR_TTL = 3600.0  # `.sigs` may gain bundles; ask again after this long

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_LATEST = 10**14  # a repodata time below this (in ms, or in seconds below 1e11) is a date (year 5138 at most)
_UTC = dt.UTC

# A sidecar's name -> (where it is, how to fetch its bytes: None when there is no such file). Either may
# raise SidecarError (a name that cannot be located, a read that failed); the fetch may raise UpstreamError.
SidecarLocator = Callable[[str], tuple[str, Callable[[], bytes | None]]]


def _unidentified(filename: str, record: Mapping[str, Any], reason: str) -> Unidentified:
    """Named by its filename (a record's `name` is the channel's claim, which may be what is wrong)."""
    sha256 = record.get("sha256")
    try:
        name = split_conda_filename(filename)[0]
    except ValueError:
        name = filename
    return Unidentified(Ecosystem.CONDA, name, filename, sha256 if isinstance(sha256, str) else None, reason)


def record_sha256(record: Mapping[str, Any]) -> str | None:
    """The record's `sha256`, lowercase, or None when it has no valid one (64 hex digits)."""
    sha256 = record.get("sha256")
    if isinstance(sha256, str) and _SHA256.fullmatch(sha256) is not None:
        return sha256.lower()
    return None


def _byte_count(value: object) -> bool:
    """Whether a record's `size` can bound a download: absent, or a whole number of bytes (a msgpack shard
    may hold bin, ext or float values where JSON repodata has numbers)."""
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0)


# (name, version, build, sha256, upload time in seconds since the epoch, the field that gave it), as
# `record_facts` reads them from a record (`common_record`)
Listing = tuple[str, str, str, str, int | float | None, str | None]


def common_record(filename: str, record: Mapping[str, Any], *, segment_checked: bool = False) -> Listing | None:
    """What `record_facts` reads of a record, in fewer steps, when the record has the shape nearly every record
    has: a filename `name-version-build` that can be a path segment, a valid sha256, a size that is absent
    or a byte count, name (lowercase), version and build as the filename has them, and an upload time that is
    absent or a positive whole number before year 5138 (`indexed_timestamp` first, as `upload_time` has it).
    None for any other record: `record_facts` then takes each step on its own (and the answer is the same).
    `segment_checked`: the caller found no character a path segment cannot have in the filename."""
    get = record.get
    return common_fields(filename, (get("name"), get("version"), get("build"), get("sha256"), get("size"),
                                    get("indexed_timestamp"), get("timestamp")), segment_checked=segment_checked)


# A record's name, version, build, sha256, size, indexed_timestamp and timestamp, as `common_fields` reads them
Fields = tuple[object, object, object, object, object, object, object]


def common_fields(filename: str, fields: Fields, *, segment_checked: bool = False) -> Listing | None:
    """`common_record` of a record whose fields are given in a tuple (each None when the record does not name
    it; any value that is not a string when it does not name `name`, `version` or `build`)."""
    name_field, version_field, build_field, sha256, size, indexed, timestamp = fields
    if filename.endswith(".conda"):  # as `split_conda_filename`
        parts = filename[:-6].rsplit("-", 2)
    elif filename.endswith(".tar.bz2"):
        parts = filename[:-8].rsplit("-", 2)
    else:
        return None
    if len(parts) != 3 or "" in parts or (not segment_checked and segment_problem(filename) is not None):
        return None
    if type(sha256) is not str or _SHA256.fullmatch(sha256) is None:
        return None
    if size is not None and (type(size) is not int or size < 0):
        return None
    name, version, build = parts
    name = name.lower()
    if name_field != name or version_field != version or build_field != build:
        return None
    value, field = indexed, "indexed_timestamp"
    if value is None:
        value, field = timestamp, "timestamp"
        if value is None:
            return name, version, build, sha256, None, None
    if type(value) is not int or not 0 < value < _LATEST:
        return None
    return name, version, build, sha256, value / 1000 if value > 1e11 else value, field  # as `record_time`


def listed_time(seconds: float) -> dt.datetime:
    """The upload time of `Listing` seconds, as `record_time` makes it."""
    return dt.datetime.fromtimestamp(seconds, _UTC)


def record_facts(
    filename: str, record: Mapping[str, Any], channel: str | None, problem: str | None = None, *,
    size: int | None = None,
) -> FileFacts | Unidentified:
    """The facts of the package a channel lists under `filename` with `record` (`size`: of the bytes, when gate
    has read them; else the record's), or why it cannot be judged: `problem` (e.g. the repodata lists the
    filename with different records), a filename that cannot be a path segment, no valid sha256 (the download
    could not be checked), a size that is not a byte count, a filename that is not name-version-build, or a
    record whose name, version or build disagree with it."""
    if problem is None and (common := common_record(filename, record)) is not None:
        name, version, build, digest, seconds, uploaded_from = common
        return package_facts(filename, name, version, build, sha256=digest.lower(), record=record, channel=channel,
                             size=size, uploaded=None if seconds is None else listed_time(seconds),
                             uploaded_from=uploaded_from)
    if problem is None and (bad := segment_problem(filename)) is not None:
        problem = f"its filename is {bad}"
    sha256 = record_sha256(record)
    if problem is None and sha256 is None:
        problem = "its repodata record has no valid sha256, so gate could not check its download"
    if problem is None and size is None and not _byte_count(record.get("size")):
        problem = "its repodata record's size is not a byte count, so gate could not check its download"
    if problem is not None or sha256 is None:
        return _unidentified(filename, record, problem or "")
    try:
        return conda_file_facts(filename, sha256, record=record, channel=channel, size=size)
    except ValueError as err:
        return _unidentified(filename, record, str(err))


def bytes_facts(
    filename: str, sha256: str, size: int, record: Mapping[str, Any] | None, channel: str | None
) -> FileFacts | Unidentified:
    """The facts of a package whose bytes gate has read (`sha256`, `size`), named `filename`, with the record
    its channel lists under that name (None: none). A record for other bytes does not describe these and is
    not used; any other is judged as the proxy judges it (`record_facts`: one without a valid sha256 is
    denied, as the proxy denies it)."""
    if record is not None and record_sha256(record) in (None, sha256):
        found = record_facts(filename, record, channel, size=size)
        if isinstance(found, Unidentified):
            return Unidentified(found.ecosystem, found.name, filename, sha256, found.reason)
        return found
    try:
        return conda_file_facts(filename, sha256, channel=channel, size=size)
    except ValueError as err:
        return Unidentified(Ecosystem.CONDA, filename, filename, sha256, str(err))


class CondaFacts:
    """Facts for conda packages, their sidecars fetched through `cache` only for packages a policy that
    governs them reads attestations of."""

    def __init__(self, cache: EvidenceCache, reads_attestations: ReadsAttestations) -> None:
        self.cache = cache
        self.reads_attestations = reads_attestations

    def gather(
        self, file: FileFacts, record: Mapping[str, Any] | None, locate: SidecarLocator, now: dt.datetime
    ) -> tuple[Facts, dt.datetime | None]:
        """The package's facts with its sidecar evidence (when a policy reads it), and when that may change."""
        if not self.reads_attestations(file.ecosystem, file.name):
            return Facts(file), None
        evidence = self.sidecars(file, record, locate, now)
        return Facts(with_signed_time(file, evidence.facts), evidence.facts), evidence.recheck

    def sidecar_fetch(
        self, file: FileFacts, record: Mapping[str, Any] | None, locate: SidecarLocator, now: dt.datetime,
        rechecks: list[dt.datetime],
    ) -> SidecarFetch:
        """Fetch the package's sidecars through the cache (pinned to the file and the record's
        `attestations_sha256`), adding to `rechecks` when each answer is to be asked for again."""
        pinned = _pin(file, record)

        def fetch(name: str) -> tuple[str, bytes] | None:
            url, get = locate(name)
            try:
                data, recheck = self.cache.fetch(
                    SIDECARS, url, pinned, get, now, absent_ttl=SIDECAR_TTL, present_ttl=SIDECAR_TTL
                )
            except UpstreamError as err:
                rechecks.append(now + FETCH_RETRY)
                raise SidecarError(str(err)) from err
            if recheck is not None:
                rechecks.append(recheck)
            return None if data is None else (url, data)

        return fetch

    def sidecars(
        self, file: FileFacts, record: Mapping[str, Any] | None, locate: SidecarLocator, now: dt.datetime
    ) -> Evidence:
        """One fact per bundle in the package's sidecars (see `sidecar_attestations`)."""
        rechecks: list[dt.datetime] = []
        pinned = _pin(file, record)

        def verify(data: bytes, source: str, target: Target) -> tuple[AttestationFact, ...]:
            found = self.cache.verify(SIDECARS, source, pinned, data, target, now=now)
            if found.recheck is not None:
                rechecks.append(found.recheck)
            return found.facts

        target = Target(file.filename, file.sha256, file.ecosystem)
        fetch = self.sidecar_fetch(file, record, locate, now, rechecks)
        facts = sidecar_attestations(file.filename, target, record, fetch, verify)
        return Evidence(tuple(facts), earliest(*rechecks))


def _pin(file: FileFacts, record: Mapping[str, Any] | None) -> str:
    """What a sidecar's bytes and their verification depend on: the file and the record's pin."""
    return f"{file.sha256}|{(record or {}).get('attestations_sha256')}"
