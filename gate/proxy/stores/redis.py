"""The Redis engine (redis-py): one hash per entry, `gate:<namespace>:<sha256 of key>` with fields `value`,
`meta` and `expires`. Redis forgets an entry a day after it expired (`GRACE`: its meta stays readable for a
conditional request meanwhile); entries without expiry are kept until replaced, so give Redis a `maxmemory`
with `maxmemory-policy allkeys-lru` (docs/deploy.md). Every operation is bounded by OP_TIMEOUT (connecting,
and each send or receive on the socket: a large value keeps moving), without retries: a dead or hung server is
a miss."""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from gate.proxy.stores.base import MAX_META, OP_TIMEOUT, Meta

PREFIX = "gate:"
GRACE = 86400.0  # seconds past `expires` that Redis keeps an entry (for its meta)

# KEYS[1] the entry, ARGV: meta, expires ("" for none), Unix milliseconds to forget it at ("" for never)
_UPDATE_META = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'meta', ARGV[1], 'expires', ARGV[2])
if ARGV[3] == '' then redis.call('PERSIST', KEYS[1]) else redis.call('PEXPIREAT', KEYS[1], ARGV[3]) end
return 1
"""

# KEYS[1] the entry, ARGV[1] MAX_META: {meta ("" when longer than that: not sent), expires}, or nil
_READ_META = """
if redis.call('HEXISTS', KEYS[1], 'meta') == 0 then return false end
local meta = ''
if redis.call('HSTRLEN', KEYS[1], 'meta') <= tonumber(ARGV[1]) then meta = redis.call('HGET', KEYS[1], 'meta') end
local expires = ''
if redis.call('HSTRLEN', KEYS[1], 'expires') <= 64 then expires = redis.call('HGET', KEYS[1], 'expires') or '' end
return {meta, expires}
"""

# KEYS[1] the entry, ARGV: its meta, its value's length ("" for any): the value when both match, else nil (a
# value of another length is not sent)
_READ = """
if redis.call('HGET', KEYS[1], 'meta') ~= ARGV[1] then return false end
if ARGV[2] ~= '' and redis.call('HSTRLEN', KEYS[1], 'value') ~= tonumber(ARGV[2]) then return false end
return redis.call('HGET', KEYS[1], 'value')
"""

# a lease: KEYS[1] the entry, ARGV: value, meta, expires, now, Unix milliseconds to forget it at; 1 when taken
_CLAIM = """
local held = tonumber(redis.call('HGET', KEYS[1], 'expires') or '')
if held and held > tonumber(ARGV[4]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'value', ARGV[1], 'meta', ARGV[2], 'expires', ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[5])
return 1
"""

# KEYS[1] the entry, ARGV[1] its value: deleted only if it is still that
_RELEASE = """
if redis.call('HGET', KEYS[1], 'value') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _bytes(data: bytes | str) -> bytes:
    return data.encode() if isinstance(data, str) else bytes(data)


def _expires(text: bytes | str | None) -> float | None:
    """An entry's expiry; None for none, or for one that is no number (planted: its seal fails, unless it
    sealed none)."""
    try:
        return float(text) if text else None
    except ValueError:
        return None


class RedisBackend:
    name = "redis"
    errors: tuple[type[Exception], ...] = (redis.RedisError, OSError, ValueError)

    def __init__(self, url: str, where: str, *, timeout: float = OP_TIMEOUT) -> None:
        self.where = where
        self.client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self._read_meta = self.client.register_script(_READ_META)
        self._read = self.client.register_script(_READ)
        self._update_meta = self.client.register_script(_UPDATE_META)
        self._claim = self.client.register_script(_CLAIM)
        self._release = self.client.register_script(_RELEASE)

    def close(self) -> None:
        self.client.connection_pool.disconnect()

    def read(self, namespace: str, key: str, meta: str, size: int | None) -> bytes | None:
        """One script (atomic): the lengths are compared in Redis."""
        value = self._read(keys=[PREFIX + namespace + ":" + key], args=[meta, "" if size is None else str(size)])
        return None if value is None else _bytes(value)

    def read_meta(self, namespace: str, key: str) -> Meta | None:
        """One script: the lengths are compared in Redis (a planted meta or expiry that cannot be read is a miss,
        by its seal, not an engine failure)."""
        found = self._read_meta(keys=[PREFIX + namespace + ":" + key], args=[str(MAX_META)])
        if not found:
            return None
        meta, expires = found
        return _bytes(meta).decode("utf-8", "replace"), _expires(expires)

    def write(self, namespace: str, key: str, value: bytes, meta: str, expires: float | None) -> None:
        name = PREFIX + namespace + ":" + key
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(name, mapping={"value": value, "meta": meta, "expires": "" if expires is None else repr(expires)})
            if expires is None:
                pipe.persist(name)
            else:
                pipe.pexpireat(name, int((expires + GRACE) * 1000))
            pipe.execute()

    def write_meta(self, namespace: str, key: str, meta: str, expires: float | None) -> None:
        forget = "" if expires is None else str(int((expires + GRACE) * 1000))
        self._update_meta(keys=[PREFIX + namespace + ":" + key],
                          args=[meta, "" if expires is None else repr(expires), forget])

    def claim(self, namespace: str, key: str, value: bytes, meta: str, expires: float, *, now: float) -> bool:
        """One script (atomic in Redis); the lease is forgotten when it expires."""
        taken = self._claim(keys=[PREFIX + namespace + ":" + key],
                            args=[value, meta, repr(expires), repr(now), str(int(expires * 1000) + 1)])
        return bool(taken)

    def release(self, namespace: str, key: str, value: bytes) -> None:
        self._release(keys=[PREFIX + namespace + ":" + key], args=[value])
