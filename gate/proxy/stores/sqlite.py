"""The embedded engine: SQLite in the cache directory, shared by threads and worker processes (WAL), or in
memory (`path=None`: tests, `--cache-dir` not given)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from gate.proxy.stores.base import MAX_META, Meta

# `value` last: SQLite writes a zeroblob (and then a value piece by piece) into a row without making it whole in
# memory only when it is the row's last column
_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    meta TEXT NOT NULL,
    expires REAL,
    value BLOB NOT NULL,
    PRIMARY KEY (namespace, key)
)
"""
_COLUMNS = ["namespace", "key", "meta", "expires", "value"]
LARGE = 1 << 20  # a value of at least this many bytes is written and read a piece of this size at a time


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
                self._memory = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
                self._memory.execute(_SCHEMA)
            return self._memory
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute(_SCHEMA)
            _migrate(connection)
            self._local.connection = connection
        return connection

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[sqlite3.Connection]:
        """This thread's connection (the shared one, locked, in memory) in a transaction, committed when the block
        ends, else rolled back."""
        with self._memory_lock if self.path is None else nullcontext():
            connection = self._connect()
            connection.execute(begin)
            try:
                yield connection
                connection.execute("COMMIT")
            finally:
                if connection.in_transaction:  # not committed: nothing of it is kept
                    connection.execute("ROLLBACK")

    def _run(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        if self.path is None:
            with self._memory_lock:
                return self._connect().execute(sql, params).fetchall()
        return self._connect().execute(sql, params).fetchall()

    def read(self, namespace: str, key: str, meta: str, size: int | None) -> bytes | None:
        """`length` of a BLOB is its byte count, taken from the record header (the value is not loaded); a value of
        another type (this store writes none) is no entry. A LARGE value is read from the row into one buffer
        (selected, SQLite would make it whole first, then Python), found again in the snapshot it is read from."""
        query = ("SELECT CASE WHEN length(value) < ? THEN value END, rowid, length(value) FROM entries "
                 "WHERE namespace = ? AND key = ? AND meta = ? AND typeof(value) = 'blob' "
                 "AND (? IS NULL OR length(value) = ?)")
        params = (LARGE, namespace, key, meta, size, size)
        rows = self._run(query, params)
        if not rows:
            return None
        if rows[0][0] is not None:
            return bytes(rows[0][0])
        with self._transaction("BEGIN") as connection:  # found again, and read, in one snapshot
            found = connection.execute(query, params).fetchall()
            if not found:
                return None
            if found[0][0] is not None:
                return bytes(found[0][0])
            with connection.blobopen("entries", "value", found[0][1], readonly=True) as blob:
                value = blob.read()
        return value if len(value) == found[0][2] else None

    def read_meta(self, namespace: str, key: str) -> Meta | None:
        rows = self._run("SELECT CASE WHEN length(CAST(meta AS BLOB)) <= ? THEN meta ELSE '' END, expires "
                         "FROM entries WHERE namespace = ? AND key = ?", (MAX_META, namespace, key))
        return (str(rows[0][0]), rows[0][1]) if rows else None

    def write(self, namespace: str, key: str, value: bytes, meta: str, expires: float | None) -> None:
        """A LARGE value is written into its row a piece at a time, in one transaction (no reader sees the row
        before it is whole): bound as a parameter, SQLite would copy it whole, twice."""
        if len(value) < LARGE:
            self._run("INSERT OR REPLACE INTO entries (namespace, key, value, meta, expires) VALUES (?, ?, ?, ?, ?)",
                      (namespace, key, value, meta, expires))
            return
        with self._transaction("BEGIN IMMEDIATE") as connection:
            (rowid,) = connection.execute(
                "INSERT OR REPLACE INTO entries (namespace, key, value, meta, expires) "
                "VALUES (?, ?, zeroblob(?), ?, ?) RETURNING rowid", (namespace, key, len(value), meta, expires),
            ).fetchone()
            view = memoryview(value)
            with connection.blobopen("entries", "value", rowid) as blob:
                for at in range(0, len(view), LARGE):
                    blob.write(view[at : at + LARGE])

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


def _migrate(connection: sqlite3.Connection) -> None:
    """Give a cache an earlier gate made (`value` not last) this layout, keeping its rows; once, whichever worker
    comes first (the others wait for its transaction, then find it done)."""
    if [row[1] for row in connection.execute("PRAGMA table_info(entries)")] == _COLUMNS:
        return
    connection.execute("BEGIN IMMEDIATE")
    try:
        if [row[1] for row in connection.execute("PRAGMA table_info(entries)")] != _COLUMNS:
            connection.execute("ALTER TABLE entries RENAME TO entries_before")
            connection.execute(_SCHEMA)
            connection.execute("INSERT INTO entries (namespace, key, meta, expires, value) "
                               "SELECT namespace, key, meta, expires, value FROM entries_before")
            connection.execute("DROP TABLE entries_before")
        connection.execute("COMMIT")
    finally:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
