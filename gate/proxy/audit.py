"""The audit log: one JSON object per line for every decision the proxy acted on.

Each line has `time`, `client`, `event` (`page`: a file was listed or hidden on an index page,
`download`: a file was served or refused), `ecosystem`, `project`, `file`, `sha256`, `verdict`,
`served` and `rules` (each violated rule with its policy, message and whether it was enforced or waived).
Writes are single `write()` calls on a file opened for appending, so lines from several worker
processes do not interleave.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gate.decision import Decision
from gate.facts import iso_z

log = logging.getLogger(__name__)


def audit_record(
    decision: Decision, *, event: str, client: str | None, served: bool, now: dt.datetime
) -> dict[str, Any]:
    file = decision.facts.file
    return {
        "time": iso_z(now),
        "client": client,
        "event": event,
        "ecosystem": file.ecosystem.value,
        "project": file.name,
        "file": file.filename,
        "sha256": file.sha256,
        "verdict": decision.verdict.value,
        "served": served,
        "rules": [v.to_json() | {"enforced": v.denies} for v in decision.violations],
    }


class AuditLog:
    """Appends records to `path` (None: the `gate.audit` logger, at INFO)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fd: int | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)

    def write(self, records: Iterable[dict[str, Any]]) -> None:
        lines = "".join(json.dumps(r, separators=(",", ":"), sort_keys=True) + "\n" for r in records)
        if not lines:
            return
        if self._fd is None:
            for line in lines.splitlines():
                logging.getLogger("gate.audit").info("%s", line)
            return
        with self._lock:
            try:
                os.write(self._fd, lines.encode())
            except OSError as err:
                log.error("cannot write the audit log %s: %s", self.path, err)
