"""The store every part of the proxy keeps fetched and computed things in (`Store`), over one of three
engines (`Backend`): SQLite in the cache directory (the embedded default), Redis or PostgreSQL (shared by
the replicas of a fleet).

Semantics, the same on every engine (tests/fleet/test_store_contract.py holds all three to them):
entries `(namespace, key) -> (value bytes, meta dict, expires)`; `get` returns nothing after `expires` (a Unix
time; None: kept until replaced), `get_meta` returns the meta whether or not it expired (validators for a
conditional request), `update_meta` changes meta and expiry of an existing entry only. Keys are stored as their
sha256 (a key holding a URL with a token keeps no secret in the engine, and two tokens never share an entry).

A broken engine is never fatal and never an allow: an operation that fails is a miss (reads) or a dropped write,
with a log line and `gate_store_errors_total{backend,op}`; after a failure the engine is left alone for
RETRY_AFTER seconds (operations then miss at once, op="skipped"), so a dead or hung engine costs each request
at most one bounded timeout, not one per lookup.

A shared engine is reachable over the network: whoever can write to it could plant a "verified" outcome or a
rendered page. Entries written with a `secret` (required for Redis and PostgreSQL) are sealed: an HMAC-SHA256
over the namespace, the stored key, the value's sha256 and byte length, the meta and the expiry; an entry whose
seal does not match is a miss (op="seal"), so only the replicas holding the secret can put anything in front of a
client. A value is read only after its entry's meta passed the seal, and only when its stored length is the sealed
one (each engine compares the lengths itself: a planted value of another length, say 512 MB, is never transferred
to gate; without a secret, in a local SQLite, a value is read whatever its length).

Leases (`claim`, `lease_until`, `release`: gate.proxy.stores.lease) let one worker of all the workers and replicas
on an engine do a piece of work (fetch or verify one piece of evidence) while the others wait for its outcome: a
claim is atomic on each engine and takes a lease that is absent or has expired. A lease is sealed like an entry;
one that is not gate's, or that claims to last longer than any gate takes one for, is not waited on. A failing
engine coordinates nothing: every claim succeeds (each worker does the work itself).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, TypeVar

from gate.proxy.metrics import Metrics
from gate.redact import redact_text

log = logging.getLogger("gate.proxy.cache")
T = TypeVar("T")
RETRY_AFTER = 5.0  # seconds an engine is left alone after it failed
OP_TIMEOUT = 3.0  # seconds for one operation of a network engine (connect, send, answer)
BYTES_PER_SECOND = 8 << 20  # and one more second per 8 MiB a value moves (conda repodata is hundreds of MB)
LEASES = "lease:"  # the namespace prefix of leases (no entry's namespace starts with it)
MAX_META = 1 << 20  # bytes of the longest meta an engine returns (a longer one, planted, is returned as "")
READS = 3  # tries to read an entry that other writers keep replacing (each a bounded operation)


def budget(size: int, timeout: float = OP_TIMEOUT) -> float:
    """Seconds one operation that moves a value of `size` bytes may take."""
    return timeout + size / BYTES_PER_SECOND

Meta = tuple[str, float | None]  # (meta text, expires) as an engine keeps them


def stored_key(key: str) -> str:
    """How a key is stored: its sha256 (`key` may hold a URL with a token: the digest keeps it out of the engine)."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Entry:
    value: bytes
    meta: dict[str, Any] = field(default_factory=dict)
    expires: float | None = None


class Backend(Protocol):
    """One engine. Each method raises one of `errors` when the engine fails; keys come hashed."""

    name: str  # sqlite, redis, postgresql
    where: str  # shown in logs, health and the status page: never a password
    errors: tuple[type[Exception], ...]

    def read(self, namespace: str, key: str, meta: str, size: int | None) -> bytes | None:
        """The value of the entry whose meta is still `meta`, when it is `size` bytes long (None: any length);
        else None, without transferring a value of another length."""
        ...

    def read_meta(self, namespace: str, key: str) -> Meta | None:
        """The entry's (meta, expires); a meta longer than MAX_META bytes as "" (not transferred: no gate writes
        one, and one planted by whoever writes to the engine could be hundreds of MB)."""
        ...

    def write(self, namespace: str, key: str, value: bytes, meta: str, expires: float | None) -> None: ...

    def write_meta(self, namespace: str, key: str, meta: str, expires: float | None) -> None: ...

    def claim(self, namespace: str, key: str, value: bytes, meta: str, expires: float, *, now: float) -> bool:
        """Atomically write the entry when there is none, or when the one there has no expiry or has expired by
        `now`; whether it was written."""
        ...

    def release(self, namespace: str, key: str, value: bytes) -> None:
        """Delete the entry if its value is still `value`."""
        ...

    def close(self) -> None: ...


class Breaker:
    """Whether an engine may be asked now: after a failure, not for `retry_after` seconds. Counts and logs
    failures (once per trip, not per operation: an outage does not flood the log); `scrub` keeps secrets out."""

    def __init__(self, name: str, where: str, metrics: Metrics | None, scrub: Callable[[str], str],
                 retry_after: float = RETRY_AFTER) -> None:
        self.name, self.where, self.metrics, self.scrub = name, where, metrics, scrub
        self.retry_after = retry_after
        self.failures = 0
        self.error: str | None = None
        self._until = 0.0
        self._lock = threading.Lock()

    @property
    def failing(self) -> bool:
        return self.error is not None

    def closed(self) -> bool:
        """True when the engine may be asked; else counts the skipped operation."""
        if self._until <= time.monotonic():
            return True
        self.count("skipped")
        return False

    def count(self, op: str) -> None:
        if self.metrics is not None:
            self.metrics.inc("gate_store_errors_total", backend=self.name, op=op)

    def failed(self, op: str, err: BaseException) -> None:
        text = self.scrub(f"{type(err).__name__}: {err}".strip())
        self.count(op)
        with self._lock:
            self.failures += 1
            tripped = self._until <= time.monotonic()
            self._until = time.monotonic() + self.retry_after
            self.error = text
        if tripped:
            log.warning("%s %s (%s) failed: %s; not asked again for %g s (misses meanwhile)",
                        self.name, op, self.where, text, self.retry_after)

    def succeeded(self) -> None:
        if self.error is not None:
            with self._lock:
                if self.error is not None:
                    log.warning("%s (%s) answers again", self.name, self.where)
                self.error = None


def scrubber(*secrets: str | None) -> Callable[[str], str]:
    """A function that hides `secrets` (passwords from a URL) and URL credentials in a text."""
    hidden = [s for s in secrets if s]

    def scrub(text: str) -> str:
        for secret in hidden:
            text = text.replace(secret, "***")
        return redact_text(text)

    return scrub


class Store:
    """Entries in one engine, with the semantics above (the module docstring)."""

    def __init__(self, backend: Backend, *, metrics: Metrics | None = None, secret: bytes | None = None,
                 scrub: Callable[[str], str] = redact_text, retry_after: float = RETRY_AFTER) -> None:
        self.backend = backend
        self.secret = secret
        self.breaker = Breaker(backend.name, backend.where, metrics, scrub, retry_after)

    def close(self) -> None:
        """Close this thread's connection (a store checked before gunicorn forks keeps nothing open)."""
        try:
            self.backend.close()
        except self.backend.errors as err:
            log.debug("closing %s: %s", self.backend.name, err)

    def health(self) -> dict[str, Any]:
        """The engine, where it is (redacted), and whether its last operation failed."""
        shown: dict[str, Any] = {"backend": self.backend.name, "where": self.backend.where,
                                 "failing": self.breaker.failing}
        if self.breaker.failures:
            shown |= {"errors": self.breaker.failures, "error": self.breaker.error}
        return shown

    def _call(self, op: str, action: Callable[[], T], default: T) -> T:
        if not self.breaker.closed():
            return default
        try:
            result = action()
        except self.backend.errors as err:
            self.breaker.failed(op, err)
            return default
        self.breaker.succeeded()
        return result

    def get(self, namespace: str, key: str, *, now: float | None = None) -> Entry | None:
        """The entry, or None when absent, expired, unreadable or (sealed) not gate's. Its meta first, and its value
        only once the meta passed its seal, and only when the value is as long as sealed (else not transferred). When
        another writer replaced the entry in between, read again (READS times at most, then a miss)."""
        stored = stored_key(key)
        before: Meta | None = None
        for _ in range(READS):
            raw = self._call("get", lambda: self.backend.read_meta(namespace, stored), None)
            if raw is None:
                return None
            text, expires = raw
            if raw == before:  # the same meta, and its value was not of the sealed length
                self._forged(namespace)
                return None
            if expires is not None and expires <= (time.time() if now is None else now):
                return None
            opened = self._open(namespace, stored, text, expires)
            if opened is None:
                return None
            meta, digest, size = opened
            value = self._call("get", partial(self.backend.read, namespace, stored, text, size), None)
            if value is not None:
                if self.secret is not None and not hmac.compare_digest(hashlib.sha256(value).hexdigest(), digest):
                    self._forged(namespace)
                    return None
                return Entry(value, meta, expires)
            if self.breaker.failing:
                return None
            before = raw
        return None

    def put(self, namespace: str, key: str, value: bytes, meta: dict[str, Any] | None = None,
            expires: float | None = None) -> None:
        stored = stored_key(key)
        text = self._seal(namespace, stored, meta or {}, expires, (hashlib.sha256(value).hexdigest(), len(value)))
        self._call("put", lambda: self.backend.write(namespace, stored, value, text, expires), None)

    def update_meta(self, namespace: str, key: str, meta: dict[str, Any], expires: float | None) -> None:
        """Change an entry's meta and expiry without rewriting its value (a 304 revalidation)."""
        stored = stored_key(key)
        sealed = None
        if self.secret is not None:  # the seal covers the value: take its digest and length from the entry's own
            old = self._call("get_meta", lambda: self.backend.read_meta(namespace, stored), None)  # (checked) seal
            opened = None if old is None else self._open(namespace, stored, *old)
            if opened is None:
                return
            sealed = opened[1], opened[2] or 0
        text = self._seal(namespace, stored, meta, expires, sealed)
        self._call("update_meta", lambda: self.backend.write_meta(namespace, stored, text, expires), None)

    def get_meta(self, namespace: str, key: str) -> dict[str, Any] | None:
        """An entry's meta whether or not it has expired (validators for a conditional request)."""
        stored = stored_key(key)
        raw = self._call("get_meta", lambda: self.backend.read_meta(namespace, stored), None)
        opened = None if raw is None else self._open(namespace, stored, *raw)
        return None if opened is None else opened[0]

    # Leases

    def claim(self, namespace: str, key: str, ttl: float, *, now: float | None = None) -> bytes | None:
        """Take the lease on (`namespace`, `key`) for `ttl` seconds: its token when this caller holds it now (to
        `release` when done), None when another holds a live one. A failing engine gives a token (nobody waits)."""
        token = secrets.token_hex(16).encode()
        stored, space = stored_key(key), LEASES + namespace
        start = time.time() if now is None else now
        text = self._seal(space, stored, {}, start + ttl, (hashlib.sha256(token).hexdigest(), len(token)))
        won = self._call("claim", lambda: self.backend.claim(space, stored, token, text, start + ttl, now=start), True)
        return token if won else None

    def lease_until(self, namespace: str, key: str, ttl: float) -> float | None:
        """When the live lease on (`namespace`, `key`) ends (a Unix time), or None: there is none, it expired, it
        is not gate's (its seal), or it claims to last beyond `ttl` seconds from now (no gate takes one that long).
        Read from its meta alone: a lease's value (a token) is no waiter's business, and whoever writes to the
        engine could make it as large as they like."""
        stored, space = stored_key(key), LEASES + namespace
        raw = self._call("get_meta", lambda: self.backend.read_meta(space, stored), None)
        if raw is None:
            return None
        text, expires = raw
        now = time.time()
        if expires is None or expires <= now or self._open(space, stored, text, expires) is None:
            return None
        return None if expires > now + ttl else expires

    def present(self, namespace: str, key: str) -> bool:
        """Whether an entry that has not expired is stored under (`namespace`, `key`) (sealed: gate's), by its meta
        alone, without reading its value (a waiter polls this, and reads the value once it is there)."""
        stored = stored_key(key)
        raw = self._call("get_meta", lambda: self.backend.read_meta(namespace, stored), None)
        if raw is None or (raw[1] is not None and raw[1] <= time.time()):
            return False
        return self._open(namespace, stored, *raw) is not None

    def release(self, namespace: str, key: str, token: bytes) -> None:
        """Give up the lease taken with `token` (a lease another has taken since is left alone)."""
        stored = stored_key(key)
        self._call("release", lambda: self.backend.release(LEASES + namespace, stored, token), None)

    # Seals

    def _mac(self, namespace: str, stored: str, meta: str, expires: float | None, value: tuple[str, int]) -> str:
        """The seal of an entry whose value has (sha256, byte length) `value`."""
        assert self.secret is not None
        parts = (namespace, stored, value[0], str(value[1]), meta, repr(expires))
        message = "\0".join(parts).encode("utf-8", "surrogatepass")
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def _seal(self, namespace: str, stored: str, meta: dict[str, Any], expires: float | None,
              value: tuple[str, int] | None) -> str:
        """The meta text of an entry whose value has (sha256, byte length) `value`: sealed with a secret."""
        text = json.dumps(meta, sort_keys=True)
        if self.secret is None or value is None:
            return text
        mac = self._mac(namespace, stored, text, expires, value)
        return json.dumps({"meta": text, "sha256": value[0], "size": value[1], "seal": mac})

    def _open(self, namespace: str, stored: str, text: str, expires: float | None,
              ) -> tuple[dict[str, Any], str, int | None] | None:
        """(the meta in `text`, the value digest and byte length it is sealed with): unsealed without a secret (no
        digest, any length); with one, only when the seal matches; else counted and None."""
        if self.secret is None:
            meta = _json_object(text)
            if meta is None:
                self.breaker.count("unreadable")
            return None if meta is None else (meta, "", None)
        envelope = _json_object(text) or {}
        inner, digest, size, seal = (envelope.get(k) for k in ("meta", "sha256", "size", "seal"))
        meta = None
        if (
            isinstance(inner, str) and isinstance(digest, str) and isinstance(seal, str)
            and type(size) is int and size >= 0
            and hmac.compare_digest(self._mac(namespace, stored, inner, expires, (digest, size)), seal)
        ):
            meta = _json_object(inner)
        if meta is None or not isinstance(digest, str) or type(size) is not int:
            self._forged(namespace)
            return None
        return meta, digest, size

    def _forged(self, namespace: str) -> None:
        self.breaker.count("seal")
        log.warning("a %s entry in %s failed its seal check: ignored", self.backend.name, namespace)


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None
