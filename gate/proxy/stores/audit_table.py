"""The audit trail in PostgreSQL: the table `gate_audit`, one row per record, written by every replica and read
by every replica's status page. A batch (a page's decisions) is one INSERT; rows keep the record's text as
`json` (not `jsonb`, and never parsed by the server: a `\\u0000` an upstream put in a filename is stored, not
refused with the whole batch), with its time, verdict and the replica (host name) that wrote it in columns of
their own for queries and retention."""

from __future__ import annotations

import json
import socket
from typing import Any

import psycopg

from gate.proxy.audit import SinkError
from gate.proxy.stores.base import OP_TIMEOUT, Breaker, scrubber
from gate.proxy.stores.postgres import PerThread, create

AUDIT_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS gate_audit (
        id bigserial PRIMARY KEY,
        time timestamptz NOT NULL,
        replica text NOT NULL,
        verdict text NOT NULL,
        record json NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS gate_audit_denials ON gate_audit (id) WHERE verdict = 'deny'",
    "CREATE INDEX IF NOT EXISTS gate_audit_time ON gate_audit (time)",
)

MAX_SHOWN_BYTES = 1 << 20  # a row larger than this (no record gate writes) is not read back for the status page

_INSERT = (  # columns from gate's own fields; the record's text is kept, never parsed by the server
    "INSERT INTO gate_audit (time, replica, verdict, record) "
    "SELECT t, %s, v, r::json FROM unnest(%s::timestamptz[], %s::text[], %s::text[]) AS u(t, v, r)"
)


class TableError(SinkError):
    """The table was not written (or read); the message says why, without secrets."""


class TableSink:
    """`gate_audit` at a postgresql:// URL (made when missing). Every operation is bounded (`OP_TIMEOUT`); after
    a failure the server is left alone for a few seconds (writes then fail at once: their records are lost and
    counted, and refused downloads under --audit-required)."""

    name = "postgresql"
    errors: tuple[type[Exception], ...] = (TableError,)

    def __init__(self, url: str, where: str, secrets: tuple[str, ...] = (), *, timeout: float = OP_TIMEOUT) -> None:
        self.where = where
        self.replica = socket.gethostname()
        self.scrub = scrubber(*secrets)
        self.connections = PerThread(url, lambda c: create(c, "gate_audit", *AUDIT_SCHEMA), timeout)
        self.breaker = Breaker("audit table", where, None, self.scrub)

    def append(self, records: list[dict[str, Any]], lines: list[bytes]) -> None:
        times = [str(r.get("time")) for r in records]
        verdicts = [str(r.get("verdict", "")) for r in records]
        self._run("insert", _INSERT, (self.replica, times, verdicts, [line.decode() for line in lines]),
                  size=sum(len(line) for line in lines))

    def recent_denials(self, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` denial records of every replica, newest first (raises TableError)."""
        rows = self._run(
            "read", "SELECT record::text FROM gate_audit WHERE verdict = 'deny' AND octet_length(record::text) <= %s "
            "ORDER BY id DESC LIMIT %s", (MAX_SHOWN_BYTES, limit))
        found = []
        for (text,) in rows:
            try:
                record = json.loads(text)
            except (ValueError, RecursionError):
                continue
            if isinstance(record, dict):
                found.append(record)
        return found

    def _run(self, op: str, sql: str, params: tuple[Any, ...], size: int = 0) -> list[tuple[Any, ...]]:
        """The rows of `sql`, unless the server failed moments ago; a failure raises TableError, scrubbed."""
        if not self.breaker.closed():
            raise TableError(f"not tried: {self.where} failed moments ago ({self.breaker.error})")
        try:
            rows = self.connections.run(sql, params, size=size)
        except (psycopg.Error, OSError) as err:
            self.breaker.failed(op, err)
            raise TableError(self.scrub(f"{type(err).__name__}: {err}")) from None
        self.breaker.succeeded()
        return rows

    def close(self) -> None:
        self.connections.close()
