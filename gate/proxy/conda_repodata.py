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
import os
import threading
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from itertools import islice
from typing import Any, NamedTuple, cast

from gate.decision import Decision
from gate.evaluate import Judgement
from gate.proxy.conda_examine import (
    HELPER_BATCHES,
    NOT_RECORD,
    OWN_BYTES,
    UNREADABLE,
    Examined,
    Helper,
    Numbered,
    examine,
)
from gate.sources.conda_channel import compress_zst, decompress_zst
from gate.sources.conda_index import ENCODE, RawRecord, RepodataIndex, decode

BATCH = 2048  # records decoded and judged at once
NEVER = math.inf  # a decision that does not change with time

Record = RawRecord | dict[str, Any]


class Shared(NamedTuple):
    """A record allowed without any violation by a judgement it shares with other records
    (`gate.proxy.conda_shared`): it has no decision of its own. `until`: when that may change (a Unix time;
    NEVER)."""

    until: float


class Records(NamedTuple):
    """The records of a batch to judge, in order: their filenames, what `SharedJudgements` reads of each
    (`Examined.names` and `.seconds`), and `take(places)`: the records at those places, decoded, each as
    (filename, record)."""

    filenames: list[str]
    names: list[str | None]
    seconds: list[int | float | None]
    take: Callable[[list[int]], list[tuple[str, Record]]]


# (the records, conflicts: filename -> why it cannot be judged) -> one outcome each
JudgeBatch = Callable[[Records, Mapping[str, str]], list[Judgement | Shared]]
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

    def verbatim(self, start: int = 0, stop: int | None = None) -> bytes:
        """Per record from `start` to `stop`: 1 when it is served as its own upstream bytes, else 0."""
        served, canonical = self.served[start:stop], self.canonical[start:stop]
        return (int.from_bytes(served, "big") & int.from_bytes(canonical, "big")).to_bytes(len(served), "big")


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
    under the same view), only the records whose decision may have changed by `now`. A full build of a large
    index is examined with a helper process (`gate.proxy.conda_examine`)."""
    with _no_gc():
        judged = Judged.empty(len(index)) if previous is None else _copy(previous)
        for number in index.shadowed:  # never served: the earlier section's copy stands for it
            judged.served[number], judged.until[number], judged.lengths[number] = 0, NEVER, 0
        moment = now.timestamp()
        helper = None
        if previous is None:  # every record but the shadowed ones

            def batches() -> Iterator[list[Numbered]]:
                shadowed, slots = index.shadowed, index.every_slot()
                return _batches((s for s in slots if s[0] not in shadowed) if shadowed else slots)

            if len(index) >= HELPER_BATCHES * BATCH and _cores() > 1:
                helper = Helper(batches)
        else:

            def batches() -> Iterator[list[Numbered]]:
                return _batches((n, s.filename, s.raw) for n, s in index.slots_at(
                    n for n, until in enumerate(judged.until) if until <= moment))

        rejudged = 0
        with helper or nullcontext():
            for k, batch in enumerate(batches()):
                rejudged += len(batch)
                examined = None if helper is None else helper.take(k, len(batch))
                if examined is None:
                    examined = examine([filename for _, filename, _ in batch], [raw for _, _, raw in batch])
                _judge_batch(index, batch, examined, judged, judge=judge, visible=visible, audit=audit)
        return judged, rejudged


def _cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _copy(judged: Judged) -> Judged:
    return Judged(bytearray(judged.served), array("d", judged.until), bytearray(judged.canonical),
                  array("Q", judged.lengths))


def _batches(slots: Iterator[Numbered]) -> Iterator[list[Numbered]]:
    """`slots`, BATCH at a time."""
    while batch := list(islice(slots, BATCH)):
        yield batch


def _judge_batch(
    index: RepodataIndex, batch: Sequence[Numbered], examined: Examined, judged: Judged, *, judge: JudgeBatch,
    visible: Visible, audit: Audit,
) -> None:
    """Judge the records of `batch` (`examined`: what `examine` says of them) and note each one's outcome in
    `judged`. A record is decoded here only when it is judged on its own: one whose bytes are served as they
    are (OWN_BYTES) is judged as a `RawRecord`; any other is judged from its decoded value and served
    re-encoded from it; a value that is no record is neither judged nor served, and one that cannot be read is
    judged (so denied) with the reason."""
    kinds = examined.kinds
    served, until_at, canonical, lengths = judged.served, judged.until, judged.canonical, judged.lengths
    places = []  # the place in `batch` of each record judged
    for i, kind in enumerate(kinds):
        if kind == NOT_RECORD:
            number = batch[i][0]
            served[number], until_at[number], lengths[number] = 0, NEVER, 0
        else:
            places.append(i)

    decoded: dict[int, dict[str, Any]] = {}  # a record served re-encoded: decoded once, judged and measured

    def record(i: int) -> Record:
        kind, raw = kinds[i], batch[i][2]
        if kind == OWN_BYTES:
            return RawRecord(raw, decode(raw))
        if kind == UNREADABLE:
            return {}
        if i not in decoded:
            decoded[i] = cast(dict[str, Any], decode(raw))
        return decoded[i]

    def take(positions: list[int]) -> list[tuple[str, Record]]:
        return [(batch[places[p]][1], record(places[p])) for p in positions]

    conflicts = index.conflicts
    if examined.problems:
        conflicts = {**conflicts, **{batch[i][1]: why for i, why in examined.problems.items()}}
    names, seconds = examined.names, examined.seconds
    outcomes = judge(Records([batch[i][1] for i in places], [names[i] for i in places],
                             [seconds[i] for i in places], take), conflicts)
    decisions = [o.decision for o in outcomes if not isinstance(o, Shared)]
    audit(decisions, len(outcomes) - len(decisions))
    for i, outcome in zip(places, outcomes, strict=True):
        number, filename, raw = batch[i]
        if isinstance(outcome, Shared):
            until_at[number] = outcome.until
        else:
            decision, until = outcome
            until_at[number] = NEVER if until is None else until.timestamp()
            if not visible(decision):
                served[number], lengths[number] = 0, 0
                continue
        if kinds[i] == OWN_BYTES:
            served[number], canonical[number] = 1, 1
            lengths[number] = len(ENCODE(filename)) + 1 + len(raw)
        else:
            served[number], canonical[number] = 1, 0
            lengths[number] = len(ENCODE(filename)) + 1 + len(ENCODE(record(i)))
