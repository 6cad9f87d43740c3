"""The proxy's embedded store: SQLite in the cache directory, shared by threads and worker processes.

One table of entries `(namespace, key) -> (value bytes, meta JSON, expires)`; each blueprint picks its
namespaces (the PyPI blueprint uses `pypi.page`, `pypi.rendered`, `provenance`, `verified`). `expires`
is a Unix time after which `get` no longer returns the entry (None: kept until replaced). A broken or
locked database is never fatal to a request: reads then miss and writes are dropped, with a log line.
Keys are stored as their sha256 (`_stored`): a key holding a URL with a token keeps no secret on disk.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

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


def _stored(key: str) -> str:
    """How a key is stored: its sha256. Keys hold upstream URLs, and a URL may carry a token (anaconda.org's
    `/t/<token>/`, a query parameter): the digest keeps it off the disk, and two tokens never share an entry
    (a redacted key would make them one)."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Entry:
    value: bytes
    meta: dict[str, Any] = field(default_factory=dict)
    expires: float | None = None


class Store:
    """SQLite-backed entries; `path=None` keeps them in memory (tests, `--cache-dir` not given)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
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
        """Close this thread's connection (a store checked before gunicorn forks keeps nothing open)."""
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

    def get(self, namespace: str, key: str, *, now: float | None = None) -> Entry | None:
        """The entry, or None when absent or expired."""
        try:
            rows = self._run(
                "SELECT value, meta, expires FROM entries WHERE namespace = ? AND key = ?",
                (namespace, _stored(key)),
            )
        except sqlite3.Error as err:
            log.warning("cache read failed: %s", err)
            return None
        if not rows:
            return None
        value, meta, expires = rows[0]
        if expires is not None and expires <= (time.time() if now is None else now):
            return None
        return Entry(bytes(value), json.loads(meta), expires)

    def put(
        self, namespace: str, key: str, value: bytes, meta: dict[str, Any] | None = None,
        expires: float | None = None,
    ) -> None:
        try:
            self._run(
                "INSERT OR REPLACE INTO entries (namespace, key, value, meta, expires) VALUES (?, ?, ?, ?, ?)",
                (namespace, _stored(key), value, json.dumps(meta or {}), expires),
            )
        except sqlite3.Error as err:
            log.warning("cache write failed: %s", err)

    def update_meta(self, namespace: str, key: str, meta: dict[str, Any], expires: float | None) -> None:
        """Change an entry's meta and expiry without rewriting its value (a 304 revalidation)."""
        try:
            self._run(
                "UPDATE entries SET meta = ?, expires = ? WHERE namespace = ? AND key = ?",
                (json.dumps(meta), expires, namespace, _stored(key)),
            )
        except sqlite3.Error as err:
            log.warning("cache write failed: %s", err)

    def get_meta(self, namespace: str, key: str) -> dict[str, Any] | None:
        """An entry's meta whether or not it has expired (validators for a conditional request)."""
        try:
            rows = self._run("SELECT meta FROM entries WHERE namespace = ? AND key = ?", (namespace, _stored(key)))
        except sqlite3.Error as err:
            log.warning("cache read failed: %s", err)
            return None
        return json.loads(rows[0][0]) if rows else None


class Memo(Generic[T]):
    """A small thread-safe LRU map for decoded values (parsed pages) in one process: at most `size` of
    them, whose weights (the bytes they were parsed from) add up to at most `budget` (the latest one is
    kept whatever its weight), so a hostile upstream's large documents cannot pile up in memory."""

    def __init__(self, size: int = 64, budget: int | None = None) -> None:
        self._items: OrderedDict[str, tuple[T, int]] = OrderedDict()
        self._size = size
        self._budget = budget
        self._weight = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> T | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: str, value: T, weight: int = 0) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            self._weight += weight - (old[1] if old else 0)
            self._items[key] = (value, weight)
            while len(self._items) > 1 and (
                len(self._items) > self._size or (self._budget is not None and self._weight > self._budget)
            ):
                _, (_, dropped) = self._items.popitem(last=False)
                self._weight -= dropped
