"""Red team of the SQLite store's large-value path (`gate.proxy.stores.sqlite`): readers in other processes
while large values are replaced, the layout migration raced by starting processes and by an older gate still
writing, values at the LARGE boundary, and rows the store did not write itself."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gate.proxy.stores.base import Store, stored_key
from gate.proxy.stores.sqlite import _COLUMNS, LARGE, SqliteBackend

REPO = Path(__file__).resolve().parents[2]
HANG = 300  # seconds: detects a hang only


def _python(script: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", f"import sys\nsys.path.insert(0, {str(REPO)!r})\n"
                             + textwrap.dedent(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finished(process: subprocess.Popen[str]) -> str:
    out, err = process.communicate(timeout=HANG)
    assert process.returncode == 0, err
    return out


def test_readers_in_other_processes_see_one_whole_value_or_the_other(tmp_path: Path) -> None:
    """A writer process replaces a large value by another of another length and back, over and over; reader
    processes read it all the while: every read is one of the two whole values (never zeros, a part, or the
    length of one with the bytes of the other)."""
    path = tmp_path / "cache.db"
    values = "{1: bytes([1]) * (3 * LARGE + 5), 2: bytes([2]) * (2 * LARGE)}"
    SqliteBackend(path).write("ns", "key", bytes([1]) * (3 * LARGE + 5), "{}", None)
    done = tmp_path / "done"
    readers = [_python(f"""
        from pathlib import Path
        from gate.proxy.stores.sqlite import LARGE, SqliteBackend
        values = {values}
        backend, seen, reads = SqliteBackend(Path({str(path)!r})), set(), 0
        while not Path({str(done)!r}).exists() or reads < 20:
            value = backend.read("ns", "key", "{{}}", None)
            assert value in values.values(), (len(value or b""), set(value or b""))
            seen.add(value[0])
            reads += 1
        print(reads, len(seen))
    """) for _ in range(2)]
    writer = _python(f"""
        from pathlib import Path
        from gate.proxy.stores.sqlite import LARGE, SqliteBackend
        values = {values}
        backend = SqliteBackend(Path({str(path)!r}))
        for i in range(40):
            backend.write("ns", "key", values[2 - i % 2], "{{}}", None)
        Path({str(done)!r}).touch()
    """)
    _finished(writer)
    for reader in readers:
        reads, kinds = map(int, _finished(reader).split())
        assert reads >= 20 and kinds >= 1


def _old_layout(path: Path, rows: int) -> None:
    """A cache as an earlier gate made it (`value` before `meta`), with `rows` rows, some of them large."""
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE entries (namespace TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, "
                   "meta TEXT NOT NULL, expires REAL, PRIMARY KEY (namespace, key))")
        db.executemany("INSERT INTO entries VALUES ('old', ?, ?, '{}', NULL)",
                       [(str(i), bytes([i % 256]) * (LARGE + i if i % 10 == 0 else 100 + i)) for i in range(rows)])
    db.close()


def test_the_migration_raced_by_starting_processes_and_an_older_gate_still_writing_keeps_every_row(
    tmp_path: Path,
) -> None:
    path = tmp_path / "cache.db"
    _old_layout(path, 60)
    go = tmp_path / "go"
    older = _python(f"""
        import sqlite3, time
        from pathlib import Path
        # an older gate: its statements, on its connection opened before the migration
        db = sqlite3.connect({str(path)!r}, timeout=10, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        while not Path({str(go)!r}).exists():
            time.sleep(0.001)
        for i in range(200):
            db.execute("INSERT OR REPLACE INTO entries (namespace, key, value, meta, expires) VALUES (?, ?, ?, ?, ?)",
                       ("older", str(i), bytes([i % 256]) * 50, "{{}}", None))
            (value,) = db.execute("SELECT value FROM entries WHERE namespace = ? AND key = ? AND meta = ?",
                                  ("older", str(i), "{{}}")).fetchone()
            assert value == bytes([i % 256]) * 50
    """)
    newer = [_python(f"""
        import time
        from pathlib import Path
        from gate.proxy.stores.sqlite import LARGE, SqliteBackend
        while not Path({str(go)!r}).exists():
            time.sleep(0.001)
        backend = SqliteBackend(Path({str(path)!r}))
        for i in range(20):
            value = bytes([{n}]) * (LARGE if i % 5 == 0 else 10)
            backend.write("new{n}", str(i), value, "{{}}", None)
            assert backend.read("new{n}", str(i), "{{}}", len(value)) == value
        assert backend.read("old", "10", "{{}}", None) == bytes([10]) * (LARGE + 10)
    """) for n in range(3)]
    go.touch()
    for process in [older, *newer]:
        _finished(process)
    backend = SqliteBackend(path)
    assert [row[1] for row in backend._connect().execute("PRAGMA table_info(entries)")] == _COLUMNS
    counts = dict(backend._run("SELECT namespace, count(*) FROM entries GROUP BY namespace", ()))
    assert counts == {"old": 60, "older": 200, "new0": 20, "new1": 20, "new2": 20}
    for i in (0, 7, 50):
        assert backend.read("old", str(i), "{}", None) == bytes([i]) * (LARGE + i if i % 10 == 0 else 100 + i)
    assert not backend._run("SELECT name FROM sqlite_master WHERE name LIKE 'entries_before%'", ())


@pytest.mark.parametrize("where", ["file", "memory"])
@pytest.mark.parametrize("size", [LARGE - 1, LARGE, LARGE + 1])
def test_values_at_the_boundary_read_back_through_a_sealed_store(tmp_path: Path, where: str, size: int) -> None:
    backend = SqliteBackend(tmp_path / "cache.db" if where == "file" else None)
    store = Store(backend, secret=b"s" * 32)
    value = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    store.put("ns", "key", value, {"n": size})
    entry = store.get("ns", "key")
    assert entry is not None and entry.value == value and entry.meta == {"n": size}
    [(meta,)] = backend._run("SELECT meta FROM entries", ())
    assert backend.read("ns", stored_key("key"), meta, size) == value
    assert backend.read("ns", stored_key("key"), meta, size - 1) is None  # of another length: none


@pytest.mark.parametrize("size", [10, LARGE + 3])
def test_a_value_stored_as_text_is_a_miss_not_an_error(tmp_path: Path, size: int) -> None:
    """A row another program wrote with a TEXT value (the store writes only BLOBs): `bytes(str)` raised a
    TypeError out of the store (a 500), and a large one was read as its UTF-8 bytes."""
    path = tmp_path / "cache.db"
    store = Store(SqliteBackend(path))
    store.put("ns", "key", b"x", {})
    with sqlite3.connect(path) as db:
        db.execute("UPDATE entries SET value = ?", ("\u00e9" * size,))
    db.close()
    assert store.get("ns", "key") is None
    assert not store.breaker.failing
