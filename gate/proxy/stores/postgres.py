"""The PostgreSQL engine (psycopg 3): the table `gate_cache`, made when missing (under an advisory lock, so
replicas starting together do not race). A connection per thread, in autocommit; every operation is bounded:
`connect_timeout`, a client-side deadline on every wait for the server (`TimedConnection`: OP_TIMEOUT, plus a
second per 8 MiB of a value read or written: its sealed size, or without a secret its size asked for first), and
the server's own `statement_timeout` (STATEMENT_TIMEOUT, against a statement stuck on a lock); so a hung server
(one that accepts connections and never answers) fails the operation instead of holding the request."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg.abc import PQGen

from gate.proxy.stores.base import MAX_META, OP_TIMEOUT, Meta, budget

RV = TypeVar("RV")
STATEMENT_TIMEOUT = 120  # seconds: the server's bound (the client's deadline is the one that counts)
SCHEMA_LOCK = 0x6761_7465  # pg_advisory_xact_lock key of gate's CREATE statements ("gate")

CACHE_SCHEMA = """
CREATE TABLE IF NOT EXISTS gate_cache (
    namespace text NOT NULL,
    key text NOT NULL,
    value bytea NOT NULL,
    meta text NOT NULL,
    expires double precision,
    PRIMARY KEY (namespace, key)
)
"""


class TimedConnection(psycopg.Connection[tuple[Any, ...]]):
    """A psycopg connection whose every wait for the server ends after `deadline` seconds (psycopg's own
    waits have none: a stopped server would hold the thread forever); the connection is then unusable and is
    dropped by `PerThread`."""

    deadline: float = OP_TIMEOUT

    def wait(self, gen: PQGen[RV], interval: float = 0.1, timeout: float | None = None) -> RV:
        return super().wait(gen, interval, self.deadline if timeout is None else timeout)


def connect(url: str, timeout: float = OP_TIMEOUT) -> TimedConnection:
    """An autocommit connection to `url` whose connect, statements and waits are all bounded by `timeout`."""
    connection = TimedConnection.connect(
        url, autocommit=True, connect_timeout=max(int(timeout + 0.999), 2),
        options=f"-c statement_timeout={STATEMENT_TIMEOUT * 1000}", application_name="gate",
    )
    connection.deadline = timeout
    return connection


class PerThread:
    """One connection per thread, made on first use (after gunicorn forked), with `prepare` run once per
    process on the first one (the schema); a connection whose operation failed is closed and made anew."""

    def __init__(self, url: str, prepare: Callable[[TimedConnection], None], timeout: float = OP_TIMEOUT) -> None:
        self.url = url
        self.timeout = timeout
        self._prepare = prepare
        self._prepared = False
        self._local = threading.local()
        self._lock = threading.Lock()

    def run(self, sql: str, params: tuple[Any, ...] = (), *, binary: bool = False, size: int = 0,
            ) -> list[tuple[Any, ...]]:
        """The rows of `sql` (`binary`: results in PostgreSQL's binary format: a bytea as its bytes, not hex),
        within the deadline of an operation that moves `size` bytes."""
        connection: TimedConnection | None = getattr(self._local, "connection", None)
        try:
            if connection is None or connection.closed:
                connection = connect(self.url, self.timeout)
                self._local.connection = connection
                if not self._prepared:
                    with self._lock:
                        self._prepare(connection)
                        self._prepared = True
            connection.deadline = budget(size, self.timeout)
            cursor = connection.execute(sql, params, binary=binary)
            return cursor.fetchall() if cursor.description is not None else []
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        connection: TimedConnection | None = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            connection.close()


def create(connection: TimedConnection, table: str, *statements: str) -> None:
    """Make `table` with `statements` (CREATE ... IF NOT EXISTS, in one transaction under gate's advisory lock)
    unless it exists: a role without CREATE on the schema (only the rights it needs on a table made for it,
    docs/deploy.md) uses it as it is."""
    found = connection.execute("SELECT to_regclass(%s)", (table,)).fetchone()
    if found is not None and found[0] is not None:
        return
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        for statement in statements:
            connection.execute(statement)


class PostgresBackend:
    name = "postgresql"
    errors: tuple[type[Exception], ...] = (psycopg.Error, OSError)

    def __init__(self, url: str, where: str, *, timeout: float = OP_TIMEOUT) -> None:
        self.where = where
        self.connections = PerThread(url, lambda c: create(c, "gate_cache", CACHE_SCHEMA), timeout)

    def close(self) -> None:
        self.connections.close()

    def read(self, namespace: str, key: str, meta: str, size: int | None) -> bytes | None:
        """The value within the deadline of its sealed size (the server compares the lengths: a value of another
        one is not sent); without a size (no secret), its length is asked for first."""
        if size is None:
            rows = self.connections.run(
                "SELECT octet_length(value) FROM gate_cache WHERE namespace = %s AND key = %s AND meta = %s",
                (namespace, key, meta))
            if not rows:
                return None
            size = int(rows[0][0])
        values = self.connections.run(
            "SELECT value FROM gate_cache WHERE namespace = %s AND key = %s AND meta = %s AND octet_length(value) = %s",
            (namespace, key, meta, size), binary=True, size=size)
        return bytes(values[0][0]) if values else None

    def read_meta(self, namespace: str, key: str) -> Meta | None:
        rows = self.connections.run(
            "SELECT CASE WHEN octet_length(meta) <= %s THEN meta ELSE '' END, expires FROM gate_cache "
            "WHERE namespace = %s AND key = %s", (MAX_META, namespace, key))
        return (str(rows[0][0]), rows[0][1]) if rows else None

    def write(self, namespace: str, key: str, value: bytes, meta: str, expires: float | None) -> None:
        self.connections.run(
            "INSERT INTO gate_cache (namespace, key, value, meta, expires) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value, meta = EXCLUDED.meta, "
            "expires = EXCLUDED.expires",
            (namespace, key, value, meta, expires), size=len(value),
        )

    def write_meta(self, namespace: str, key: str, meta: str, expires: float | None) -> None:
        self.connections.run(
            "UPDATE gate_cache SET meta = %s, expires = %s WHERE namespace = %s AND key = %s",
            (meta, expires, namespace, key),
        )

    def claim(self, namespace: str, key: str, value: bytes, meta: str, expires: float, *, now: float) -> bool:
        """INSERT ... ON CONFLICT DO UPDATE ... WHERE: PostgreSQL locks the row it conflicts with and judges the
        WHERE on its latest version, so of two claims at once exactly one returns a row."""
        return bool(self.connections.run(
            "INSERT INTO gate_cache (namespace, key, value, meta, expires) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value, meta = EXCLUDED.meta, "
            "expires = EXCLUDED.expires WHERE gate_cache.expires IS NULL OR gate_cache.expires <= %s RETURNING 1",
            (namespace, key, value, meta, expires, now)))

    def release(self, namespace: str, key: str, value: bytes) -> None:
        self.connections.run("DELETE FROM gate_cache WHERE namespace = %s AND key = %s AND value = %s",
                             (namespace, key, value))
