"""The per-record outcomes of a subdir's upstream `RepodataIndex` under one view, judged record by record.

A build judges records in batches (decoded one batch at a time, then dropped: memory stays near the size of
the upstream body) and keeps, per record, whether it is served, when its decision may change, whether its
upstream bytes are already the bytes served, and how many bytes it takes (`Judged`); the body is then
written from those (`gate.proxy.conda_body`). A rebuild of the same upstream body under the same view
(policies, trust root, OSV data, audit mode) re-judges only the records whose decision may have changed by
now (a `minimumAge` reached, an exception expired, a sidecar to fetch again): the others' decisions still
hold, by the evaluator's `valid_until`. A record that cannot be judged (not decodable, listed twice with
different records, no sha256...) is denied, so never served. Decisions are audited when they are made.
"""

from __future__ import annotations

import datetime as dt
import gc
import math
import threading
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from typing import Any, NamedTuple

import msgspec

from gate.decision import Decision
from gate.evaluate import Judgement
from gate.sources.conda_channel import compress_zst, decompress_zst
from gate.sources.conda_index import (
    ENCODE,
    PASSTHROUGH_KEYS,
    RawRecord,
    RepodataIndex,
    key_counts,
)

BATCH = 2048  # records decoded and judged at once
NEVER = math.inf  # a decision that does not change with time

Record = RawRecord | dict[str, Any]


class Shared(NamedTuple):
    """A record allowed without any violation by a judgement it shares with other records
    (`gate.proxy.conda_shared`): it has no decision of its own. `until`: when that may change (a Unix time;
    NEVER)."""

    until: float


# (records as (filename, record), conflicts: filename -> why it cannot be judged) -> one outcome each
JudgeBatch = Callable[[list[tuple[str, Record]], Mapping[str, str]], list[Judgement | Shared]]
Visible = Callable[[Decision], bool]
Audit = Callable[[list[Decision], int], None]  # the decisions made, and how many records were `Shared`


@dataclass
class Judged:
    """Per record of one upstream index (by number), under one view: served or not, until when that holds
    (a Unix time; `NEVER`), whether its upstream bytes are served as they are (`canonical`; else it is served
    re-encoded from its decoded value), and its bytes in the served body (`"filename":record`; 0 when not
    served)."""

    served: bytearray
    until: array[float]
    canonical: bytearray
    lengths: array[int]

    @classmethod
    def empty(cls, count: int) -> Judged:
        return cls(bytearray(count), array("d", [-NEVER]) * count, bytearray(count), array("Q", [0]) * count)

    def dump(self) -> bytes:
        """The outcomes as bytes (`load` reads them back), for other workers."""
        return compress_zst(
            bytes(self.served) + bytes(self.canonical) + self.until.tobytes() + self.lengths.tobytes(), level=1)

    @classmethod
    def load(cls, data: bytes, count: int) -> Judged | None:
        """The outcomes of `count` records `dump` wrote (None: not those, or not readable)."""
        try:
            raw = decompress_zst(data, 18 * count)
        except ValueError:
            return None
        if len(raw) != 18 * count:
            return None
        until, lengths = array("d"), array("Q")
        until.frombytes(raw[2 * count : 10 * count])
        lengths.frombytes(raw[10 * count :])
        return cls(bytearray(raw[:count]), until, bytearray(raw[count : 2 * count]), lengths)

    def expires(self) -> float:
        """The earliest moment a decision may change (NEVER: none will with time alone)."""
        return min(self.until, default=NEVER)


_gc_lock = threading.Lock()
_gc_builds = 0
_gc_was = False  # whether GC was on when the first of the running builds began


@contextmanager
def _no_gc() -> Iterator[None]:
    """Cyclic GC off while any build runs (a build makes millions of short-lived, acyclic objects; full
    collections would walk them again and again); on again when the last one ends, however it ends and
    whichever build began first, if it was on before the first began."""
    global _gc_builds, _gc_was  # noqa: PLW0603 (one count per process, guarded by its lock)
    with _gc_lock:
        if _gc_builds == 0:
            _gc_was = gc.isenabled()
            gc.disable()
        _gc_builds += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_builds -= 1
            if _gc_builds == 0 and _gc_was:
                gc.enable()


def judge_index(
    index: RepodataIndex, previous: Judged | None, now: dt.datetime, *, judge: JudgeBatch, visible: Visible,
    audit: Audit,
) -> tuple[Judged, int]:
    """The outcome of every record of `index` at `now`, and how many were judged now: every record judged
    (`judge`, in batches; each batch's decisions given to `audit`), or, with `previous` (this index's outcomes
    under the same view), only the records whose decision may have changed by `now`."""
    with _no_gc():
        judged = Judged.empty(len(index)) if previous is None else _copy(previous)
        for number in index.shadowed:  # never served: the earlier section's copy stands for it
            judged.served[number], judged.until[number], judged.lengths[number] = 0, NEVER, 0
        moment = now.timestamp()
        # a full build of a plain body takes every record as passthrough, counting the keys that proves it
        keys = [0] * len(PASSTHROUGH_KEYS) if previous is None and index.plain() is not None else None
        if previous is None:  # every record but the shadowed ones
            shadowed = index.shadowed
            slots = index.every_slot()
            stale = (s for s in slots if s[0] not in shadowed) if shadowed else slots
        else:
            stale = ((n, s.filename, s.raw) for n, s in index.slots_at(
                n for n, until in enumerate(judged.until) if until <= moment))
        rejudged = 0
        for batch in _batches(stale):
            rejudged += len(batch)
            _judge_batch(index, batch, judged, judge=judge, visible=visible, audit=audit, keys=keys)
        if keys is not None and tuple(keys) != index.plain():
            _reencode(index, judged)  # not proved: each served record is checked on its own
        return judged, rejudged


def _copy(judged: Judged) -> Judged:
    return Judged(bytearray(judged.served), array("d", judged.until), bytearray(judged.canonical),
                  array("Q", judged.lengths))


Numbered = tuple[int, str, msgspec.Raw]  # a record's number, filename and raw JSON


def _batches(slots: Iterator[Numbered]) -> Iterator[list[Numbered]]:
    """`slots`, BATCH at a time."""
    while batch := list(islice(slots, BATCH)):
        yield batch


def _judge_batch(
    index: RepodataIndex, batch: Sequence[Numbered], judged: Judged, *, judge: JudgeBatch, visible: Visible,
    audit: Audit, keys: list[int] | None,
) -> None:
    """Judge the records of `batch` and note each one's outcome in `judged`. A record whose bytes may be
    served as they are (`RawRecord.passthrough`; with `keys`, taken to be, each key of PASSTHROUGH_KEYS its
    view has counted there for `RepodataIndex.plain` to prove it) is judged from the fields facts read; any
    other is decoded whole, judged, and served re-encoded from that decoded value."""
    problems: dict[str, str] = {}
    every = RawRecord.every([raw for _, _, raw in batch])
    if every is not None and keys is not None:  # every record read at once, taken as passthrough
        for i, counted in enumerate(key_counts(every)):
            keys[i] += counted
        records: list[tuple[str, Record]] = [(slot[1], found) for slot, found in zip(batch, every, strict=True)]
        numbers = [number for number, _, _ in batch]
    else:
        records, numbers = [], []
        for i, (number, filename, raw) in enumerate(batch):
            try:
                found = RawRecord.of(raw) if every is None else every[i]
                if found is not None and keys is not None:
                    for k, counted in enumerate(key_counts([found])):
                        keys[k] += counted
                    record: Record | None = found
                else:
                    record = found if found is None or found.passthrough else found.full()
            except ValueError as err:
                record, problems[filename] = {}, f"its repodata record cannot be read: {err}"
            if record is None:  # not a map: no record, never served
                judged.served[number], judged.until[number], judged.lengths[number] = 0, NEVER, 0
                continue
            records.append((filename, record))
            numbers.append(number)
    outcomes = judge(records, {**index.conflicts, **problems} if problems else index.conflicts)
    decisions = [o.decision for o in outcomes if not isinstance(o, Shared)]
    audit(decisions, len(outcomes) - len(decisions))
    served, until_at, canonical, lengths = judged.served, judged.until, judged.canonical, judged.lengths
    for number, (filename, record), outcome in zip(numbers, records, outcomes, strict=True):
        if isinstance(outcome, Shared):
            until_at[number] = outcome.until
        else:
            decision, until = outcome
            until_at[number] = NEVER if until is None else until.timestamp()
            if not visible(decision):
                served[number], lengths[number] = 0, 0
                continue
        if isinstance(record, RawRecord):
            served[number], canonical[number] = 1, 1
            lengths[number] = len(ENCODE(filename)) + 1 + len(record.data)
        else:
            served[number], canonical[number] = 1, 0
            lengths[number] = len(ENCODE(filename)) + 1 + len(ENCODE(record))


def _reencode(index: RepodataIndex, judged: Judged) -> None:
    """Every served record taken as passthrough that is not (`RawRecord.passthrough`) is marked to be served
    re-encoded from its decoded value, with that length."""
    served, canonical = judged.served, judged.canonical
    numbers = (n for n in range(len(served)) if served[n] and canonical[n])
    for number, slot in index.slots_at(numbers):
        record = RawRecord(slot.raw, {})
        if not record.passthrough:
            judged.canonical[number] = 0
            judged.lengths[number] = len(ENCODE(slot.filename)) + 1 + len(ENCODE(record.full()))
