"""Upstream documents through the cache: asked for only when stale, parsed only when a caller needs them.

`CachedUpstream` keeps the latest upstream body of each key in one store namespace, with meta `digest`
(sha256 of the body), whatever the fetch keeps for parsing it again (`Fetched.meta`), `etag`,
`last_modified` and `fresh_until`: the upstream's own freshness (`Cache-Control`, `Expires`) when it states
one, else `default_ttl` (the PyPI blueprint's `--index-ttl`); parsed documents are memoized by key and
digest. A stale body is revalidated with its validators (`If-None-Match`, `If-Modified-Since`): a 304 keeps
it. A `no-store` answer is never reused nor revalidated. The PyPI blueprint keeps project pages in it, the
conda one subdir repodata.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from gate.memo import MISSING
from gate.memo import Memo as Bounded
from gate.proxy.cache import Memo
from gate.proxy.decide import upstream_status
from gate.proxy.state import Gate
from gate.sources.failure import Failure, UpstreamError
from gate.sources.http import Fetched, Validators

T = TypeVar("T")
# (validators of the stored body or None, its meta or {}) -> the upstream's answer
Fetch = Callable[[Validators | None, Mapping[str, Any]], Fetched[T]]
FRESH_KEYS = 65_536  # documents whose freshness a process remembers
# (key, stored body, its meta) -> the parsed document
Parse = Callable[[str, bytes, Mapping[str, Any]], T]


class CachedUpstream(Generic[T]):
    """Upstream bodies in `state.store` under `namespace`, counted in the metrics as cache `namespace`;
    `noun` names a document in errors ("page", "repodata")."""

    def __init__(
        self, state: Gate, namespace: str, parse: Parse[T], *, noun: str, memo: int, memo_bytes: int | None = None,
        default_ttl: float = 0.0,
    ) -> None:
        self.state = state
        self.default_ttl = default_ttl  # seconds a body is fresh when the upstream says nothing about it
        self.clock: Callable[[], float] = time.time  # what `fresh_until` is measured by (tests move it)
        self.namespace = namespace
        self.noun = noun
        self._parse = parse
        self._memo: Memo[T] = Memo(memo, memo_bytes)  # parsed documents, weighed by the bytes parsed
        # key -> (digest, fresh_until) as this process last read or wrote them: a fresh body is known without
        # reading the store (another worker cannot have replaced it before then: nobody asks upstream sooner)
        self._fresh: Bounded[str, tuple[str, float]] = Bounded(FRESH_KEYS)

    def digest(self, key: str, fetch: Fetch[T]) -> str:
        """The digest of the current upstream body of `key`, asking upstream (conditionally) only when the
        stored one is stale; a new body is stored and its parsed document memoized."""
        state, namespace = self.state, self.namespace
        found, meta = self._lookup(key)
        if found is not None:
            state.metrics.inc("gate_cache_hits_total", cache=namespace)
            return found
        state.metrics.inc("gate_cache_misses_total", cache=namespace)
        validators = None  # never revalidated with the validators of a body the upstream said not to store
        if meta is not None and not meta.get("no_store"):
            validators = Validators(meta.get("etag"), meta.get("last_modified"))
        try:
            fetched = fetch(validators, meta or {})
        except UpstreamError as err:
            state.metrics.inc("gate_upstream_requests_total", outcome=str(upstream_status(err)))
            raise
        state.metrics.observe("gate_upstream_seconds", fetched.latency)
        state.metrics.inc("gate_upstream_requests_total", outcome="304" if fetched.page is None else "200")
        stated = fetched.max_age
        fresh_until = 0.0 if fetched.no_store else self.clock() + (self.default_ttl if stated is None else stated)
        if fetched.page is None and meta is not None:
            kept = {**meta, "etag": fetched.validators.etag, "last_modified": fetched.validators.last_modified}
            state.store.update_meta(namespace, key, {**kept, "fresh_until": fresh_until}, None)
            self._fresh.put(key, (str(meta["digest"]), fresh_until))
            return str(meta["digest"])
        if fetched.page is None:  # a 304 to a request without validators: not a usable answer
            raise UpstreamError(f"upstream answered 304 for {key} without being asked conditionally")
        digest = hashlib.sha256(fetched.body).hexdigest()
        unchanged = meta is not None and meta.get("digest") == digest  # an upstream without validators
        meta = {
            "digest": digest,
            **fetched.meta,
            "etag": fetched.validators.etag,
            "last_modified": fetched.validators.last_modified,
            "fresh_until": fresh_until,
            "no_store": fetched.no_store,
        }
        if unchanged:
            state.store.update_meta(namespace, key, meta, None)  # the stored body is this one
        else:
            state.store.put(namespace, key, fetched.body, meta)
        self._memo.put(f"{key}\n{digest}", fetched.page, len(fetched.body))
        self._fresh.put(key, (digest, fresh_until))
        return digest

    def fresh(self, key: str) -> str | None:
        """The digest of the stored body of `key` while it is fresh, else None; never asks upstream and counts
        nothing (the caller counts what it serves, or asks `digest()`)."""
        return self._lookup(key)[0]

    def _lookup(self, key: str) -> tuple[str | None, dict[str, Any] | None]:
        """(the digest of the stored body of `key` while it is fresh, else None; its stored meta when read)."""
        known = self._fresh.get(key)
        if known is not MISSING and known[1] > self.clock():
            return known[0], None
        meta = self.state.store.get_meta(self.namespace, key)
        if meta is not None and meta["fresh_until"] > self.clock():
            self._fresh.put(key, (str(meta["digest"]), float(meta["fresh_until"])))
            return str(meta["digest"]), meta
        return None, meta

    def parsed(self, key: str, digest: str) -> T:
        """The document of `key` whose body has `digest` (from `digest()`): memoized, else the stored body
        parsed; a 503 when the store now holds another body (a concurrent update)."""
        document = self._memo.get(f"{key}\n{digest}")
        if document is not None:
            return document
        entry = self.state.store.get(self.namespace, key)
        if entry is None or entry.meta.get("digest") != digest:
            changed = f"the cached {self.noun} of {key} changed while it was read; try again"
            raise UpstreamError(changed, Failure.UNAVAILABLE)
        document = self._parse(key, entry.value, entry.meta)
        self._memo.put(f"{key}\n{digest}", document, len(entry.value))
        return document
