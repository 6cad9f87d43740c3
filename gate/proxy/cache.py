"""In-process caches of decoded values (`Memo`), and one thread at a time making a value per key (`Flights`).
What is kept across requests, workers and replicas (fetched pages, evidence, verification outcomes, rendered
pages) is in the store: `gate.proxy.stores`."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")


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

    def pop(self, key: str) -> None:
        """Forget `key` (a value no longer valid is not held while its successor is made)."""
        with self._lock:
            old = self._items.pop(key, None)
            self._weight -= old[1] if old else 0


class Flights:
    """One lock per key while some thread holds or waits for it: what is made for a key is made by one thread
    at a time, and the others wait and then find it (each checks again once it holds the key). A thread waits
    at most `wait` seconds, then goes on without the key (a build stuck on a slow upstream holds no other
    request for long)."""

    def __init__(self, wait: float) -> None:
        self.wait = wait
        self._locks: dict[str, tuple[threading.Lock, int]] = {}  # key -> (its lock, threads holding or waiting)
        self._lock = threading.Lock()

    @contextmanager
    def __call__(self, key: str) -> Iterator[None]:
        with self._lock:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        held = lock.acquire(timeout=self.wait)
        try:
            yield
        finally:
            if held:
                lock.release()
            with self._lock:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)
