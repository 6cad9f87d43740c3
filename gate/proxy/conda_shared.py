"""Records of one repodata build that share a judgement, so that most records are not judged one by one.

The evaluator says, per package name, what its judgement of a file without evidence depends on
(`Evaluator.sharing`): file fields, and the upload time only through minimum ages. When those fields are the
same for every record of a name in one build (the name, the channel, the kind...: `SAME`), two records of
that name whose upload times are both unknown, or both old enough for every minimum age, get the same outcome
from every rule. So the first record of such a class is judged as any record is (`CondaChannels.judge_all`);
when it is allowed without any violation, every other record of its class is too, for as long (`Shared`),
without facts or a decision of its own. Any other record (a class whose first record has a violation, a
record younger than an age, a record of an unusual shape: `common_record`, a filename listed twice) is judged
on its own, and its decision audited.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence

from gate.evaluate import Judgement, Sharing
from gate.facts import Ecosystem
from gate.gather.conda import listed_time
from gate.proxy.conda_repodata import NEVER, Record, Records, Shared

# The file fields every record of one name that `common_record` reads has alike in one build: its ecosystem,
# kind and index (the channel), not yanked, no signed time (no evidence: no rule of the name reads any).
SAME = frozenset({"name", "ecosystem", "kind", "index", "yanked", "signedTime", "signedFrom"})

Key = tuple[str, str]  # (name, "any" | "unknown" | "old"): the upload time as the name's rules read it
JudgeAll = Callable[[list[tuple[str, Record]], Mapping[str, str]], list[Judgement]]


class SharedJudgements:
    """The classes of one build (one channel, one `now`) and the outcome each one's first record had."""

    def __init__(self, sharing: Callable[[Ecosystem, str], Sharing | None], now: dt.datetime) -> None:
        self._sharing = sharing
        self.now = now
        self._names: dict[str, tuple[bool, dt.datetime | None, float] | None] = {}  # see `_upload`
        self.outcomes: dict[Key, Shared | None] = {}  # None: its first record was not allowed without violation

    def _upload(self, name: str) -> tuple[bool, dt.datetime | None, float] | None:
        """For records of `name`: None when they do not share judgements; else whether their rules read the
        upload time, the latest one that is old enough for every age (None: none is), and that moment in
        seconds since the epoch."""
        if name not in self._names:
            sharing = self._sharing(Ecosystem.CONDA, name)
            if sharing is None or not sharing.fields <= SAME:
                self._names[name] = None
            elif not sharing.ages:
                self._names[name] = (False, None, -math.inf)
            else:
                try:
                    cut = self.now - max(sharing.ages)
                except OverflowError:  # an age longer than the calendar: no upload time is old enough
                    self._names[name] = (True, None, -math.inf)
                else:
                    self._names[name] = (True, cut, cut.timestamp())
        return self._names[name]

    def keys(self, filenames: Sequence[str], names: Sequence[str | None], seconds: Sequence[int | float | None],
             conflicts: Mapping[str, str]) -> list[Key | None]:
        """The class of each record, from its filename and what `examine` read of it (`common_record`'s name
        and upload time; a None name: the record is of another shape): None when it is judged on its own, as is
        a filename in `conflicts`."""
        names_how, upload = self._names, self._upload
        out: list[Key | None] = []
        add = out.append
        for filename, name, uploaded in zip(filenames, names, seconds, strict=True):
            if name is None or filename in conflicts:
                add(None)
                continue
            how = names_how[name] if name in names_how else upload(name)
            if how is None:
                add(None)
            elif not how[0]:
                add((name, "any"))
            elif uploaded is None:
                add((name, "unknown"))
            else:
                # old enough for every age: now - uploaded >= max(ages), i.e. uploaded <= cut; near that moment
                # decided by the times themselves, further from it by their float values (microseconds off at most)
                cut, about = how[1], how[2]
                old = cut is not None and (
                    uploaded < about - 1 or (uploaded <= about + 1 and listed_time(uploaded) <= cut))
                add((name, "old") if old else None)
        return out

    def judge(self, records: Records, conflicts: Mapping[str, str], judge_all: JudgeAll) -> list[Judgement | Shared]:
        """One outcome per record, in order: `Shared` for a record whose class's first record was allowed
        without any violation, else its own judgement by `judge_all`."""
        keys = self.keys(records.filenames, records.names, records.seconds, conflicts)
        outcomes = self.outcomes
        out: list[Judgement | Shared | None] = [None] * len(keys)
        first: set[Key] = set()
        first_round: list[int] = []  # each class's first record, and those of no class
        later: list[int] = []  # waiting for their class's first record

        def judge(numbers: list[int]) -> None:
            """Judge `numbers` on their own; each class's first record gives its class's outcome."""
            if not numbers:
                return
            for i, judgement in zip(numbers, judge_all(records.take(numbers), conflicts), strict=True):
                out[i] = judgement
                key = keys[i]
                if key is not None and key not in outcomes:
                    decision, until = judgement
                    clean = not decision.violations
                    outcomes[key] = Shared(NEVER if until is None else until.timestamp()) if clean else None

        for i, key in enumerate(keys):
            if key is None:
                first_round.append(i)
            elif key in outcomes:
                found = outcomes[key]
                if found is None:
                    first_round.append(i)
                else:
                    out[i] = found
            elif key in first:
                later.append(i)
            else:
                first.add(key)
                first_round.append(i)
        judge(first_round)
        alone = []
        for i in later:
            found = outcomes[keys[i]]  # type: ignore[index]  # a class's first record was judged: its key is set
            if found is None:
                alone.append(i)
            else:
                out[i] = found
        judge(alone)
        return out  # type: ignore[return-value]  # every place is filled
