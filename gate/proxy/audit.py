"""The audit log: one JSON object per line for every decision the proxy acted on.

Each line has `time`, `client`, `event` (`page`: a file was listed or hidden on an index page,
`download`: a file was served or refused), `ecosystem`, `project`, `file`, `sha256`, `verdict`,
`served` and `rules` (each violated rule with its policy, message and whether it was enforced or waived).
Writes are single `write()` calls on a file opened for appending, so lines from several worker
processes do not interleave.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

from gate.decision import Decision
from gate.facts import iso_z
from gate.proxy.metrics import Metrics

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


_ENCODER = msgspec.json.Encoder(order="sorted")


class AuditLog:
    """Appends records to `path` (None: the `gate.audit` logger, at INFO).

    A write that fails (disk full, I/O error) loses its records: they are counted in `failures` and in
    the metric `gate_audit_failures_total`, `failing` stays true until a write succeeds again (health
    reports it), and `written()` tells the calling thread whether its last write went through, so that
    compliance mode (`Settings.audit_required`) can refuse to serve what it could not record."""

    def __init__(self, path: Path | None, metrics: Metrics | None = None) -> None:
        self.path = path
        self.metrics = metrics
        self.failures = 0  # records lost, in this process
        self.failing = False
        self.error: str | None = None  # the last write error
        self._lock = threading.Lock()
        self._local = threading.local()
        self._fd: int | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def written(self) -> bool:
        """Whether the calling thread's last `write` recorded everything it was given."""
        return bool(getattr(self._local, "ok", True))

    def write(self, records: Iterable[dict[str, Any]]) -> None:
        """One compact JSON object per line, keys sorted (msgspec: a cold page of denied files audits
        thousands); JSON escapes every control character, so a value never breaks a line."""
        lines = [_ENCODER.encode(r) for r in records]
        self._local.ok = True
        if not lines:
            return
        if self._fd is None:
            for line in lines:
                logging.getLogger("gate.audit").info("%s", line.decode())
            return
        data = b"\n".join(lines) + b"\n"
        with self._lock:
            try:
                if os.write(self._fd, data) != len(data):
                    raise OSError(f"short write to {self.path}")
            except OSError as err:
                self._lost(len(lines), err)
            else:
                self.failing = False

    def _lost(self, count: int, err: OSError) -> None:
        self._local.ok = False
        self.failures += count
        self.failing = True
        self.error = str(err)
        log.error("cannot write the audit log %s: %s (%d record(s) lost)", self.path, err, count)
        if self.metrics is not None:
            self.metrics.inc("gate_audit_failures_total", float(count))
