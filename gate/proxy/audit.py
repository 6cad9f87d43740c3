"""The audit trail: one JSON object for every decision the proxy acted on, to a sink (`--audit-log`/`--audit-url`).

Each record has `time`, `client`, `event` (`page`: a file was listed or hidden on an index page,
`download`: a file was served or refused), `ecosystem`, `project`, `file`, `sha256`, `verdict`,
`served` and `rules` (each violated rule with its policy, message and whether it was enforced or waived).

Sinks: a JSON-lines file (the default, `CACHE_DIR/audit.jsonl`: single `write()` calls on a file opened for
appending, so lines from several worker processes do not interleave); standard output (`--audit-url stdout`,
for a log shipper: one `write()` per line, atomic on a pipe up to PIPE_BUF, 4 KiB, per line); the `gate.audit`
logger (no cache directory); or the PostgreSQL table `gate_audit` (`--audit-url postgresql://...`, shared
by the replicas of a fleet: `gate.proxy.stores.audit_table`), whose recent denials every replica's status
page shows.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

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


def audit_line(record: dict[str, Any]) -> bytes:
    """`record` as one compact JSON line, keys sorted (msgspec: a cold page of denied files audits thousands).
    A lone surrogate (a file name that is not UTF-8, from an upstream's JSON or a local file) is no UTF-8 and
    msgspec refuses it: such a record is written by `json` instead, with every non-ASCII character escaped, so
    the record is kept exactly and the batch is not lost."""
    try:
        return _ENCODER.encode(record)
    except UnicodeEncodeError:
        return json.dumps(record, sort_keys=True, separators=(",", ":")).encode("ascii")


class SinkError(Exception):
    """A sink did not record (or read back) records; the message says why, without secrets."""


class Sink(Protocol):
    """Where audit records go, each with its line (`append` raises one of `errors` when not all were recorded)."""

    name: str  # file, stdout, log, postgresql
    where: str  # shown in logs, health and the status page: never a password
    errors: tuple[type[Exception], ...]

    def append(self, records: list[dict[str, Any]], lines: list[bytes]) -> None: ...

    def recent_denials(self, limit: int) -> list[dict[str, Any]] | None:
        """The newest `limit` denial records, newest first, when this sink can tell (raises SinkError); None
        when it cannot (the status page reads a file's tail itself)."""

    def close(self) -> None: ...


class FileSink:
    """A JSON-lines file opened for appending; each batch is one `write()`."""

    name = "file"
    errors: tuple[type[Exception], ...] = (OSError,)

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)

    def append(self, records: list[dict[str, Any]], lines: list[bytes]) -> None:
        data = b"\n".join(lines) + b"\n"
        with self._lock:
            if self._fd is None:
                raise OSError(f"{self.path} is closed")
            if os.write(self._fd, data) != len(data):
                raise OSError(f"short write to {self.path}")

    def recent_denials(self, limit: int) -> list[dict[str, Any]] | None:
        """None: the status page reads the file's tail (gate.proxy.status)."""
        return None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class StdoutSink:
    """Standard output, one `write()` per line (a log shipper reads it)."""

    name = "stdout"
    where = "standard output"
    errors: tuple[type[Exception], ...] = (OSError,)

    def append(self, records: list[dict[str, Any]], lines: list[bytes]) -> None:
        for line in lines:
            data = line + b"\n"
            while data:
                data = data[os.write(1, data):]

    def recent_denials(self, limit: int) -> list[dict[str, Any]] | None:
        """None: what went to standard output cannot be read back."""
        return None

    def close(self) -> None:
        """Nothing to close (standard output is the process's)."""


class LogSink:
    """The `gate.audit` logger at INFO (no cache directory, no audit log: tests, a quick look)."""

    name = "log"
    where = "the gate.audit logger"
    errors: tuple[type[Exception], ...] = ()

    def append(self, records: list[dict[str, Any]], lines: list[bytes]) -> None:
        for line in lines:
            logging.getLogger("gate.audit").info("%s", line.decode())

    def recent_denials(self, limit: int) -> list[dict[str, Any]] | None:
        """None: what went to the logger cannot be read back."""
        return None

    def close(self) -> None:
        """Nothing to close."""


class AuditLog:
    """Appends records to a sink.

    A write that fails (disk full, I/O error, the table's server down) loses its records: they are counted in
    `failures` and in the metric `gate_audit_failures_total`, `failing` stays true until a write succeeds again
    (health reports it), and `written()` tells the calling thread whether its last write went through, so that
    compliance mode (`Settings.audit_required`) can refuse to serve what it could not record, whatever the sink."""

    def __init__(self, sink: Sink, metrics: Metrics | None = None) -> None:
        self.sink = sink
        self.metrics = metrics
        self.failures = 0  # records lost, in this process
        self.failing = False
        self.error: str | None = None  # the last write error
        self._local = threading.local()

    @property
    def path(self) -> Path | None:
        """The JSON-lines file records go to (None: another sink)."""
        return self.sink.path if isinstance(self.sink, FileSink) else None

    def close(self) -> None:
        self.sink.close()

    def written(self) -> bool:
        """Whether the calling thread's last `write` recorded everything it was given."""
        return bool(getattr(self._local, "ok", True))

    def write(self, records: Iterable[dict[str, Any]]) -> None:
        """One compact JSON object per record (`audit_line`); JSON escapes every control character, so a value
        never breaks a line."""
        batch = list(records)
        lines = [audit_line(r) for r in batch]
        self._local.ok = True
        if not lines:
            return
        try:
            self.sink.append(batch, lines)
        except self.sink.errors as err:
            self._lost(len(lines), err)
        else:
            self.failing = False

    def _lost(self, count: int, err: Exception) -> None:
        self._local.ok = False
        self.failures += count
        self.failing = True
        self.error = str(err) or type(err).__name__
        log.error("cannot write the audit log %s: %s (%d record(s) lost)", self.sink.where, self.error, count)
        if self.metrics is not None:
            self.metrics.inc("gate_audit_failures_total", float(count))
