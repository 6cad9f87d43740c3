"""OSV vulnerability and malicious-package data, loaded from disk, looked up offline (issue 16).

`OsvDatabase.load(paths)` reads the OSV bulk export zip (`<ID>.json` at its root), directory trees of OSV
JSON records (github/advisory-database, ossf/malicious-packages) or single record files, and indexes every
`affected[]` entry of the `PyPI` ecosystem by its PEP 503-normalised name. `lookup(ecosystem, name,
version)` gives the records that apply to that release as `gate.facts.Vulnerability` facts, by the OSV
evaluation algorithm (https://ossf.github.io/osv-schema/#evaluation) under PEP 440 ordering.

The decisions (strictness, warnings read the way that deny more, non-PEP 440 releases, SEMVER/GIT ranges,
withdrawn and duplicate records, which score is `severity`, what is `malicious`, conda) are written down
once, in the README's "Vulnerabilities (OSV)", and each is tested in tests/sources/test_osv*.py.
"""

from __future__ import annotations

import bisect
import datetime as dt
import gc
import hashlib
from collections.abc import Sequence
from pathlib import Path

import msgspec
from packaging.utils import canonicalize_name, canonicalize_version
from packaging.version import Version

from gate.errors import GateError
from gate.facts import Ecosystem, Vulnerability, iso_z
from gate.memo import MISSING, Memo
from gate.sources import osv_schema
from gate.sources.osv_files import Limits, read_documents
from gate.sources.osv_schema import Affected, Record
from gate.sources.osv_score import VectorScores, graded, known_grades

PYPI = "PyPI"  # the OSV ecosystem name of PyPI (exact; OSV ecosystem names are case-sensitive)
MEMO_LIMIT = 20_000
FUTURE_SKEW = dt.timedelta(days=1)  # a record `modified` later than the load by more than this is not believed

# event kinds, in the order the evaluation walks them
_INTRODUCED, _FIXED, _LAST_AFFECTED = 0, 1, 2
_RELEASES: Memo[str, tuple[Version | None, str]] = Memo(MEMO_LIMIT)


class OsvError(GateError):
    """OSV data that cannot be used: every problem, each as `file: field: why`."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("cannot use the OSV data:\n" + "\n".join(f"  {p}" for p in self.problems))


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except ValueError:  # InvalidVersion, or more digits than int() converts
        return None


def _key(version: Version) -> str:
    """Text equal for versions PEP 440 calls equal (`1.0` == `1.0.0`, `2024.07.4` == `2024.7.4`)."""
    return canonicalize_version(version, strip_trailing_zero=True)


def parse_release(text: str) -> tuple[Version | None, str]:
    """A release's version as PEP 440 (None when it is not) and its `versions[]` key (the text itself when
    it is not PEP 440); memoized: the same versions are looked up again and again."""
    found = _RELEASES.get(text)
    if found is MISSING:
        parsed = _version(text)
        found = (parsed, _key(parsed) if parsed is not None else text)
        _RELEASES.put(text, found)
    return found


class _Range(msgspec.Struct, frozen=True, gc=False):
    """One ECOSYSTEM range as read: events sorted by version (None: introduced "0"), the versions of its
    `limit` events (None: "*"; no limits: unlimited) and its `fixed` versions with their texts."""

    events: tuple[tuple[Version | None, int, str], ...]
    limits: tuple[Version | None, ...] | None
    fixed: tuple[tuple[Version, str], ...]

    def versions(self) -> set[Version]:
        return {v for v, _, _ in self.events if v is not None} | {v for v in self.limits or () if v is not None}

    def place(self, position: dict[Version, int]) -> _Span:
        return _Span(
            tuple((-1 if v is None else position[v], kind) for v, kind, _ in self.events),
            None if self.limits is None else tuple(None if v is None else position[v] for v in self.limits),
            tuple((position[v], text) for v, text in self.fixed),
        )


class _Span(msgspec.Struct, frozen=True, gc=False):
    """A `_Range` placed among its project's bounds (every version any of its ranges names, sorted): a
    bound at position p is 2p + 1, introduced "0" is -1, a "*" limit None. A release is placed the same
    way (2p + 1 when it equals bound p, 2p when it lies between bounds p - 1 and p), so the evaluation
    compares integers, and a lookup compares PEP 440 versions only to find its place (a bisection)."""

    events: tuple[tuple[int, int], ...]
    limits: tuple[int | None, ...] | None
    fixed: tuple[tuple[int, str], ...]

    def contains(self, at: int) -> bool:
        """The OSV evaluation (`BeforeLimits`, then the walk over the sorted events) for a release at `at`."""
        if self.limits is not None and not any(limit is None or at < limit for limit in self.limits):
            return False
        vulnerable = False
        for event, kind in self.events:
            if kind == _INTRODUCED:
                if at >= event:
                    vulnerable = True
            elif at >= event if kind == _FIXED else at > event:
                vulnerable = False
        return vulnerable


class _Entry(msgspec.Struct, frozen=True, gc=False):
    """One `affected[]` entry for a package: the fact to give when it applies (without `fixed`), its
    `versions` (as `_key`s, or the text as written when it is not PEP 440) and its ranges."""

    fact: Vulnerability
    versions: frozenset[str]
    ranges: tuple[_Range, ...]


class _Placed(msgspec.Struct, frozen=True, gc=False):
    """An `_Entry` with its ranges placed among its project's bounds."""

    fact: Vulnerability
    versions: frozenset[str]
    spans: tuple[_Span, ...]


class _Project(msgspec.Struct, frozen=True, gc=False):
    """Every entry naming one project, and the sorted versions its ranges name."""

    bounds: tuple[Version, ...]
    entries: tuple[_Placed, ...]

    @classmethod
    def build(cls, entries: list[_Entry]) -> _Project:
        bounds = sorted(set().union(*(r.versions() for e in entries for r in e.ranges)))
        position = {v: 2 * i + 1 for i, v in enumerate(bounds)}
        placed = [_Placed(e.fact, e.versions, tuple(r.place(position) for r in e.ranges)) for e in entries]
        return cls(tuple(bounds), tuple(placed))

    def place(self, version: Version) -> int:
        i = bisect.bisect_left(self.bounds, version)
        return 2 * i + 1 if i < len(self.bounds) and self.bounds[i] == version else 2 * i


class _Compiled(msgspec.Struct, frozen=True, gc=False):
    """A record reduced to what lookups need: its entries per normalised PyPI name."""

    modified: dt.datetime
    withdrawn: bool
    entries: dict[str, list[_Entry]]


class _Builder:
    """One load's state: version and vector caches shared by every record, warnings, counts."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now
        self.warnings: list[str] = []
        self.versions: dict[str, Version | None] = {}
        self.texts: dict[str, str] = {}  # a `versions` entry -> its key (`_key`), one object per key text
        self.scores = VectorScores()
        self.names: dict[str, str] = {}  # a package name as written -> PEP 503

    def version(self, text: str) -> Version | None:
        found = self.versions.get(text, MISSING)
        if found is MISSING:
            found = self.versions[text] = _version(text)
        return found

    def keys(self, versions: tuple[str, ...]) -> frozenset[str]:
        """The `_key`s of a `versions[]` list (the text itself where it is not PEP 440). Lists repeat the
        same few thousand texts: each is parsed once, and known ones are mapped in C."""
        try:
            return frozenset(map(self.texts.__getitem__, versions))
        except KeyError:
            for text in versions:
                if text not in self.texts:
                    parsed = self.version(text)
                    self.texts[text] = _key(parsed) if parsed is not None else text
            return frozenset(map(self.texts.__getitem__, versions))

    def compile(self, record: Record, label: str) -> _Compiled:
        modified = _utc(record.modified)
        entries: dict[str, list[_Entry]] = {}
        if record.withdrawn is not None and _utc(record.withdrawn) <= self.now:
            return _Compiled(modified, True, entries)
        specific = record.database_specific
        label_text = specific.label() if specific else None
        marked = specific is not None and specific.origins is not None
        aliases = tuple(record.aliases or ())
        malicious = marked or any(i.startswith("MAL-") for i in (record.id, *aliases))
        published = _utc(record.published) if record.published else None
        for i, affected in enumerate(record.affected or ()):
            if affected.package is None or affected.package.ecosystem != PYPI:
                continue
            name = self.names.get(affected.package.name)
            if name is None:
                name = self.names[affected.package.name] = canonicalize_name(affected.package.name)
            vectors = [(f"$.severity[{j}]", s) for j, s in enumerate(record.severity or ())]
            if affected.severity:
                vectors += [(f"$.affected[{i}].severity[{j}]", s) for j, s in enumerate(affected.severity)]
            fact = Vulnerability(
                id=record.id,
                aliases=aliases,
                summary=record.summary or "",
                severity=self.scores.highest(vectors, label, self.warnings),
                severityLabel=label_text,
                malicious=malicious,
                published=published,
                modified=modified,
            )
            entry = _Entry(fact, self.keys(affected.versions or ()), self._ranges(affected, label, i))
            entries.setdefault(name, []).append(entry)
        return _Compiled(modified, False, entries)

    def _ranges(self, affected: Affected, label: str, index: int) -> tuple[_Range, ...]:
        built: list[_Range] = []
        for j, rng in enumerate(affected.ranges or ()):
            if rng.type != "ECOSYSTEM":
                continue  # SEMVER / GIT: not PyPI's ordering (documented)
            events: list[tuple[Version | None, int, str]] = []
            limits: list[Version | None] = []
            fixed: list[tuple[Version, str]] = []
            for k, event in enumerate(rng.events):
                ((key, text),) = event.kinds()  # exactly one: checked by Record.problems
                where = (label, index, j, k, key)
                if key == "limit":
                    limits.append(None if "*" in text else self._bound(text, where, "is no limit"))
                    continue
                if key == "introduced":
                    at_version = None if text == "0" else self._bound(text, where, "counts from the start")
                    events.append((at_version, _INTRODUCED, text))
                    continue
                parsed = self._bound(text, where, "does not end the range")
                if parsed is None:
                    continue
                events.append((parsed, _FIXED if key == "fixed" else _LAST_AFFECTED, text))
                if key == "fixed":
                    fixed.append((parsed, text))
            events.sort(key=_event_order)
            built.append(_Range(tuple(events), tuple(limits) if limits else None, tuple(sorted(fixed))))
        return tuple(built)

    def _bound(self, text: str, where: tuple[str, int, int, int, str], widened: str) -> Version | None:
        parsed = self.version(text)
        if parsed is None:
            label, i, j, k, key = where
            self.warnings.append(f"{label}: $.affected[{i}].ranges[{j}].events[{k}].{key}: {text!r} is not a "
                                 f"PEP 440 version; it {widened}")
        return parsed


def _event_order(event: tuple[Version | None, int, str]) -> tuple[bool, Version | None]:
    return (event[0] is not None, event[0])  # introduced "0" first; sort is stable on ties


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


class OsvDatabase:
    """The records of one load, indexed by (ecosystem, PEP 503-normalised name)."""

    sources: tuple[Path, ...]
    loaded: dt.datetime  # when it was loaded (its age is reported by the proxy)
    newest: dt.datetime | None  # the newest `modified` of any record (how current the data is)
    digest: str  # sha256 over every document read, with where it came from: changes when the data does
    records: int  # distinct record ids read
    withdrawn: int  # of those, withdrawn (they apply to nothing)
    skipped: int  # of those, naming no PyPI package (other ecosystems: not indexed)
    warnings: tuple[str, ...]  # read the way that denies more (see the module docstring), each with where

    def __init__(self, sources: tuple[Path, ...], loaded: dt.datetime) -> None:
        self.sources = sources
        self.loaded = loaded
        self.newest = None
        self.digest = ""
        self.records = self.withdrawn = self.skipped = 0
        self.warnings = ()
        self._index: dict[str, _Project] = {}
        # (name as given, version as given) -> what `lookup` gave: a page asks for each version's files
        self._found: Memo[tuple[str, str], tuple[Vulnerability, ...]] = Memo(MEMO_LIMIT)

    @classmethod
    def load(cls, paths: Sequence[Path], *, now: dt.datetime | None = None, limits: Limits | None = None,
             ) -> OsvDatabase:
        """Read and index every record under `paths`; raises OsvError listing every problem found."""
        collecting = gc.isenabled()
        gc.disable()  # ~20k records make millions of objects and no cycles: collections only cost time
        try:
            return cls._load(paths, now, limits)
        finally:
            if collecting:
                gc.enable()

    @classmethod
    def _load(cls, paths: Sequence[Path], now: dt.datetime | None, limits: Limits | None) -> OsvDatabase:
        loaded = now or dt.datetime.now(dt.UTC)
        database = cls(tuple(paths), loaded)
        if not paths:
            raise OsvError(["no OSV data given"])
        problems: list[str] = []
        builder = _Builder(loaded)
        kept: dict[str, _Compiled] = {}
        digest = hashlib.sha256()
        for document in read_documents(paths, problems, limits or Limits()):
            digest.update(b"%d:%s%d:" % (len(document.label), document.label.encode(), len(document.data)))
            digest.update(document.data)
            try:
                record = osv_schema.decode(document.data)
                found = record.problems()
                compiled = None if found else builder.compile(record, document.label)
            except msgspec.DecodeError as err:  # names the field: "Expected `str`, got `int` - at `$.id`"
                problems.append(f"{document.label}: {err}")
                continue
            except ValueError as err:  # a time outside what UTC can hold
                problems.append(f"{document.label}: {err}")
                continue
            if compiled is None:
                problems.extend(f"{document.label}: {problem}" for problem in found)
                continue
            if compiled.modified > loaded + FUTURE_SKEW:  # a record from the future never makes old data fresh
                builder.warnings.append(f"{document.label}: $.modified {iso_z(compiled.modified)} is in the future; "
                                        "it does not count towards how current the data is")
            elif database.newest is None or compiled.modified > database.newest:
                database.newest = compiled.modified
            earlier = kept.get(record.id)
            if earlier is None or _supersedes(compiled, earlier):
                kept[record.id] = compiled
        if not kept and not problems:  # an empty directory, a zip without records: never "no vulnerabilities"
            problems.append(f"no OSV record in {', '.join(str(p) for p in paths)}")
        if problems:
            raise OsvError(problems)
        index: dict[str, list[_Entry]] = {}
        grades = known_grades((name, e.fact) for c in kept.values() for name, es in c.entries.items() for e in es)
        for record_id in sorted(kept):
            compiled = kept[record_id]
            database.withdrawn += compiled.withdrawn
            database.skipped += not compiled.withdrawn and not compiled.entries
            for name, entries in compiled.entries.items():
                index.setdefault(name, []).extend(
                    e if (fact := graded(name, e.fact, grades)) is e.fact else msgspec.structs.replace(e, fact=fact)
                    for e in entries
                )
        database._index = {name: _Project.build(entries) for name, entries in index.items()}
        database.records = len(kept)
        database.digest = digest.hexdigest()
        database.warnings = tuple(builder.warnings)
        return database

    def lookup(self, ecosystem: Ecosystem, name: str, version: str) -> tuple[Vulnerability, ...]:
        """The records that apply to `name` at `version`, one fact per record, sorted by id; `fixed` holds
        the `fixed` versions (as written, above `version`) of the ranges that matched."""
        if ecosystem is not Ecosystem.PYPI:
            return ()
        found = self._found.get((name, version))
        if found is MISSING:
            found = self._lookup(name, version)
            self._found.put((name, version), found)
        return found

    def _lookup(self, name: str, version: str) -> tuple[Vulnerability, ...]:
        project = self._index.get(canonicalize_name(name))
        if project is None:
            return ()
        parsed, key = parse_release(version)
        at = project.place(parsed) if parsed is not None else 0
        found: dict[str, tuple[Vulnerability, list[str]]] = {}
        for entry in project.entries:
            hit = key in entry.versions
            fixed: list[str] = []
            for span in entry.spans:
                if parsed is None:  # not PEP 440: gate cannot place it outside any range
                    hit = True
                    fixed.extend(text for _, text in span.fixed)
                elif span.contains(at):
                    hit = True
                    fixed.extend(text for bound, text in span.fixed if bound > at)
            if hit:
                _, all_fixed = found.setdefault(entry.fact.id, (entry.fact, []))
                all_fixed.extend(text for text in fixed if text not in all_fixed)
        return tuple(
            msgspec.structs.replace(fact, fixed=tuple(fixed)) if fixed else fact
            for _, (fact, fixed) in sorted(found.items())
        )


def _supersedes(new: _Compiled, old: _Compiled) -> bool:
    """Whether `new` replaces `old` for the same id: later `modified`; on a tie, a live copy over a
    withdrawn one (the reading that denies more)."""
    if new.modified != old.modified:
        return new.modified > old.modified
    return old.withdrawn and not new.withdrawn
