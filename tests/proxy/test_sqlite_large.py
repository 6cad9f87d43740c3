"""Large values in the SQLite store (a conda-forge-sized filtered repodata is tens of MB compressed): written and
read a piece at a time, whole or not at all, without SQLite making them whole in memory; and a cache an
earlier gate made (`value` not the last column) is given the new layout with its rows."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gate.proxy.stores.base import Store
from gate.proxy.stores.sqlite import LARGE, SqliteBackend

REPO = Path(__file__).resolve().parents[2]


def _value(size: int, seed: int) -> bytes:
    return bytes((i * 131 + seed) % 251 for i in range(251)) * (size // 251) + b"x" * (size % 251)


@pytest.mark.parametrize("where", ["file", "memory"])
def test_a_large_value_reads_back_whole_and_replaces_any_other(tmp_path: Path, where: str) -> None:
    """Read back through a store that checks each value against the digest sealed with its meta."""
    store = Store(SqliteBackend(tmp_path / "cache.db" if where == "file" else None), secret=b"k" * 32)
    first, second = _value(3 * LARGE + 17, 1), _value(2 * LARGE, 2)
    store.put("ns", "key", first, {"n": 1})
    entry = store.get("ns", "key")
    assert entry is not None and entry.value == first and entry.meta == {"n": 1}
    store.put("ns", "key", second, {"n": 2})
    entry = store.get("ns", "key")
    assert entry is not None and entry.value == second and entry.meta == {"n": 2}
    store.put("ns", "key", b"small", {"n": 3})  # and back to a value bound as a parameter
    entry = store.get("ns", "key")
    assert entry is not None and entry.value == b"small"


def test_a_large_write_that_fails_keeps_the_old_value_and_leaves_no_transaction(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    backend = SqliteBackend(path)
    old = _value(LARGE, 3)
    backend.write("ns", "key", old, "{}", None)
    backend._connect().execute("PRAGMA busy_timeout = 50")  # this thread's connection: give up soon
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
    try:
        with pytest.raises(sqlite3.OperationalError):
            backend.write("ns", "key", _value(2 * LARGE, 4), "{}", None)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert not backend._connect().in_transaction
    assert backend.read("ns", "key", "{}", None) == old
    backend.write("ns", "key", new := _value(2 * LARGE, 5), "{}", None)  # the connection still works
    assert backend.read("ns", "key", "{}", None) == new


def test_a_reader_sees_the_old_value_or_the_new_one_never_part_of_it(tmp_path: Path) -> None:
    """A read while another connection is writing a large value (its transaction open, the row zeros so far)."""
    path = tmp_path / "cache.db"
    backend, writer = SqliteBackend(path), sqlite3.connect(path, isolation_level=None)
    old = _value(2 * LARGE, 6)
    backend.write("ns", "key", old, "{}", None)
    writer.execute("BEGIN IMMEDIATE")
    (rowid,) = writer.execute("INSERT OR REPLACE INTO entries (namespace, key, value, meta, expires) "
                              "VALUES ('ns', 'key', zeroblob(?), '{}', NULL) RETURNING rowid", (2 * LARGE,)).fetchone()
    with writer.blobopen("entries", "value", rowid) as blob:
        blob.write(b"\xff" * LARGE)
    assert backend.read("ns", "key", "{}", 2 * LARGE) == old
    writer.execute("COMMIT")
    assert backend.read("ns", "key", "{}", 2 * LARGE) == b"\xff" * LARGE + bytes(LARGE)
    assert backend.read("ns", "key", "{}", 3) is None  # not as long as asked for: not transferred


def test_a_cache_an_earlier_gate_made_is_laid_out_anew_with_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE entries (namespace TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, "
                   "meta TEXT NOT NULL, expires REAL, PRIMARY KEY (namespace, key))")
        db.execute("INSERT INTO entries VALUES ('ns', 'a', x'0102', '{}', 5.0)")
        db.execute("INSERT INTO entries VALUES ('ns', 'b', ?, 'm', NULL)", (_value(LARGE, 7),))
    db.close()
    backend = SqliteBackend(path)
    assert [row[1] for row in backend._connect().execute("PRAGMA table_info(entries)")][-1] == "value"
    assert backend.read("ns", "a", "{}", None) == b"\x01\x02"
    assert backend.read("ns", "b", "m", None) == _value(LARGE, 7)
    assert backend.read_meta("ns", "a") == ("{}", 5.0)
    SqliteBackend(path)  # a second worker finds it done


@pytest.mark.parametrize("step", ["write", "read"])
def test_a_large_value_is_not_made_whole_in_memory_by_sqlite(tmp_path: Path, step: str) -> None:
    """Bound as a parameter, a 32 MiB value raised the process's peak by 64 MiB (SQLite's copies of the parameter
    and of the record); selected, by 64 MiB too (SQLite's copy, then Python's). A piece at a time: by a small part
    of it (and a read by the value it gives)."""
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        sys.path.insert(0, {str(REPO)!r})
        from gate.proxy.stores.sqlite import SqliteBackend

        def peak():
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024

        backend = SqliteBackend(Path({str(tmp_path / "cache.db")!r}))
        backend.write("ns", "warm", b"x" * 4096, "{{}}", None)
        value = bytes(range(256)) * (1 << 17)  # 32 MiB
        if {step!r} == "read":
            backend.write("ns", "key", value, "{{}}", None)
            del value
        Path("/proc/self/clear_refs").write_text("5")
        before = peak()
        if {step!r} == "read":
            value = backend.read("ns", "key", "{{}}", None)
            assert len(value) == 32 << 20
            print(peak() - before - len(value))
        else:
            backend.write("ns", "key", value, "{{}}", None)
            print(peak() - before)
    """)
    grown = int(subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout)
    assert grown < 8 << 20, f"the peak grew by {grown >> 20} MiB more than the value"
