"""Work done once by all the workers and replicas on one store (`once`): fetching a piece of evidence, verifying
it. The first to claim the lease does the work and stores its outcome; the others wait for that outcome, polling
the store, and use it; when the holder gives up without one, or dies, or the wait reaches the lease's end, they do
the work themselves. The lease only saves work: what is used is always an outcome from the store (sealed when
shared) or one computed here, so a lease (forged, stuck, lost) can delay a request by at most `ttl`, never change
what is decided; one that is not gate's is not waited on at all (`Store.lease_until`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from gate.proxy.metrics import Metrics
from gate.proxy.stores.base import Store

T = TypeVar("T")
FIRST_POLL = 0.005  # seconds before a waiter first looks again (verifying one provenance takes about 10 ms)
MAX_POLL = 0.1  # and at most this long between looks
CLAIMS = 3  # claims lost to a lease not waited on (not gate's, or replaced just then) before working without one


def once(
    store: Store, metrics: Metrics, namespace: str, key: str, *, lookup: Callable[[], T | None],
    compute: Callable[[], T], ttl: float,
) -> T:
    """The outcome stored under (`namespace`, `key`): `lookup()` when it finds it, else `compute()` (which stores
    it) by whichever worker claims the lease first, for at most `ttl` seconds; the others wait for it, `ttl`
    seconds at most in all (a holder that died is waited out, then one of the waiters takes over). Counted as
    `gate_cache_hits_total` (found, here or after a wait) or `gate_cache_misses_total` (computed here), and each
    wait as `gate_lease_waits_total` (outcome `shared`: the holder's was used; `alone`: computed here after all)."""
    found = lookup()
    if found is not None:
        metrics.inc("gate_cache_hits_total", cache=namespace)
        return found
    deadline = time.monotonic() + ttl
    waited, unseen = False, 0
    while (token := store.claim(namespace, key, ttl)) is None and time.monotonic() < deadline:
        found, paused = wait(store, namespace, key, lookup, ttl=ttl, deadline=deadline)
        waited = waited or paused
        unseen = 0 if paused else unseen + 1  # claimed by another, yet no lease to wait on: replaced meanwhile?
        if found is not None or unseen >= CLAIMS:  # an outcome, or a lease that is not waited on
            break
    try:
        if found is None:  # the previous holder may have stored it between the first look and the claim
            found = lookup()
        if waited:
            metrics.inc("gate_lease_waits_total", cache=namespace, outcome="alone" if found is None else "shared")
        if found is not None:
            metrics.inc("gate_cache_hits_total", cache=namespace)
            return found
        metrics.inc("gate_cache_misses_total", cache=namespace)
        return compute()
    finally:
        if token is not None:
            store.release(namespace, key, token)


def wait(
    store: Store, namespace: str, key: str, lookup: Callable[[], T | None], *, ttl: float, deadline: float
) -> tuple[T | None, bool]:
    """The outcome another worker stores while it holds the lease, looked up once it is there or the lease is gone
    (released, expired, or one lasting beyond `ttl` or not gate's: not waited on), or None when the `deadline`
    (monotonic) has come first; and whether this worker paused for it. Each poll reads metas only (the lease's,
    the outcome's): an outcome's value is read when its meta says it is there, not on every poll (whoever writes
    to the engine could plant a large one to be read again and again)."""
    pause, paused = FIRST_POLL, False
    while True:
        until = store.lease_until(namespace, key, ttl)
        if until is None or store.present(namespace, key):  # after the lease was read: a holder stores, then releases
            return lookup(), paused
        left = min(deadline - time.monotonic(), until - time.time())
        if left <= 0:
            return None, paused
        time.sleep(min(pause, left))
        pause, paused = min(pause * 2, MAX_POLL), True
