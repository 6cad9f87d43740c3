"""One contract, three real engines: SQLite, Redis and PostgreSQL stores behave alike (namespaces, expiry,
meta, hashed keys, leases), sealed entries cannot be forged by whoever can write to a shared engine, and a dead
or hung engine is a bounded miss with a log line and a metric, never an exception."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from gate.proxy.metrics import Metrics
from gate.proxy.stores import Store, open_store, stored_key
from gate.proxy.stores.base import LEASES
from gate.proxy.stores.lease import once
from gate.proxy.stores.postgres import CACHE_SCHEMA
from tests.support.backend_process import BackendProcess

from .conftest import SECRET

ENGINES = ["sqlite", "redis", "postgresql"]
StoreFactory = Callable[..., Store]


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def engine_url(engine: str, request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    if engine == "sqlite":
        return None
    server: BackendProcess = request.getfixturevalue("shared_redis" if engine == "redis" else "shared_postgres")
    return server.url


@pytest.fixture
def make_store(engine_url: str | None, tmp_path: Path) -> Iterator[StoreFactory]:
    made: list[Store] = []

    def make(*, secret: bytes | None = SECRET, metrics: Metrics | None = None) -> Store:
        store = open_store(engine_url, tmp_path / "cache.sqlite3", metrics=metrics, secret=secret)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture
def ns() -> str:
    """A namespace of this test's own (the engines are shared by the session)."""
    return f"test.{uuid.uuid4().hex[:12]}"


@pytest.mark.parametrize("secret", [SECRET, None], ids=["sealed", "plain"])
def test_put_get_replace_and_namespaces(make_store: StoreFactory, ns: str, secret: bytes | None) -> None:
    store = make_store(secret=secret)
    assert store.get(ns, "k") is None and store.get_meta(ns, "k") is None
    store.put(ns, "k", b"\x00value\xff", {"etag": "v1", "n": 1})
    entry = store.get(ns, "k")
    assert entry is not None and entry.value == b"\x00value\xff" and entry.meta == {"etag": "v1", "n": 1}
    assert entry.expires is None
    assert store.get(ns + ".other", "k") is None  # namespaces are apart
    store.put(ns, "k", b"second", None, 4102444800.5)
    entry = store.get(ns, "k")
    assert entry is not None and entry.value == b"second" and entry.meta == {} and entry.expires == 4102444800.5
    store.put(ns, "empty", b"")
    assert (empty := store.get(ns, "empty")) is not None and empty.value == b""


@pytest.mark.parametrize("secret", [SECRET, None], ids=["sealed", "plain"])
def test_expiry_and_meta_updates(make_store: StoreFactory, ns: str, secret: bytes | None) -> None:
    store = make_store(secret=secret)
    now = time.time()
    store.put(ns, "page", b"body", {"etag": "a"}, now - 1)
    assert store.get(ns, "page") is None  # expired: not returned
    assert store.get(ns, "page", now=now - 10) is not None  # as of a time before it expired
    assert store.get_meta(ns, "page") == {"etag": "a"}  # but its validators are (a conditional request)
    store.update_meta(ns, "page", {"etag": "a", "fresh_until": 5}, now + 3600)  # a 304: fresh again
    entry = store.get(ns, "page")
    assert entry is not None and entry.value == b"body" and entry.meta == {"etag": "a", "fresh_until": 5}
    assert entry.expires == now + 3600
    store.update_meta(ns, "page", {"etag": "b"}, None)
    assert (entry := store.get(ns, "page")) is not None and entry.expires is None and entry.meta == {"etag": "b"}
    store.update_meta(ns, "absent", {"etag": "x"}, None)  # only an existing entry is updated
    assert store.get(ns, "absent") is None and store.get_meta(ns, "absent") is None


def raw_contents(engine: str, url: str | None, tmp_path: Path) -> bytes:
    """Everything the engine holds, as bytes (to look for what must not be there)."""
    if engine == "sqlite":
        return b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    if engine == "redis":
        assert url is not None
        client = redis.Redis.from_url(url)
        held = [str(k).encode() + repr(client.hgetall(k)).encode() for k in client.keys("*")]
        return b"".join(held)
    assert url is not None
    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT namespace, key, value, meta FROM gate_cache").fetchall()
    return b"".join(n.encode() + k.encode() + bytes(v) + m.encode() for n, k, v, m in rows)


def test_keys_are_stored_hashed(
    make_store: StoreFactory, ns: str, engine: str, engine_url: str | None, tmp_path: Path
) -> None:
    store = make_store()
    first, second = "https://conda.example/t/TOKEN-A1/ch/noarch", "https://conda.example/t/TOKEN-B2/ch/noarch"
    store.put(ns, first, b"what A may see")
    store.put(ns, second, b"what B may see")
    assert (entry := store.get(ns, first)) is not None and entry.value == b"what A may see"
    assert (entry := store.get(ns, second)) is not None and entry.value == b"what B may see"
    held = raw_contents(engine, engine_url, tmp_path)
    assert stored_key(first).encode() in held
    assert b"TOKEN-A1" not in held and b"TOKEN-B2" not in held


def forge(engine: str, url: str | None, tmp_path: Path, *, ns: str, key: str, value: bytes, meta: str,
          expires: float | None = None) -> None:
    """Write an entry straight into the engine, as anyone with access to a shared engine could."""
    stored = stored_key(key)
    if engine == "sqlite":
        store = open_store(None, tmp_path / "cache.sqlite3")
        store.backend.write(ns, stored, value, meta, expires)
        store.close()
    elif engine == "redis":
        assert url is not None
        shown = "" if expires is None else repr(expires)
        redis.Redis.from_url(url).hset(f"gate:{ns}:{stored}", mapping={"value": value, "meta": meta, "expires": shown})
    else:
        assert url is not None
        with psycopg.connect(url) as connection:
            connection.execute(CACHE_SCHEMA)  # when no store made it yet (this test alone)
            connection.execute(
                "INSERT INTO gate_cache VALUES (%s, %s, %s, %s, %s) ON CONFLICT (namespace, key) DO UPDATE "
                "SET value = EXCLUDED.value, meta = EXCLUDED.meta, expires = EXCLUDED.expires",
                (ns, stored, value, meta, expires))


def test_a_forged_or_altered_entry_is_a_miss(
    make_store: StoreFactory, ns: str, engine: str, engine_url: str | None, tmp_path: Path
) -> None:
    metrics = Metrics()
    store = make_store(metrics=metrics)
    forge(engine, engine_url, tmp_path, ns=ns, key="verified", value=b'[{"verified": true}]', meta="{}")  # unsealed
    assert store.get(ns, "verified") is None and store.get_meta(ns, "verified") is None
    store.put(ns, "page", b"the page gate rendered", {"etag": "x"})
    sealed = store.backend.read_meta(ns, stored_key("page"))
    assert sealed is not None
    # the value swapped under a genuine seal (of the same length, or not), or the seal moved to another key: misses
    forge(engine, engine_url, tmp_path, ns=ns, key="page", value=b"a page listing denied file", meta=sealed[0])
    assert store.get(ns, "page") is None
    forge(engine, engine_url, tmp_path, ns=ns, key="page", value=b"a page listing denied files", meta=sealed[0])
    assert store.get(ns, "page") is None
    forge(engine, engine_url, tmp_path, ns=ns, key="other", value=b"the page gate rendered", meta=sealed[0])
    assert store.get(ns, "other") is None
    # a revalidation does not bless a forged entry
    store.update_meta(ns, "page", {"etag": "y"}, None)
    assert store.get(ns, "page") is None
    assert f'gate_store_errors_total{{backend="{store.backend.name}",op="seal"}}' in metrics.render()
    # another secret (another fleet) sees nothing either
    store.put(ns, "mine", b"value")
    assert make_store(secret=b"another-secret-0123456789abcdef!").get(ns, "mine") is None


PLANTED = 64 << 20  # bytes of a value planted by whoever writes to the engine without the secret


def peak_of(action: Callable[[], object]) -> tuple[object, int]:
    """What `action` returns, and the peak of the memory this process allocated meanwhile (bytes)."""
    tracemalloc.start()
    try:
        return action(), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("planted", ["larger", "smaller", "unsealed"])
def test_a_planted_value_of_another_length_is_a_miss_and_is_not_read(
    make_store: StoreFactory, ns: str, engine: str, engine_url: str | None, tmp_path: Path, *, planted: str
) -> None:
    """A large value planted under a genuine seal of a value of another length (larger or smaller than sealed), or
    under a meta without a seal, is a miss that never reaches gate: the engine compares the lengths (Store.get
    read such a value whole, tens or hundreds of MB, before its seal rejected it)."""
    metrics = Metrics()
    store = make_store(metrics=metrics)
    meta = "{}"
    if planted != "unsealed":
        store.put(ns, "page", b"the page gate rendered" if planted == "larger" else b"p" * (PLANTED + 4096))
        sealed = store.backend.read_meta(ns, stored_key("page"))
        assert sealed is not None
        meta = sealed[0]
    forge(engine, engine_url, tmp_path, ns=ns, key="page", value=b"x" * PLANTED, meta=meta)
    found, peak = peak_of(lambda: store.get(ns, "page"))
    assert found is None
    assert peak < 8 << 20, f"{peak} bytes allocated to read a planted entry"
    assert f'gate_store_errors_total{{backend="{store.backend.name}",op="seal"}}' in metrics.render()
    assert not store.breaker.failing
    store.put(ns, "page", b"the page gate rendered")  # and gate's own entry there is read as ever
    assert (entry := store.get(ns, "page")) is not None and entry.value == b"the page gate rendered"


@pytest.mark.parametrize("secret", [SECRET, None], ids=["sealed", "plain"])
def test_a_planted_meta_or_expiry_too_long_or_unreadable_is_a_miss_and_is_not_read(
    make_store: StoreFactory, ns: str, engine: str, engine_url: str | None, tmp_path: Path, *, secret: bytes | None
) -> None:
    """A meta of tens of MB planted in the engine is not transferred either (every read starts with the meta), and a
    planted meta or expiry gate cannot decode is a miss, not an engine failure (which would leave the engine alone
    for seconds: every lookup a miss)."""
    metrics = Metrics()
    store = make_store(metrics=metrics, secret=secret)
    forge(engine, engine_url, tmp_path, ns=ns, key="page", value=b"v", meta='{"k": "' + "x" * PLANTED + '"}')
    for read in (lambda: store.get(ns, "page"), lambda: store.get_meta(ns, "page"),
                 lambda: store.present(ns, "page") or None):
        found, peak = peak_of(read)
        assert found is None
        assert peak < 8 << 20, f"{peak} bytes allocated to read a planted meta"
    if engine == "redis":  # the only engine whose fields are untyped bytes
        assert engine_url is not None
        client = redis.Redis.from_url(engine_url)
        client.hset(f"gate:{ns}:{stored_key('bad')}", mapping={"value": b"v", "meta": b"\xff{}", "expires": "soon"})
        assert store.get(ns, "bad") is None and store.get_meta(ns, "bad") is None
    assert not store.breaker.failing and "op=\"get" not in metrics.render()


def test_an_entry_sealed_without_its_length_is_a_miss(
    make_store: StoreFactory, ns: str, engine: str, engine_url: str | None, tmp_path: Path
) -> None:
    """An entry sealed as the previous gate sealed them (digest, no length; the right secret) is a miss."""
    metrics = Metrics()
    store = make_store(metrics=metrics)
    value, inner, stored = b"the page", json.dumps({"etag": "x"}), stored_key("page")
    digest = hashlib.sha256(value).hexdigest()
    message = "\0".join((ns, stored, digest, inner, repr(None))).encode()
    seal = hmac.new(SECRET, message, hashlib.sha256).hexdigest()
    meta = json.dumps({"meta": inner, "sha256": digest, "seal": seal})
    forge(engine, engine_url, tmp_path, ns=ns, key="page", value=value, meta=meta)
    assert store.get(ns, "page") is None and store.get_meta(ns, "page") is None
    assert f'gate_store_errors_total{{backend="{store.backend.name}",op="seal"}}' in metrics.render()


@pytest.mark.parametrize("engine", ["redis", "postgresql"])
@pytest.mark.parametrize("how", ["kill", "pause"])
def test_a_dead_or_hung_engine_is_a_bounded_miss(
    engine: str, how: str, request: pytest.FixtureRequest, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server: BackendProcess = request.getfixturevalue("own_redis" if engine == "redis" else "own_postgres")
    metrics = Metrics()
    store = open_store(server.url, None, metrics=metrics, secret=SECRET)
    store.put("ns", "k", b"v")
    assert store.get("ns", "k") is not None
    server.kill() if how == "kill" else server.pause()
    try:
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="gate.proxy.cache"):
            for _ in range(20):
                assert store.get("ns", "k") is None  # a miss, never an exception
                store.put("ns", "k", b"v2")  # dropped
                assert store.get_meta("ns", "k") is None
                assert store.claim("ns", "k", 30) is not None  # nobody to coordinate with: go ahead
                assert store.lease_until("ns", "k", 30) is None  # and wait for nobody
        elapsed = time.monotonic() - started
        assert elapsed < 60, elapsed  # hang detection only: one bounded timeout, then skipped at once
        rendered = metrics.render()
        assert f'gate_store_errors_total{{backend="{store.backend.name}",op="get"}} 1' in rendered
        assert f'gate_store_errors_total{{backend="{store.backend.name}",op="skipped"}} 99' in rendered
        warnings = [r.getMessage() for r in caplog.records if r.name == "gate.proxy.cache"]
        assert len(warnings) == 1 and "not asked again" in warnings[0], warnings
        health = store.health()
        assert health["failing"] and health["errors"] == 1
        shown = " ".join([*warnings, str(health)])
        assert server.password not in shown and server.password not in store.backend.where
    finally:
        server.resume()
        store.close()


def test_a_large_value_round_trips(make_store: StoreFactory, ns: str) -> None:
    """A value of tens of MB (a conda repodata) is written and read within its size's deadline, not cut at the
    few seconds a small operation gets."""
    store = make_store()
    value = bytes(range(256)) * (48 << 12)  # 48 MiB
    store.put(ns, "repodata", value, {"etag": "big"})
    entry = store.get(ns, "repodata")
    assert entry is not None and entry.value == value and not store.breaker.failing


# Leases (gate.proxy.stores.lease): one worker of all on an engine does a piece of work, the others wait for it


def test_a_lease_is_held_by_one_at_a_time(make_store: StoreFactory, ns: str) -> None:
    mine, other = make_store(), make_store()  # two workers on one engine
    token = mine.claim(ns, "work", 30)
    assert token is not None
    assert other.claim(ns, "work", 30) is None  # held
    until = other.lease_until(ns, "work", 30)
    assert until is not None and time.time() < until <= time.time() + 30
    assert other.lease_until(ns, "work", 5) is None  # it lasts longer than the caller would ever wait: not waited on
    assert other.get(ns, "work") is None  # leases are apart from entries, and entries from leases
    other.put(ns, "work", b"outcome")
    assert other.claim(ns, "work", 30) is None
    other.release(ns, "work", b"another holder's token")  # only the holder releases
    assert other.claim(ns, "work", 30) is None
    mine.release(ns, "work", token)
    assert other.lease_until(ns, "work", 30) is None
    taken = other.claim(ns, "work", 30)
    assert taken is not None and mine.claim(ns, "work", 30) is None
    other.release(ns, "work", taken)
    # a lease that expired (its holder died) is taken over; the dead holder's late release leaves the new one be
    dead = mine.claim(ns, "short", 0.2)
    assert dead is not None
    time.sleep(0.3)
    assert other.lease_until(ns, "short", 30) is None
    assert other.claim(ns, "short", 30) is not None
    mine.release(ns, "short", dead)
    assert mine.claim(ns, "short", 30) is None


def test_one_claim_of_many_at_once_wins(make_store: StoreFactory, ns: str) -> None:
    stores = [make_store() for _ in range(6)]
    keys = [f"work-{i}" for i in range(10)]
    won: list[tuple[str, int]] = []
    start = threading.Barrier(len(stores))

    def worker(number: int) -> None:
        start.wait()
        won.extend((key, number) for key in keys if stores[number].claim(ns, key, 30) is not None)
        stores[number].close()  # this thread's connection

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(key for key, _ in won) == keys, won  # each key claimed exactly once


@pytest.fixture
def forge_lease(engine: str, engine_url: str | None, tmp_path: Path, ns: str) -> Callable[[str, float | None], None]:
    """Write a lease on key (in `ns`) with an expiry straight into the engine: unsealed, as an intruder could."""

    def write(key: str, expires: float | None) -> None:
        forge(engine, engine_url, tmp_path, ns=LEASES + ns, key=key, value=b"x", meta="{}", expires=expires)

    return write


def test_a_lease_that_is_not_gates_is_not_waited_on(
    make_store: StoreFactory, ns: str, forge_lease: Callable[[str, float | None], None]
) -> None:
    store = make_store()
    later = time.time() + 3600
    forge_lease("forged", later)
    assert store.claim(ns, "forged", 30) is None  # the engine holds it for an hour ...
    assert store.lease_until(ns, "forged", 30) is None  # ... but it fails its seal: nobody waits on it
    forge_lease("endless", None)
    assert store.claim(ns, "endless", 30) is not None  # a lease without an end is taken over
    sealed = make_store(secret=None)  # without a secret a lease is anyone's, but one gate would never take is ignored
    forge_lease("long", later)
    assert sealed.lease_until(ns, "long", 30) is None


def run_workers(stores: list[Store], ns: str, metrics: Metrics) -> tuple[list[int], list[bytes]]:
    """Each store's worker (a thread) asks `once` for one outcome at the same moment: which computed it, and what
    each got."""
    computed: list[int] = []
    results: list[bytes] = []
    start = threading.Barrier(len(stores))

    def worker(number: int) -> None:
        store = stores[number]

        def compute() -> bytes:
            computed.append(number)
            time.sleep(0.3)  # long enough for the others to arrive and wait
            store.put(ns, "outcome", f"by {number}".encode())
            return f"by {number}".encode()

        def lookup() -> bytes | None:
            return None if (entry := store.get(ns, "outcome")) is None else entry.value

        start.wait()
        results.append(once(store, metrics, ns, "outcome", lookup=lookup, compute=compute, ttl=30))
        store.close()  # this thread's connection

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return computed, results


@pytest.mark.parametrize("holder", ["none", "dead"])
def test_once_across_workers(make_store: StoreFactory, ns: str, holder: str) -> None:
    """Six workers ask for one outcome at once: one computes it, the others wait and use the stored outcome; also
    when a worker that died holds the lease (they wait it out, then one of them takes over)."""
    metrics = Metrics()
    stores = [make_store(metrics=metrics) for _ in range(6)]
    if holder == "dead":
        assert make_store().claim(ns, "outcome", 1.0) is not None  # and never released
    computed, results = run_workers(stores, ns, metrics)
    assert len(computed) == 1 and results == [f"by {computed[0]}".encode()] * len(stores)
    rendered = metrics.render()
    assert f'gate_cache_misses_total{{cache="{ns}"}} 1' in rendered
    assert f'gate_cache_hits_total{{cache="{ns}"}} 5' in rendered
    alone = f'gate_lease_waits_total{{cache="{ns}",outcome="alone"}}'
    assert (f"{alone} 1" in rendered) if holder == "dead" else (alone not in rendered), rendered


@pytest.mark.parametrize("holder", ["dead", "forged", "failed"])
def test_once_when_the_holder_gives_nothing(
    make_store: StoreFactory, ns: str, holder: str, forge_lease: Callable[[str, float | None], None]
) -> None:
    """A holder that died is waited out until its lease ends; a lease that is not gate's is not waited on; a
    holder that gave up (its work raised) releases its lease at once. Each time the waiter computes the outcome
    itself."""
    metrics = Metrics()
    store = make_store(metrics=metrics)
    if holder == "dead":
        assert make_store().claim(ns, "k", 1.0) is not None  # and never released
    elif holder == "forged":
        forge_lease("k", time.time() + 3600)
    else:
        def fail() -> bytes:
            raise RuntimeError("upstream failed")

        with pytest.raises(RuntimeError):
            once(make_store(), Metrics(), ns, "k", lookup=lambda: None, compute=fail, ttl=30)
    outcome = once(store, metrics, ns, "k", lookup=lambda: None, compute=lambda: b"computed here", ttl=30)
    assert outcome == b"computed here"
    rendered = metrics.render()
    assert f'gate_cache_misses_total{{cache="{ns}"}} 1' in rendered
    waited = f'gate_lease_waits_total{{cache="{ns}",outcome="alone"}} 1' in rendered
    assert waited == (holder == "dead"), rendered


def test_present_answers_from_the_meta_whether_an_outcome_is_there(
    make_store: StoreFactory, ns: str, engine: str, engine_url: str | None, tmp_path: Path
) -> None:
    """What a lease's waiter polls (`Store.present`, without reading the value): a live entry of gate's is there; an
    absent, expired or forged one is not."""
    store = make_store()
    assert not store.present(ns, "outcome")
    store.put(ns, "outcome", b"value", {"k": 1})
    assert store.present(ns, "outcome")
    store.put(ns, "gone", b"value", {}, time.time() - 1)
    assert not store.present(ns, "gone")
    forge(engine, engine_url, tmp_path, ns=ns, key="forged", value=b"x" * 1024, meta="{}")
    assert not store.present(ns, "forged")  # its seal fails
    assert make_store(secret=None).present(ns, "forged")  # without a secret anything stored is there
