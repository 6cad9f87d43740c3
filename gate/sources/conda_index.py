"""Upstream repodata as the proxy reads it: indexed, not decoded whole, its records decoded a batch at a time.

A conda-forge subdir is a few hundred MB of JSON with a quarter of a million records; decoded whole into
Python dicts it takes a gigabyte. `RepodataIndex` decodes the body with msgspec only down to each record's
raw JSON bytes (a `msgspec.Raw`: a view into the body), so a record is decoded when it is judged and then
dropped. Its semantics are those of `json.loads` + the straightforward filter it replaced (kept as the tests'
reference, tests/support/conda_reference.py): a key given twice is the
last one given (at the first one's place), a record that is not an object is no record, a filename listed
in both sections is one record (differing records are a conflict, which is denied:
`conda_channel.duplicate_problem`), and unknown top-level maps of maps are dropped.

The filtered repodata is written from it (`gate.proxy.conda_body`): the top-level values in upstream order
(each re-encoded from its decoded value, `RepodataIndex.head`; `info` without `base_url`), and of each section
only the records kept, each written as msgspec encodes its decoded value, which is the record's own bytes when
those are already canonical: clients read exactly the record gate judged, never bytes it did not parse (a key
given twice inside a record reaches no client). Pure: no I/O.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterator, Sequence
from itertools import count, islice
from typing import Any, NamedTuple

import msgspec

from gate.sources.conda_channel import KNOWN_KEYS, SECTIONS, duplicate_problem

_RAWS = msgspec.json.Decoder(dict[str, msgspec.Raw])
_ANY = msgspec.json.Decoder()
ENCODE = msgspec.json.Encoder().encode
DEEP = "repodata nests too deep"


def _is_object(raw: msgspec.Raw) -> bool:
    return bytes(memoryview(raw)[:1]) == b"{"


def decode(raw: msgspec.Raw | bytes) -> Any:
    """The value of `raw`; ValueError when it cannot be decoded (invalid UTF-8, a number out of range)."""
    try:
        return _ANY.decode(raw)
    except msgspec.DecodeError as err:
        raise ValueError(str(err)) from err
    except RecursionError:  # msgspec's depth guard: hostile nesting is an error like any malformed JSON
        raise ValueError(DEEP) from None


class KnownRecord(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A record that names only fields conda's repodata records have, decoded whole (every value as `decode`
    reads it; a key given twice is the last one, as in a dict), in less time and memory than a dict. A record
    naming any other field is not one (it is decoded as a dict): no byte of a record is skipped unchecked.
    `name`, `version` and `build` are UNSET when the record does not name them; any other field it does not
    name is None, as a dict's `get` gives it. (No cycle can run through decoded JSON: not tracked by GC.)"""

    name: Any = msgspec.UNSET
    version: Any = msgspec.UNSET
    build: Any = msgspec.UNSET
    sha256: Any = None
    size: Any = None
    timestamp: Any = None
    indexed_timestamp: Any = None
    build_number: Any = None
    depends: Any = None
    constrains: Any = None
    md5: Any = None
    subdir: Any = None
    license: Any = None
    license_family: Any = None
    noarch: Any = None
    arch: Any = None
    platform: Any = None
    features: Any = None
    track_features: Any = None
    legacy_bz2_md5: Any = None
    legacy_bz2_size: Any = None
    python_site_packages_path: Any = None
    attestations_sha256: Any = None
    preferred_env: Any = None
    date: Any = None
    fn: Any = None
    url: Any = None


_KNOWN = msgspec.json.Decoder(list[KnownRecord])


class RawRecord:
    """A record as judged from its raw JSON (`data`: its bytes, or a view of them in the upstream body): `view`
    is its decoded value (a dict, or a `KnownRecord`), `mapping` that value as a dict (facts are made of some
    of its fields), `full()` decodes it again (a copy, for evidence), `passthrough` says whether its own bytes
    may be served as they are."""

    __slots__ = ("data", "view")

    def __init__(self, data: bytes | msgspec.Raw, view: dict[str, Any] | KnownRecord) -> None:
        self.data, self.view = data, view

    @property
    def mapping(self) -> dict[str, Any]:
        return self.view if isinstance(self.view, dict) else self.full()

    @classmethod
    def of(cls, raw: msgspec.Raw) -> RawRecord | None:
        """The record of `raw` (None: not a JSON object); ValueError when it cannot be decoded. Decoded whole:
        a decoder of only the fields facts read skips the others unchecked, and took a record holding a number
        no JSON decoder reads (`1e999`) as one whose bytes may be served as they are."""
        view = decode(raw)
        return cls(raw, view) if isinstance(view, dict) else None

    @classmethod
    def every(cls, raws: Sequence[msgspec.Raw]) -> list[RawRecord] | None:
        """The record of each of `raws`, as `of` gives them (each decoded whole), decoded at once: every one a
        `KnownRecord` when each is, else every one a dict; None when one of them is not a JSON object or
        cannot be decoded (`of` then says which, one by one)."""
        joined = b"[" + b",".join(raws) + b"]"
        try:
            known: list[KnownRecord] = _KNOWN.decode(joined)
        except msgspec.ValidationError:  # a field of another name, or not an object: read as dicts
            pass
        except (msgspec.DecodeError, RecursionError):  # not decodable as any value either
            return None
        else:
            return [cls(raw, view) for raw, view in zip(raws, known, strict=True)]
        try:
            views = decode(joined)
        except ValueError:
            return None
        if not all(isinstance(view, dict) for view in views):
            return None
        return [cls(raw, view) for raw, view in zip(raws, views, strict=True)]

    def full(self) -> dict[str, Any]:
        value: dict[str, Any] = decode(self.data)
        return value

    @property
    def passthrough(self) -> bool:
        """Whether the bytes may be served as they are: clients then read the name, version and build gate
        judged. They do when the record is ASCII without escapes (every key is written as it reads) and names
        each of those keys at most once: a key given twice is the last one to gate (as to Python's json) but
        the first one to some parsers. Any other record is served re-encoded from its decoded value.
        (`own_bytes` answers this for a batch of records at once, by counting keys.)"""
        data = bytes(self.data)
        return (data.isascii() and b"\\" not in data and data.count(b'"name"') <= 1
                and data.count(b'"version"') <= 1 and data.count(b'"build"') <= 1)


PASSTHROUGH_KEYS = (b'"name"', b'"version"', b'"build"')  # the keys `RawRecord.passthrough` counts


def own_bytes(records: Sequence[RawRecord]) -> list[bool]:
    """`passthrough` of each of `records`: proved for all at once when their bytes are ASCII without a
    backslash and each key of PASSTHROUGH_KEYS occurs in them exactly as often as records name it (every
    record naming a key writes it at least once, so then each names it at most once), else record by record."""
    joined = b",".join([record.data for record in records])  # `"name"` cannot span `},{`
    if (joined.isascii() and joined.find(b"\\") < 0
            and tuple(joined.count(key) for key in PASSTHROUGH_KEYS) == key_counts(records)):
        return [True] * len(records)
    return [record.passthrough for record in records]


def key_counts(records: Sequence[RawRecord]) -> tuple[int, int, int]:
    """How many of `records` name each of PASSTHROUGH_KEYS (`own_bytes` counts them in their bytes)."""
    views = [record.view for record in records]
    known = [view for view in views if isinstance(view, KnownRecord)]
    unset = msgspec.UNSET
    dicts = [view for view in views if isinstance(view, dict)]
    return (len([v for v in known if v.name is not unset]) + len([v for v in dicts if "name" in v]),
            len([v for v in known if v.version is not unset]) + len([v for v in dicts if "version" in v]),
            len([v for v in known if v.build is not unset]) + len([v for v in dicts if "build" in v]))


class Slot(NamedTuple):
    """One record of the index: its section, filename and raw JSON."""

    section: str
    filename: str
    raw: msgspec.Raw


class RepodataIndex:
    """An upstream repodata body (decoded JSON bytes), its top-level values raw, its records raw.

    Records are numbered `0..len-1` over the sections in SECTIONS order (`slots_at`); `shadowed` are the
    numbers of records not to judge nor serve (a later section's copy of a filename an earlier section
    lists), `conflicts` the filenames listed with differing records, with the reason (they are denied).
    """

    __slots__ = (
        "_info", "_layout", "_offsets", "body", "conflicts", "head", "sections", "shadowed", "top",
    )

    def __init__(self, body: bytes) -> None:
        """Raise ValueError for a body that is not a JSON object (an empty body is `{}`)."""
        self.body = body
        try:
            self.top: dict[str, msgspec.Raw] = {} if not body or body.isspace() else _RAWS.decode(body)
            self.sections = {
                section: _RAWS.decode(raw) for section in SECTIONS
                if (raw := self.top.get(section)) is not None and _is_object(raw)
            }
        except msgspec.ValidationError:
            raise ValueError("repodata is not a JSON object") from None
        except msgspec.DecodeError as err:
            raise ValueError(f"repodata is not valid JSON: {err}") from None
        except RecursionError:  # msgspec's depth guard (skipping a value recurses too)
            raise ValueError(DEEP) from None
        offsets, total = {}, 0
        for section in SECTIONS:
            offsets[section] = total
            total += len(self.sections.get(section, ()))
        self._offsets = offsets
        self._info: tuple[Any] | None = None
        self._layout: tuple[dict[str, array[int]] | None] | None = None
        self.shadowed: set[int] = set()
        self.conflicts: dict[str, str] = {}
        self._duplicates()
        self.head = self._head()

    def __len__(self) -> int:
        return sum(len(records) for records in self.sections.values())

    def _duplicates(self) -> None:
        """One record per filename over the sections: a filename's first record (a map) stands for it; a later copy
        is shadowed, and makes the filename a conflict when the records differ. Linear: a channel may list
        every filename in both sections."""
        first, *later = SECTIONS
        earlier = self.sections.get(first, {})
        for section in later:
            records = self.sections.get(section, {})
            both = earlier.keys() & records.keys()
            at = self._offsets[section]
            numbers = {filename: at + i for i, filename in enumerate(records) if filename in both}
            for filename in both:
                pair = (earlier[filename], records[filename])
                if not (_is_object(pair[0]) and _is_object(pair[1])):
                    continue  # one of them is no record: the other is the only one
                self.shadowed.add(numbers[filename])
                # a record that cannot be decoded is a record (json.loads reads `1e999` as infinity), and one
                # gate cannot compare with the other: they are taken to differ
                found = [_try_decode(raw) for raw in pair]
                problem = (duplicate_problem(found) if None not in found
                           else "the repodata lists this filename 2 times, a record of it unreadable")
                if problem is not None:
                    self.conflicts[filename] = problem

    def layout(self) -> dict[str, array[int]] | None:
        """Where each section's records are in the body, when it is written compactly, as msgspec writes it
        (None otherwise): per section, the offset of each record's key and, last, one past the section's
        closing brace; record `i` with its key is `body[starts[i]:starts[i + 1] - 1]`. Proved by length
        alone: whitespace, a key written with escapes or a key given twice (in a section or at the top level)
        all add bytes, so a body exactly as long as its parts written compactly is laid out as computed."""
        if self._layout is None:
            self._layout = (_layout(self.body, self.top, self.sections),)
        return self._layout[0]

    def every_slot(self) -> Iterator[tuple[int, str, msgspec.Raw]]:
        """Every record as (number, filename, raw JSON), in number order."""
        for section in SECTIONS:
            records = self.sections.get(section)
            if records:
                yield from zip(count(self._offsets[section]), records, records.values())

    def slots_at(self, numbers: Iterator[int]) -> Iterator[tuple[int, Slot]]:
        """The records `numbers` (increasing; past the last record, they end), each with its number; skipping
        those between costs little."""
        at, section_end = -1, -1
        items: Iterator[tuple[str, msgspec.Raw]] = iter(())
        sections = [s for s in SECTIONS if s in self.sections]
        section = ""
        for number in numbers:
            while number >= section_end:
                if not sections:
                    return
                section = sections.pop(0)
                items, at = iter(self.sections[section].items()), self._offsets[section] - 1
                section_end = self._offsets[section] + len(self.sections[section])
            filename, raw = next(islice(items, number - at - 1, None))
            at = number
            yield number, Slot(section, filename, raw)

    def offset(self, section: str) -> int:
        return self._offsets[section]

    @property
    def info(self) -> Any:
        """The decoded `info` (None when absent or not decodable)."""
        if self._info is None:
            raw = self.top.get("info")
            self._info = (_try_decode(raw) if raw is not None else None,)
        return self._info[0]

    def find(self, filename: str) -> list[dict[str, Any]]:
        """Every record (a map) listed under `filename`, as `find_records` gives them."""
        found = []
        for section in SECTIONS:
            raw = self.sections.get(section, {}).get(filename)
            record = _try_decode(raw) if raw is not None else None
            if isinstance(record, dict):
                found.append(record)
        return found

    def _head(self) -> list[tuple[str, bytes | None]]:
        """The top-level keys in upstream order, each with its value as served (None: a section, written
        record by record); unknown maps of maps are left out (they could be records gate does not judge),
        `info` loses `base_url` (clients download through gate). ValueError for a value that cannot be
        decoded."""
        out: list[tuple[str, bytes | None]] = []
        for key, raw in self.top.items():
            if key in self.sections:
                out.append((key, None))
                continue
            value = decode(raw)
            if key not in KNOWN_KEYS and isinstance(value, dict) and any(isinstance(v, dict) for v in value.values()):
                continue
            if key == "info" and isinstance(value, dict):
                value.pop("base_url", None)
            out.append((key, ENCODE(value)))
        return out


_SPACE = b" \t\r\n"
_LEADING = re.compile(rb"[ \t\r\n]*")


def _layout(
    body: bytes, top: dict[str, msgspec.Raw], sections: dict[str, dict[str, msgspec.Raw]]
) -> dict[str, array[int]] | None:
    """`RepodataIndex.layout`."""
    end = len(body)
    while end and body[end - 1] in _SPACE:
        end -= 1
    match = _LEADING.match(body)
    start = match.end() if match else 0
    values: dict[str, int] = {}
    at = start + 1  # past `{`
    for key, raw in top.items():
        at += len(ENCODE(key)) + 1
        values[key] = at
        at += len(raw) + 1  # the value and `,` (or the closing brace)
    if not top or at != end:
        return None
    out: dict[str, array[int]] = {}
    for section, records in sections.items():
        starts = array("Q", [0]) * (len(records) + 1)
        at = values[section] + 1  # past `{`
        for i, (filename, raw) in enumerate(records.items()):
            starts[i] = at
            at += len(ENCODE(filename)) + 1 + len(raw) + 1
        if at != values[section] + len(top[section]) - (0 if records else 1):
            return None
        starts[len(records)] = values[section] + len(top[section])
        out[section] = starts
    return out


def _try_decode(raw: msgspec.Raw) -> Any:
    """`decode`, None for a value that cannot be decoded."""
    try:
        return decode(raw)
    except ValueError:
        return None
