"""Check what an installer is about to install: planned files → facts from their index → decisions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gate.decision import Decision
from gate.evaluate import Evaluator, Unmatched, unidentified
from gate.facts import Unidentified
from gate.policy.compile import CompiledPolicy
from gate.preinstall.gather import IndexGatherer
from gate.preinstall.identities import with_lock_identities
from gate.sources.planned import PlannedFile

Progress = Callable[[int, int, PlannedFile], None]


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
    """Decide every planned file; `progress(i, total, file)` is called before each one."""
    out = []
    evaluator = Evaluator(policies, unmatched=unmatched)
    for i, file in enumerate(planned, 1):
        if progress is not None:
            progress(i, len(planned), file)
        gathered = gatherer.gather(file)
        if isinstance(gathered.facts, Unidentified):
            out.append(Checked(file, unidentified(gathered.facts), gathered.notes))
            continue
        decision = evaluator.judge(gathered.facts, now).decision
        decision = with_lock_identities(decision, file.identities, policies, now)
        out.append(Checked(file, decision, gathered.notes))
    return out
