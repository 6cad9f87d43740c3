"""One bounded memo for results worth keeping (parsed versions, rule outcomes, parse trees), safe to share
between threads (the proxy judges pages on several at once).

Bounded by entries (or by a weight per entry), and emptied when the next entry would pass the bound:
clear-when-full keeps no per-entry bookkeeping on the hot path, a working set below the bound stays
whole, and a flood of distinct keys (an attacker's filenames) can neither grow it nor make it thrash
more than one rebuild per `limit` entries.

Every write (put, pop, clear) holds the memo's lock, so the entries and their total weight stay in step.
A read is one dict lookup, which is atomic (under the GIL, and per dict in free-threaded builds): it sees
an entry or its absence, never half a write, so it takes no lock. A lock there cost 3 of the ~8 us the
proxy spends judging a file. A value is made outside the lock (two threads may both make one; the last
one stored wins, and both are equal).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from enum import Enum
from typing import Final, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Missing(Enum):
    """What `Memo.get` gives for a key it does not hold (a memo may hold None)."""

    MISSING = "missing"


MISSING: Final = Missing.MISSING
_MISSING: object = MISSING


class Memo(Generic[K, V]):
    """A bounded, thread-safe map from keys to made values. `weight(key, value)` is what an entry counts
    against `limit` (1 when not given)."""

    __slots__ = ("_entries", "_lock", "_total", "_weight", "limit")

    def __init__(self, limit: int, weight: Callable[[K, V], int] | None = None) -> None:
        if limit < 1:
            raise ValueError(f"a memo holds at least one entry, not {limit}")
        self.limit = limit
        self._weight = weight
        self._entries: dict[K, V] = {}
        self._total = 0
        self._lock = threading.Lock()

    def get(self, key: K) -> V | Missing:
        """The value kept for `key`, or MISSING."""
        return self._entries.get(key, MISSING)

    def get_or_make(self, key: K, make: Callable[[], V]) -> V:
        """The value kept for `key`, else `make()` (called without the lock held), kept."""
        found = self._entries.get(key, MISSING)
        if found is MISSING:
            found = make()
            self.put(key, found)
        return found

    def put(self, key: K, value: V) -> None:
        """Keep `value` for `key`; empty the memo first when it would pass its bound (an entry heavier than
        the whole bound is not kept)."""
        weight = 1 if self._weight is None else self._weight(key, value)
        if weight > self.limit:
            return
        with self._lock:
            old = self._entries.pop(key, _MISSING)
            if old is not _MISSING:
                self._total -= 1 if self._weight is None else self._weight(key, old)  # type: ignore[arg-type]
            if self._total + weight > self.limit:
                self._entries.clear()
                self._total = 0
            self._entries[key] = value
            self._total += weight

    def pop(self, key: K) -> V | None:
        """Take the value kept for `key` out of the memo (None when there is none)."""
        with self._lock:
            value = self._entries.pop(key, _MISSING)
            if value is _MISSING:
                return None
            self._total -= 1 if self._weight is None else self._weight(key, value)  # type: ignore[arg-type]
            return value  # type: ignore[return-value]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._total = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries
