"""Red-team findings against the cold `repodata.json` answered as it is written (`gate.proxy.conda_body.Writing`):
what a failure while keeping it does to the server, outcomes a streamed body does not fit, one body under two
ETags; and a real `gate serve` whose clients cut their connections mid-body or ask with HEAD."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from flask import Flask
from werkzeug.serving import make_server

from gate.decision import Verdict
from gate.evaluate import Evaluator, unidentified
from gate.facts import Facts, Unidentified
from gate.gather.conda import record_facts
from gate.policy.compile import load_policies
from gate.proxy import state as state_module
from gate.proxy.conda import FILTERED, JUDGED, UPSTREAM, CondaChannels
from gate.proxy.conda_routes import SERVICE, conda_blueprint
from gate.proxy.stores.base import Store
from gate.sources import conda_index
from gate.sources.conda_channel import KNOWN_KEYS, parse_repodata
from tests.proxy.conda.test_repodata_scale import _channel_body
from tests.support.conda_policies import policy_document, write_policies
from tests.support.conda_reference import encode, served_repodata, unique_records
from tests.support.conda_server import ChannelServer
from tests.support.gate_app import gate_app
from tests.support.gate_server import running_gate

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
NOW_MS = int(NOW.timestamp() * 1000)
DAY_MS = 86_400_000
AGE = policy_document("age", ecosystems=["conda"], minimumAge="7d")
WAIVED = policy_document("waived", ecosystems=["conda"], minimumAge="7d", exceptions=[
    {"packages": ["young"], "waive": ["minimumAge"], "reason": "hotfix", "expires": "2026-12-01"}])
CHANNEL = "hostile"
PATH = f"/conda/{CHANNEL}/noarch/repodata.json"
HANG = 120.0  # seconds after which a request to the real server is taken to hang


def _record(name: str, timestamp: int, build: str = "0") -> dict[str, Any]:
    return {"name": name, "version": "1.0", "build": build, "sha256": "ab" * 32, "size": 10, "subdir": "noarch",
            "timestamp": timestamp}


def _channel(tmp_path: Path, records: dict[str, Any], subdirs: tuple[str, ...] = ("noarch",)) -> Path:
    """A channel whose `subdirs` each list `records` (compact JSON), under `tmp_path/channel`."""
    for subdir in subdirs:
        (tmp_path / "channel" / subdir).mkdir(parents=True)
        body = encode({"info": {"subdir": subdir}, "packages.conda": records})
        (tmp_path / "channel" / subdir / "repodata.json").write_bytes(body)
    return tmp_path / "channel"


def _app(tmp_path: Path, url: str, *policies: dict[str, Any], clock: Any = lambda: NOW, **settings: Any) -> Flask:
    """The conda app (one process's memory) with its cache under `tmp_path`; `settings` are further Settings."""
    directory = write_policies(tmp_path / "policies", *policies)
    return gate_app(directory, cache_dir=tmp_path / "cache", clock=clock,
                    blueprints=(conda_blueprint({CHANNEL: url}),), **settings)


def _young_and_old() -> dict[str, Any]:
    records = {f"p{i}-1.0-0.conda": _record(f"p{i}", NOW_MS - 30 * DAY_MS) for i in range(20)}
    records["young-1.0-0.conda"] = _record("young", NOW_MS - 7 * DAY_MS + 1)  # of age 1 ms after NOW
    return records


class KeepingError(Exception):
    """What the fake store below raises."""


def _failing_keeps(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fake for what cannot be made to happen here: keeping a filtered body raises out of the store (the
    engines' own errors are caught by its breaker; this stands for anything else, a MemoryError dumping the
    outcomes, a bug). Upstream bodies are still stored."""
    put = store.put

    def failing(namespace: str, key: str, value: bytes, meta: dict[str, Any] | None = None,
                expires: float | None = None) -> None:
        if namespace in (FILTERED, JUDGED):
            raise KeepingError(namespace)
        put(namespace, key, value, meta, expires)

    monkeypatch.setattr(store, "put", failing)


# -- keeping the body fails ----------------------------------------------------------------------------------


def test_a_body_that_cannot_be_kept_is_still_served_whole_and_frees_its_slot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Keeping a cold body runs after its last byte (`done`), from the iteration or from `close()`. What it
    raised came out of the WSGI iterable: a client that had every byte saw the connection fail, and out of a
    HEAD's or a cut connection's `close()` it skipped the response's other close callbacks, so the request's
    upstream slot was never given back: with `--upstream-slots 1`, every later request was `503 busy`."""
    records = _young_and_old()
    with ChannelServer(_channel(tmp_path, records)) as server:
        app = _app(tmp_path, server.url, AGE, upstream_slots=1)
        state = app.extensions[SERVICE].state
        _failing_keeps(state.store, monkeypatch)
        client = app.test_client()
        head = client.head(PATH)  # raised KeepingError out of close(), and kept the slot
        assert head.status_code == 200 and int(head.headers["Content-Length"]) > 0
        assert state.slots is not None and state.slots.acquire(blocking=False)
        state.slots.release()
        app = _app(tmp_path, server.url, AGE, upstream_slots=1)  # another process: nothing of it in memory
        _failing_keeps(app.extensions[SERVICE].state.store, monkeypatch)
        response = app.test_client().get(PATH)  # raised KeepingError after the last byte
    expected = {k: v for k, v in records.items() if not k.startswith("young")}
    assert response.status_code == 200 and json.loads(response.data)["packages.conda"] == expected


def test_a_cold_request_naming_the_bodys_etag_is_304_even_when_it_cannot_be_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ETag is known before the body is written, so a client whose cache holds the body (from another
    worker, another replica) gets a 304 on a cold request; the body is written whole first and kept. What
    keeping it raised made that a 500."""
    with ChannelServer(_channel(tmp_path, _young_and_old())) as server:
        etag = _app(tmp_path / "a", server.url, AGE).test_client().get(PATH).headers["ETag"]
        app = _app(tmp_path / "b", server.url, AGE)
        _failing_keeps(app.extensions[SERVICE].state.store, monkeypatch)
        response = app.test_client().get(PATH, headers={"If-None-Match": etag})
    assert response.status_code == 304 and response.headers["ETag"] == etag


# -- outcomes a streamed body does not fit ------------------------------------------------------------------


def _memo(app: Flask) -> tuple[CondaChannels, str]:
    service: CondaChannels = app.extensions[SERVICE]
    client = service.clients[CHANNEL]
    key = "|".join((client.subdir_url("noarch"), service.state.view_digest))
    meta = service.state.store.get_meta(UPSTREAM, client.subdir_url("noarch"))
    assert meta is not None
    return service, f"{key}\n{meta['digest']}"


def test_outcomes_in_memory_that_a_streamed_body_does_not_fit_are_not_used_again(tmp_path: Path) -> None:
    """A rebuild streams from this process's own outcomes without checking them first (they fit the body they
    were written from). When they do not fit (damaged: a bug, a stray write), the client gets a body cut short
    of its Content-Length (the test client raises what the server saw), and nothing is kept; but the outcomes
    stayed in memory, so every later request for the subdir failed the same way until they were evicted. Now
    the next request checks the stored outcomes, or judges afresh, and is served whole."""
    records = _young_and_old()
    moment = [NOW]
    with ChannelServer(_channel(tmp_path, records)) as server:
        app = _app(tmp_path, server.url, AGE, clock=lambda: moment[0])
        client = app.test_client()
        assert "young-1.0-0.conda" not in json.loads(client.get(PATH).data)["packages.conda"]
        service, memo = _memo(app)
        judged = service._judged.get(memo)
        assert judged is not None
        judged.lengths[0] += 7  # outcomes that no longer add up to the body
        moment[0] = NOW + dt.timedelta(milliseconds=1)  # `young` comes of age: a rebuild from memory
        with pytest.raises(RuntimeError, match="announced"):
            client.get(PATH)
        healed = client.get(PATH)
    assert healed.status_code == 200 and json.loads(healed.data)["packages.conda"] == records


def _decisions(client: Any) -> float:
    """How many records the repodata builds of this process have judged (each decision counted when made)."""
    metrics = client.get("/-/metrics").get_data(as_text=True)
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith("gate_decisions_total{") and 'event="repodata"' in line)


def test_a_request_while_the_cold_body_is_still_read_does_not_judge_the_subdir_again(tmp_path: Path) -> None:
    """A cold body is kept when its client has read it (nearly) all: the outcomes it is written from were kept
    only then too, so every request for the subdir while that client was still reading (a slow link, or a
    client reading one byte a minute for as long as it likes) judged every record again, where before the
    body was answered only once judged and kept. The outcomes are now kept as soon as they are judged."""
    records = _many(12_000)
    with ChannelServer(_channel(tmp_path, records)) as server:
        client = _app(tmp_path, server.url, AGE).test_client()
        reading = client.get(PATH, buffered=False)  # its client has read its first piece (a MiB)
        assert int(reading.headers["Content-Length"]) > 2 << 20
        judged = _decisions(client)
        assert judged == len(records)
        second = client.get(PATH)
        assert _decisions(client) == judged  # judged the whole subdir again
        first = reading.get_data()
        reading.close()
    assert first == second.data and reading.headers["ETag"] == second.headers["ETag"]
    expected = {k: v for k, v in records.items() if not k.startswith("young")}
    assert json.loads(first)["packages.conda"] == expected


def _many(count: int, *, version: str = "1.0") -> dict[str, Any]:
    """`count` old records and a young one: a body of more than one piece (a MiB) when `count` is 12,000."""
    records = {f"p{i}-{version}-{i}.conda": _record(f"p{i}", NOW_MS - 30 * DAY_MS, str(i)) | {"version": version}
               for i in range(count)}
    records["young-1.0-0.conda"] = _record("young", NOW_MS - DAY_MS)
    return records


def test_a_body_read_while_upstream_changed_is_not_kept_over_the_newer_one(tmp_path: Path) -> None:
    """A cold body is kept when its client has read it: one a slow client read while upstream changed, and a
    newer body was written and kept, was kept after it, over it (the filtered body and the outcomes in the
    store, named by the older upstream body), so every other worker judged every record of the newer body
    again."""
    old_records, new_records = _many(12_000), _many(12_000, version="2.0")
    channel = _channel(tmp_path, old_records)
    with ChannelServer(channel) as server:
        client = _app(tmp_path, server.url, AGE).test_client()
        slow = client.get(PATH, buffered=False)  # its client has read its first piece
        (channel / "noarch" / "repodata.json").write_bytes(encode({"info": {"subdir": "noarch"},
                                                                   "packages.conda": new_records}))
        newer = client.get(PATH)
        slow_body = slow.get_data()
        slow.close()
        other = _app(tmp_path, server.url, AGE).test_client()  # another worker on the same store
        served = other.get(PATH)
        judged_by_other = _decisions(other)
    assert json.loads(slow_body)["packages.conda"] == {k: v for k, v in old_records.items() if "young" not in k}
    assert served.data == newer.data and served.headers["ETag"] == newer.headers["ETag"]
    assert judged_by_other == 0  # read what the store kept: the newer body


@contextmanager
def _wsgi_served(app: Flask) -> Iterator[str]:
    """`app` behind werkzeug's threaded WSGI server on a free loopback port (in this process, so that its memory
    can be damaged), stopped after; its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_streamed_body_that_fails_never_reaches_a_client_as_whole_and_the_next_request_heals(
    tmp_path: Path,
) -> None:
    """Over a real HTTP connection: a rebuild streamed from outcomes that do not fit the body sends its first
    pieces under the Content-Length the outcomes announce, then stops short of it (the connection ends): no
    client takes it for the whole body. The next request is served whole."""
    records = _many(12_000)
    moment = [NOW]
    with ChannelServer(_channel(tmp_path, records)) as server:
        app = _app(tmp_path, server.url, AGE, clock=lambda: moment[0])
        with _wsgi_served(app) as url:
            assert requests.get(url + PATH, timeout=HANG).status_code == 200
            service, memo = _memo(app)
            judged = service._judged.get(memo)
            assert judged is not None
            judged.lengths[0] += 7  # outcomes that no longer add up to the body
            moment[0] = NOW + dt.timedelta(days=6, milliseconds=1)  # `young` comes of age: a rebuild from memory
            with requests.get(url + PATH, timeout=HANG, stream=True) as cut:
                assert cut.status_code == 200
                announced, received = int(cut.headers["Content-Length"]), 0
                with pytest.raises(requests.RequestException):
                    for chunk in cut.iter_content(1 << 16):
                        received += len(chunk)
                assert 1 << 20 <= received < announced
            healed = requests.get(url + PATH, timeout=HANG)
    assert healed.status_code == 200 and healed.json()["packages.conda"] == records


# -- one body, one ETag --------------------------------------------------------------------------------------


def test_a_body_has_one_etag_whether_rebuilt_or_built_afresh(tmp_path: Path) -> None:
    """The plain ETag is a digest of the outcomes the body is written from. A record denied by a rebuild
    (its waiver expired) kept the bit saying it would be served as its own bytes; built afresh, it has none:
    two replicas (or a restarted gate) served the same bytes under two ETags, and a client alternating
    between them downloaded the whole subdir again on every request."""
    records = _young_and_old()
    records["young-1.0-0.conda"] = _record("young", NOW_MS - DAY_MS)  # young for days: waived, then denied
    later = NOW + dt.timedelta(days=2)  # the waiver has expired
    moment = [NOW]
    with ChannelServer(_channel(tmp_path, records)) as server:
        rebuilt = _app(tmp_path / "a", server.url, WAIVED, clock=lambda: moment[0]).test_client()
        assert "young-1.0-0.conda" in json.loads(rebuilt.get(PATH).data)["packages.conda"]
        moment[0] = later
        first = rebuilt.get(PATH)
        fresh = _app(tmp_path / "b", server.url, WAIVED, clock=lambda: later).test_client().get(PATH)
    assert "young-1.0-0.conda" not in json.loads(first.data)["packages.conda"]
    assert first.data == fresh.data
    assert first.headers["ETag"] == fresh.headers["ETag"]


def _reference(body: bytes, policies: Path, channel: str, now: dt.datetime) -> dict[str, Any]:
    """What the straightforward filter (tests/support/conda_reference.py) serves at `now`."""
    repodata = parse_repodata(body)
    records, conflicts = unique_records(repodata)
    evaluator = Evaluator(load_policies([policies]))
    allowed = set()
    for name, record in records:
        file = record_facts(name, record, channel, conflicts.get(name))
        decision = unidentified(file) if isinstance(file, Unidentified) else evaluator.judge(Facts(file), now).decision
        if not decision.violations or decision.verdict is Verdict.ALLOW:
            allowed.add(name)
    reference: dict[str, Any] = json.loads(encode(served_repodata(repodata, lambda name, _: name in allowed)))
    return reference


FORGE_WAIVED = policy_document("waived", ecosystems=["conda"], minimumAge="7d", exceptions=[
    {"packages": ["young", "py*", "lib*"], "waive": ["minimumAge"], "reason": "hotfix", "expires": "2026-12-01"}])


@pytest.mark.parametrize("twice", [True, False], ids=["keys-twice", "compact"])
def test_a_streamed_rebuild_is_the_reference_filter_and_a_fresh_builds_body_and_etag(
    tmp_path: Path, twice: bool,
) -> None:
    """The differential corpus of test_repodata_scale (shadowed duplicates, a conflict, keys given twice, records
    re-encoded, records that are no records), rebuilt two days on from this process's own outcomes and
    streamed (records came of age, a waiver expired): it is what the reference filter serves then, and byte
    for byte, under the same ETags, what a gate that never saw the earlier outcomes builds."""
    body = _channel_body(twice=twice)
    (tmp_path / "channel" / "noarch").mkdir(parents=True)
    (tmp_path / "channel" / "noarch" / "repodata.json").write_bytes(body)
    later = NOW + dt.timedelta(days=2)
    moment = [NOW]
    with ChannelServer(tmp_path / "channel") as server:
        rebuilt = _app(tmp_path / "a", server.url, FORGE_WAIVED, clock=lambda: moment[0]).test_client()
        before = json.loads(rebuilt.get(PATH).data)
        moment[0] = later
        plain, zst = rebuilt.get(PATH), rebuilt.get(PATH + ".zst")
        fresh_app = _app(tmp_path / "b", server.url, FORGE_WAIVED, clock=lambda: later).test_client()
        fresh, fresh_zst = fresh_app.get(PATH), fresh_app.get(PATH + ".zst")
        expected = _reference(body, tmp_path / "a" / "policies", server.url, later)
    served = json.loads(plain.data)
    assert served == expected and served != before
    assert "young-1.0-0.conda" in before["packages.conda"] and "young-1.0-0.conda" not in served["packages.conda"]
    assert plain.data == fresh.data and plain.headers["ETag"] == fresh.headers["ETag"]
    assert zst.data == fresh_zst.data and zst.headers["ETag"] == fresh_zst.headers["ETag"]


def test_a_gate_that_writes_other_bytes_from_the_same_inputs_gives_them_another_etag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ETag digests the inputs a body is written from, not its bytes: a gate upgraded to drop a top-level
    map of maps an older one passed (records it never judged) wrote another body under the same ETag, so a
    client of the older gate was told by a 304 that its copy, with those records, was current. An older gate
    is stood for by a fake: its code digest and the top-level keys it passed, patched."""
    body = encode({"info": {"subdir": "noarch"}, "packages.conda": _young_and_old(),
                   "x_records": {"evil-1.0-0.conda": _record("evil", NOW_MS - 30 * DAY_MS)}})
    (tmp_path / "channel" / "noarch").mkdir(parents=True)
    (tmp_path / "channel" / "noarch" / "repodata.json").write_bytes(body)
    with ChannelServer(tmp_path / "channel") as server:
        with monkeypatch.context() as older:
            older.setattr(conda_index, "KNOWN_KEYS", KNOWN_KEYS | {"x_records"})
            older.setattr(state_module, "code_digest", lambda: "an older gate")
            old = _app(tmp_path, server.url, AGE).test_client().get(PATH)
        assert "x_records" in json.loads(old.data)
        upgraded = _app(tmp_path, server.url, AGE).test_client()
        response = upgraded.get(PATH, headers={"If-None-Match": old.headers["ETag"]})
    assert response.status_code == 200 and "x_records" not in json.loads(response.data)
    assert response.headers["ETag"] != old.headers["ETag"]


# -- a real server: cut connections, HEAD, concurrent cold requests ------------------------------------------


SUBDIRS = ("noarch", "linux-64", "osx-64", "win-64", "osx-arm64")
MANY = 24_000  # records: a body of several MiB, more than a loopback connection's buffers hold


def _cut_after_headers(url: str) -> None:
    """Ask for `url`, read the headers and a little of the body, and close the connection."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname or "", parts.port or 80), timeout=HANG) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(4096)
            assert chunk, "the connection ended before the headers"
            received += chunk
        assert received.startswith(b"HTTP/1.1 200")
        length = int(re.search(rb"(?i)content-length: *(\d+)", received).group(1))  # type: ignore[union-attr]
        assert length > 4 << 20


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def _workers(cache: Path) -> list[int]:
    """The pids of the workers of the `gate serve` this test started with its cache in `cache` (a child of this
    process; other tests may have left other children running, a database server's)."""
    def children(pid: int) -> list[int]:
        found = []
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as listed:
                found += [int(child) for child in listed.read().split()]
        return found

    def ours(pid: int) -> bool:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return str(cache).encode() in cmdline.read().split(b"\0")

    return [worker for child in children(os.getpid()) if ours(child) for worker in children(child)]


def _kept(cache: Path, count: int) -> None:
    """Wait until `count` filtered bodies are kept in the store (a cut body is finished after its client left)."""
    deadline = time.monotonic() + HANG
    while True:
        with sqlite3.connect(cache / "cache.sqlite3") as db:
            (kept,) = db.execute("SELECT count(*) FROM entries WHERE namespace = ?", (FILTERED,)).fetchone()
        if kept >= count:
            return
        assert time.monotonic() < deadline, f"{kept} bodies kept, not {count}"
        time.sleep(0.1)


@pytest.mark.slow
def test_cut_head_and_concurrent_cold_requests_keep_each_body_once_and_whole(tmp_path: Path) -> None:
    """Clients of a real `gate serve` that cut the connection after the headers, ask with HEAD, or ask at once
    (two workers, threads): each body is finished and kept, every answer is the whole filtered body with one
    ETag, and a cut body leaves its worker no thread more (the compressing thread of each body ends with it)."""
    records = {f"p{i}-1.0-{i}.conda": _record(f"p{i}", NOW_MS - 30 * DAY_MS, str(i)) for i in range(MANY)}
    records["young-1.0-0.conda"] = _record("young", int(dt.datetime.now(dt.UTC).timestamp() * 1000))
    expected = {k: v for k, v in records.items() if not k.startswith("young")}
    policies = write_policies(tmp_path / "policies", AGE)
    cache = tmp_path / "cache"
    with ChannelServer(_channel(tmp_path, records, SUBDIRS)) as server:
        args = ["--policy", str(policies), "--conda-channel", f"{CHANNEL}={server.url}/", "--cache-dir", str(cache),
                "--workers", "2", "--threads", "8", "--upstream-slots", "8"]
        with running_gate(args, tmp_path / "serve.log") as url:
            base = f"{url}/conda/{CHANNEL}"
            _cut_after_headers(f"{base}/noarch/repodata.json")
            _cut_after_headers(f"{base}/linux-64/repodata.json")
            head = requests.head(f"{base}/osx-64/repodata.json", timeout=HANG)
            assert head.status_code == 200 and int(head.headers["Content-Length"]) > 4 << 20
            _kept(cache, 3)  # each cut or HEAD body was finished and kept
            answers: dict[int, requests.Response] = {}

            def ask(i: int) -> None:
                answers[i] = requests.get(f"{base}/win-64/repodata.json", timeout=HANG)

            asking = [threading.Thread(target=ask, args=(i,)) for i in range(3)]
            for thread in asking:
                thread.start()
            for thread in asking:
                thread.join(HANG)
            assert [answers[i].status_code for i in sorted(answers)] == [200] * 3
            assert len({a.headers["ETag"] for a in answers.values()}) == 1
            assert all(a.json()["packages.conda"] == expected for a in answers.values())
            for subdir in SUBDIRS[:3]:  # served from what was kept
                again = requests.get(f"{base}/{subdir}/repodata.json", timeout=HANG)
                assert again.status_code == 200 and again.json()["packages.conda"] == expected
            _kept(cache, 4)
            before = {pid: _threads(pid) for pid in _workers(cache)}
            _cut_after_headers(f"{base}/osx-arm64/repodata.json")
            _kept(cache, 5)
            after = {pid: _threads(pid) for pid in _workers(cache)}
    assert len(before) == 2 and after == before
    with sqlite3.connect(cache / "cache.sqlite3") as db:  # one body and one set of outcomes per subdir
        kept = dict(db.execute("SELECT namespace, count(*) FROM entries WHERE namespace IN (?, ?) GROUP BY namespace",
                               (FILTERED, JUDGED)).fetchall())
    assert kept == {FILTERED: len(SUBDIRS), JUDGED: len(SUBDIRS)}
