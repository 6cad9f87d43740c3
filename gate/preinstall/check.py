"""Check what an installer is about to install: planned files → facts from their index → decisions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gate.decision import Decision
from gate.evaluate import Evaluator, Unmatched, unidentified
from gate.facts import Unidentified
from gate.policy.compile import CompiledPolicy
from gate.preinstall.gather import Gathered, IndexGatherer
from gate.preinstall.identities import with_lock_identities
from gate.sources.planned import PlannedFile

Progress = Callable[[str], None]  # called with each file's name once it is checked


@dataclass(frozen=True)
class Checked:
    planned: PlannedFile
    decision: Decision
    notes: tuple[str, ...] = ()


def check_planned(
    planned: Sequence[PlannedFile],
    policies: Sequence[CompiledPolicy],
    gatherer: IndexGatherer,
    now: dt.datetime,
    progress: Progress | None = None,
    *,
    unmatched: Unmatched = Unmatched.DENY,
) -> list[Checked]:
    """Decide every planned file; `progress(filename)` is called after each one."""
    out = []
    evaluator = Evaluator(policies, unmatched=unmatched)
    for file in planned:
        out.append(_check(file, gatherer.gather(file), evaluator, policies, now))
        if progress is not None:
            progress(file.filename)
    return out


def _check(
    file: PlannedFile, gathered: Gathered, evaluator: Evaluator, policies: Sequence[CompiledPolicy], now: dt.datetime
) -> Checked:
    if isinstance(gathered.facts, Unidentified):
        return Checked(file, unidentified(gathered.facts), gathered.notes)
    decision = evaluator.judge(gathered.facts, now).decision
    return Checked(file, with_lock_identities(decision, file.identities, policies, now), gathered.notes)
