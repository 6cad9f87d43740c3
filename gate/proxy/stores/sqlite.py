"""The embedded engine: SQLite in the cache directory, shared by threads and worker processes (WAL), or in
memory (`path=None`: tests, `--cache-dir` not given)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from gate.proxy.stores.base import MAX_META, Meta

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    meta TEXT NOT NULL,
    expires REAL,
    PRIMARY KEY (namespace, key)
)
"""


class SqliteBackend:
    """One table `entries`; a connection per thread (one shared, locked, in memory)."""

    name = "sqlite"
    errors: tuple[type[Exception], ...] = (sqlite3.Error,)

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.where = str(path) if path is not None else "memory"
        self._local = threading.local()
        self._memory: sqlite3.Connection | None = None
        self._memory_lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._connect()  # create the schema (and fail early on an unusable path)
        if path is not None:  # and on one that cannot be written (read-only, locked)
            self._run("BEGIN IMMEDIATE", ())
            self._run("ROLLBACK", ())

    def close(self) -> None:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def _connect(self) -> sqlite3.Connection:
        if self.path is None:
            if self._memory is None:
                self._memory = sqlite3.connect(":memory:", check_same_thread=False)
                self._memory.execute(_SCHEMA)
            return self._memory
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute(_SCHEMA)
            self._local.connection = connection
        return connection

    def _run(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        if self.path is None:
            with self._memory_lock:
                return self._connect().execute(sql, params).fetchall()
        return self._connect().execute(sql, params).fetchall()

    def read(self, namespace: str, key: str, meta: str, size: int | None) -> bytes | None:
        """`length` of a BLOB is its byte count, taken from the record header (the value is not loaded)."""
        rows = self._run(
            "SELECT value FROM entries WHERE namespace = ? AND key = ? AND meta = ? "
            "AND (? IS NULL OR (typeof(value) = 'blob' AND length(value) = ?))", (namespace, key, meta, size, size))
        return bytes(rows[0][0]) if rows else None

    def read_meta(self, namespace: str, key: str) -> Meta | None:
        rows = self._run("SELECT CASE WHEN length(CAST(meta AS BLOB)) <= ? THEN meta ELSE '' END, expires "
                         "FROM entries WHERE namespace = ? AND key = ?", (MAX_META, namespace, key))
        return (str(rows[0][0]), rows[0][1]) if rows else None

    def write(self, namespace: str, key: str, value: bytes, meta: str, expires: float | None) -> None:
        self._run("INSERT OR REPLACE INTO entries (namespace, key, value, meta, expires) VALUES (?, ?, ?, ?, ?)",
                  (namespace, key, value, meta, expires))

    def write_meta(self, namespace: str, key: str, meta: str, expires: float | None) -> None:
        self._run("UPDATE entries SET meta = ?, expires = ? WHERE namespace = ? AND key = ?",
                  (meta, expires, namespace, key))

    def claim(self, namespace: str, key: str, value: bytes, meta: str, expires: float, *, now: float) -> bool:
        return bool(self._run(
            "INSERT INTO entries (namespace, key, value, meta, expires) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, meta = excluded.meta, "
            "expires = excluded.expires WHERE entries.expires IS NULL OR entries.expires <= ? RETURNING 1",
            (namespace, key, value, meta, expires, now)))

    def release(self, namespace: str, key: str, value: bytes) -> None:
        self._run("DELETE FROM entries WHERE namespace = ? AND key = ? AND value = ?", (namespace, key, value))
