"""A project's release history, as `spec.continuity` judges a file by it: for each kind of line (minor, major,
project), the newest earlier release (of another version) with verified provenance, and who published it; and
the file's own release's earlier files with verified provenance (a file added to a release later is held to
the files the release was published with).

Which earlier files count: files of the same page that are not yanked, whose version is valid PEP 440, that
are earlier than the file (uploaded before it, when the index gives every file of the project an upload time;
else of a lower version), and, for a final release, not prereleases (prereleases never set the bar for finals).
A line (PEP 440 epoch and release segments) with no earlier release at all is held to the project's bar: a new
major line, or a new epoch, must not start with weaker provenance (an attacker's `99.0` or `1!0.1` sorts
above everything, and would otherwise have no history to be held to); a line whose earlier releases had no
verified provenance is held to the project's bar as it was when the line began (an attacker's second release
of a line of their own must not find "history without provenance"). Without upload times, a file is held to
all its release's other attested files (their order is unknown).

Bounded: one file's history fetches the provenance of at most MAX_HISTORY_FILES earlier files, and says so
when that is not enough; an earlier file whose provenance cannot be fetched makes the history unknown (fail
closed: never "no bar"). Provenance that does not verify is no evidence: that file sets no bar.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from packaging.version import InvalidVersion, Version

from gate.facts import Continuity, FileFacts, LineRelease, Publisher
from gate.gather.ports import FETCH_RETRY, earliest
from gate.sources.failure import UpstreamError

if TYPE_CHECKING:  # a type only: parsing pages (and the HTTP client beside it) is not needed to judge history
    from gate.sources.pypi import SimpleFile

MAX_HISTORY_FILES = 64  # earlier files whose provenance one file's history may fetch
RELEASE_FILES = 8  # a release's publishers: those of its newest earlier files' provenance (a release may have
# hundreds of wheels; all of one release are published by one workflow, in practice)
MAX_PUBLISHERS = 16  # distinct publishers kept of one release (cel_types.MAX_RECORD_LIST)
SCOPES = ("project", "major", "minor")


class Attested(NamedTuple):
    """What an earlier file's provenance established: the distinct publishers of its verified attestations
    (empty: none verified, or it has none), and when that may change (None: never)."""

    publishers: tuple[Publisher, ...]
    recheck: dt.datetime | None


# (row, its facts, now) -> Attested; raises UpstreamError when the provenance cannot be fetched
AttestedLookup = Callable[["SimpleFile", FileFacts, dt.datetime], Attested]


class _Entry(NamedTuple):
    row: SimpleFile
    file: FileFacts
    version: Version


@functools.lru_cache(maxsize=8192)  # a release's files share their version; pages repeat
def version_of(text: str) -> Version | None:
    try:
        return Version(text)
    except (InvalidVersion, ValueError):  # ValueError: more digits than int() converts
        return None


def line_of(version: Version, scope: str) -> tuple[int, ...]:
    """The line a version belongs to: `project` (one), `major` (epoch, first segment), `minor` (and the second)."""
    release = (*version.release, 0)
    if scope == "project":
        return ()
    if scope == "major":
        return (version.epoch, release[0])
    return (version.epoch, release[0], release[1])


class _Line:
    """The files of one line, in order: all of them (is there an earlier release?), and those with provenance."""

    def __init__(self) -> None:
        self.keys: list[Any] = []
        self.versions: list[Version] = []
        self.run_start: list[int] = []  # where the run of files of the same version each file is in starts
        self.attested_keys: list[Any] = []
        self.attested: list[_Entry] = []
        self.attested_run_start: list[int] = []

    def add(self, key: Any, entry: _Entry) -> None:
        version = entry.version
        same = bool(self.versions) and self.versions[-1] == version
        self.run_start.append(self.run_start[-1] if same else len(self.versions))
        self.keys.append(key)
        self.versions.append(version)
        if entry.row.provenance is not None:
            same = bool(self.attested) and self.attested[-1].version == version
            self.attested_run_start.append(self.attested_run_start[-1] if same else len(self.attested))
            self.attested_keys.append(key)
            self.attested.append(entry)


def _earlier_other(line: _Line, key: Any, version: Version) -> bool:
    """Whether the line has a file earlier than `key` of a version other than `version` (in constant time: a
    release of thousands of files is skipped as one run)."""
    position = bisect.bisect_left(line.keys, key) - 1
    if position < 0:
        return False
    return line.versions[position] != version or line.run_start[position] > 0


class _Walk:
    """One file's history being established: how evidence is looked up, fetches counted, rechecks gathered."""

    def __init__(self, lookup: AttestedLookup, now: dt.datetime) -> None:
        self.lookup, self.now = lookup, now
        self.seen: set[str] = set()
        self.recheck: dt.datetime | None = None


class _Unknown(Exception):  # noqa: N818 (a reason, not a fault)
    pass


class PageHistory:
    """The history of one project page, built once (sorted by line), asked for each file of the page."""

    def __init__(self, rows: Sequence[tuple[SimpleFile, FileFacts]]) -> None:
        entries = []
        for row, file in rows:
            version = version_of(file.version)
            if version is not None and not file.yanked:
                entries.append(_Entry(row, file, version))
        self.by_time = all(e.file.uploaded is not None for e in entries)
        entries.sort(key=self._key)
        self._lines: dict[tuple[str, bool, tuple[int, ...]], _Line] = {}
        self._attested: dict[Version, tuple[list[Any], list[_Entry]]] = {}  # by version, in order
        self._results: dict[tuple[Version, Any, str | None], tuple[Continuity, dt.datetime | None]] = {}
        self._placed: dict[Version, tuple[bool, dict[str, tuple[int, ...]]]] = {}  # prerelease, lines
        self._attested_names = {e.row.filename for e in entries if e.row.provenance is not None}
        for entry in entries:
            key, version = self._key(entry), entry.version
            if entry.row.provenance is not None:
                keys, files = self._attested.setdefault(version, ([], []))
                keys.append(key)
                files.append(entry)
            if version not in self._placed:
                self._placed[version] = (version.is_prerelease, {scope: line_of(version, scope) for scope in SCOPES})
            prerelease, lines = self._placed[version]
            for scope, line in lines.items():
                # a final's history holds finals only; a prerelease's everything
                for finals in (False,) if prerelease else (True, False):
                    found = self._lines.get((scope, finals, line))
                    if found is None:
                        found = self._lines[(scope, finals, line)] = _Line()
                    found.add(key, entry)
        self._memo: dict[str, tuple[Attested | UpstreamError, dt.datetime | None]] = {}
        self._lock = threading.Lock()

    def _key(self, entry: _Entry) -> Any:
        return entry.file.uploaded if self.by_time else entry.version

    def continuity(
        self, file: FileFacts, lookup: AttestedLookup, now: dt.datetime
    ) -> tuple[Continuity, dt.datetime | None]:
        """The file's `Continuity`, and when it may change (an earlier file's evidence may)."""
        version = version_of(file.version)
        if version is None:
            return Continuity(known=False, reason=f"{file.version!r} is not a PEP 440 version"), None
        if self.by_time and file.uploaded is None:  # not a row of this page: no place in its order
            return Continuity(known=False, reason="the index gives no upload time for this file"), None
        key = file.uploaded if self.by_time else version
        # Without upload times the order of a release's own files is unknown: each is held to all the others
        # (a file added to an attested release later must not pass for one of its first files)
        itself = None if self.by_time else file.filename
        memo = (version, key, itself if itself in self._attested_names else None)
        with self._lock:  # the files of a release uploaded together share it
            kept = self._results.get(memo)
        if kept is not None and (kept[1] is None or now < kept[1]):
            return kept
        found = self._continuity(version, key, memo[2], lookup, now)
        with self._lock:
            self._results[memo] = found
        return found

    def _continuity(
        self, version: Version, key: Any, itself: str | None, lookup: AttestedLookup, now: dt.datetime
    ) -> tuple[Continuity, dt.datetime | None]:
        walk = _Walk(lookup, now)
        bars: dict[str, LineRelease | None] = {}
        try:
            for scope in SCOPES:
                bars[scope] = self._bar(scope, version, key, walk, bars.get("project"))
            release = self._release(version, key, (), walk, own=itself or "")
        except _Unknown as unknown:
            return Continuity(known=False, reason=str(unknown)), walk.recheck
        continuity = Continuity(
            known=True, minor=bars["minor"], major=bars["major"], project=bars["project"], release=release
        )
        return continuity, walk.recheck

    def _bar(
        self, scope: str, version: Version, key: Any, walk: _Walk, project: LineRelease | None
    ) -> LineRelease | None:
        """The newest earlier release of another version in the line with verified provenance (a line with no
        earlier release of another version: the project's bar; a line whose earlier releases had none: the
        project's bar when the line began)."""
        finals = not version.is_prerelease
        line = self._lines.get((scope, finals, line_of(version, scope)))
        if line is None or not _earlier_other(line, key, version):
            return project  # no earlier release of this line at all: held to the project's bar
        found = self._newest_attested(line, version, key, walk)
        if found is not None or scope == "project":
            return found
        # The line has releases, none with verified provenance: it was started that way. Only a line begun
        # before the project had provenance (an old line's backport) is without a bar; one begun after (an
        # attacker's `5.0.0`, then `5.0.1`) is held to the project's bar of when its first file came.
        first = self._lines[("project", finals, ())]
        return self._newest_attested(first, line.versions[0], line.keys[0], walk)

    def _newest_attested(self, line: _Line, version: Version, key: Any, walk: _Walk) -> LineRelease | None:
        """The newest release of `line` earlier than `key`, of another version than `version`, with verified
        provenance (None: none had any)."""
        position = bisect.bisect_left(line.attested_keys, key) - 1
        while position >= 0:
            entry = line.attested[position]
            if entry.version == version:  # its own release's earlier files (`Continuity.release`): skip the run
                position = line.attested_run_start[position] - 1
                continue
            publishers = self._publishers(entry, walk)
            if publishers:
                return self._release(entry.version, key, publishers, walk)
            position -= 1
        return None

    def _release(
        self, version: Version, key: Any, first: tuple[Publisher, ...], walk: _Walk, *, own: str | None = None
    ) -> LineRelease | None:
        """The bar set by `version`: the publishers of the verified provenance of its newest RELEASE_FILES files
        earlier than `key` (None: none of them has any). `own`: the bar a file of `version` is held to by its
        own release (without upload times: all its other files, but `own`, the file's filename)."""
        keys, every = self._attested.get(version, ((), ()))
        if own is None or self.by_time:
            end = bisect.bisect_left(keys, key)
            files = list(every[max(0, end - RELEASE_FILES):end])
        else:
            files = [e for e in every if e.row.filename != own][-RELEASE_FILES:]
        publishers = dict.fromkeys(first)
        attested = []
        for entry in files:
            found = self._publishers(entry, walk)
            if found:
                publishers.update(dict.fromkeys(found))
                attested.append(entry)
        if not publishers:
            return None
        uploaded = [e.file.uploaded for e in attested if e.file.uploaded is not None]
        kept = tuple(publishers)[:MAX_PUBLISHERS]
        shown = files[0].file.version if files else str(version)
        return LineRelease(version=shown, uploaded=max(uploaded, default=None), publishers=kept)

    def _publishers(self, entry: _Entry, walk: _Walk) -> tuple[Publisher, ...]:
        filename = entry.row.filename
        if filename not in walk.seen:
            walk.seen.add(filename)
            if len(walk.seen) > MAX_HISTORY_FILES:
                raise _Unknown(
                    f"establishing it needs the provenance of more than {MAX_HISTORY_FILES} earlier files (the "
                    "newest earlier ones have none that verifies); gate does not fetch more for one file"
                )
        found = self._lookup(entry, walk.lookup, walk.now)
        if isinstance(found, UpstreamError):
            walk.recheck = earliest(walk.recheck, walk.now + FETCH_RETRY)
            raise _Unknown(f"the provenance of {filename}, an earlier release, could not be fetched: {found}")
        walk.recheck = earliest(walk.recheck, found.recheck)
        return found.publishers

    def _lookup(self, entry: _Entry, lookup: AttestedLookup, now: dt.datetime) -> Attested | UpstreamError:
        """The file's outcome, kept while it holds (a failed fetch: FETCH_RETRY), so a page asks once per file."""
        name = entry.row.filename
        with self._lock:
            kept = self._memo.get(name)
        if kept is not None and (kept[1] is None or now < kept[1]):
            return kept[0]
        found: Attested | UpstreamError
        try:
            found = lookup(entry.row, entry.file, now)
            until = found.recheck
        except UpstreamError as err:
            found, until = err, now + FETCH_RETRY
        with self._lock:
            self._memo[name] = (found, until)
        return found
