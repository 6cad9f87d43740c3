"""Red-team findings against the leases (`gate.proxy.stores.lease.once`, `Store.lease_until`): whoever can write to a
shared store without the cache secret cannot make a waiting request read more than a few values, however large
the values it plants."""

from __future__ import annotations

import time
from pathlib import Path

from gate.proxy.metrics import Metrics
from gate.proxy.stores.base import LEASES, Store, stored_key
from gate.proxy.stores.lease import once
from gate.proxy.stores.sqlite import SqliteBackend

SECRET = b"red-team-lease-secret-0123456789"
NAMESPACE = "verified"
KEY = "the-work"
PLANTED = 4 << 20  # bytes of each value the writer without the secret plants
HANG = 60.0  # seconds after which `once` is taken to hang


class ReadsCounted(SqliteBackend):
    """The SQLite engine, noting the size of every value it reads (meta reads move no value)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.values: list[int] = []

    def read(self, namespace: str, key: str, meta: str, size: int | None) -> bytes | None:
        found = super().read(namespace, key, meta, size)
        self.values.append(0 if found is None else len(found))
        return found


def test_a_planted_value_is_read_a_few_times_while_a_live_lease_is_waited_on(tmp_path: Path) -> None:
    """Another replica holds the lease (sealed, alive for a second); the writer has put a large unsealed value where
    the outcome goes, and another in place of a lease nobody waits on. The waiter looked the outcome up on every
    poll of the lease (every 5 to 100 ms: a dozen reads of the planted value in that second, hundreds over a
    10 s lease), and read the planted lease's value each time it looked at it."""
    path = tmp_path / "cache.sqlite3"
    holder = Store(SqliteBackend(path), secret=SECRET)
    assert holder.claim(NAMESPACE, KEY, 1.0) is not None  # never released: it ends in a second
    writer = SqliteBackend(path)  # no secret
    writer.write(NAMESPACE, stored_key(KEY), b"x" * PLANTED, "{}", None)
    forever = time.time() + 10 * 365 * 86400
    writer.write(LEASES + NAMESPACE, stored_key("other"), b"y" * PLANTED, "{}", forever)
    counted = ReadsCounted(path)
    waiter = Store(counted, secret=SECRET)

    def lookup() -> bytes | None:
        entry = waiter.get(NAMESPACE, KEY)
        return None if entry is None else entry.value

    def compute() -> bytes:
        waiter.put(NAMESPACE, KEY, b"outcome")
        return b"outcome"

    started = time.monotonic()
    assert once(waiter, Metrics(), NAMESPACE, KEY, lookup=lookup, compute=compute, ttl=5.0) == b"outcome"
    assert time.monotonic() - started < HANG
    large = [size for size in counted.values if size >= PLANTED]
    # before the wait, when the lease ended, and after this worker claimed it
    assert len(large) <= 3, f"{len(large)} reads of the planted value"
    counted.values.clear()
    assert waiter.lease_until(NAMESPACE, "other", 30) is None  # the planted lease is not gate's ...
    assert counted.values == []  # ... which its meta says, without its value being read
