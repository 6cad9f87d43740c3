"""Resource limits against a hostile upstream (issue 10, section 4): decoded-size caps (gzip and zstd
bombs included), one total deadline per upstream request, health that never queues behind upstream work,
and a rendered-page cache the client's Host header cannot grow."""

from __future__ import annotations

import datetime as dt
import gzip
import sqlite3
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from itertools import islice
from pathlib import Path
from typing import Any

import pytest
import requests
import zstandard
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from gate.cli import main
from gate.proxy.cache import Memo
from gate.proxy.files import IntegrityError
from gate.proxy.settings import Settings
from gate.proxy.state import EXTENSION, MAX_ROOTS, Gate
from gate.sources.deadline import WATCHED_POOLS, DeadlineAdapter, deadline_session
from tests.conftest import PolicyWriter
from tests.support.gate_app import gate_app
from tests.support.gate_server import running_gate
from tests.support.scripted_pages import ALLOW_OLD, page_headers, project_page, wheel_name
from tests.support.scripted_upstream import Reply, ScriptedServer, scripted_upstream

NOW = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
MiB = 1 << 20
BOMB = 200 * MiB  # decoded size of the bombs; each is well under 1 MiB on the wire
WHEEL = b"the wheel" * 20
HANG = 60.0  # seconds after which a request is taken to hang (the deadlines below are 1-2 s)


@pytest.fixture
def upstream() -> Iterator[ScriptedServer]:
    with scripted_upstream() as server:
        yield server


Client = Callable[..., FlaskClient]


@pytest.fixture
def client(tmp_path: Path, upstream: ScriptedServer, write_policy: PolicyWriter) -> Client:
    def make(**settings: Any) -> FlaskClient:
        app = gate_app(write_policy(ALLOW_OLD), cache_dir=tmp_path / "cache", clock=lambda: NOW,
                       upstream=upstream.url("/simple/"), **settings)
        return app.test_client()

    return make


def _stored(cache: Path, namespace: str) -> tuple[int, int]:
    """(entries, bytes of their values) in the store's `namespace`."""
    with sqlite3.connect(cache / "cache.sqlite3") as db:
        count, size = db.execute(
            "SELECT count(*), coalesce(sum(length(value)), 0) FROM entries WHERE namespace = ?", (namespace,)
        ).fetchone()
    return int(count), int(size)


def _bomb(compressor: Any) -> bytes:
    """BOMB bytes of spaces (valid JSON whitespace), compressed in pieces."""
    piece = b" " * MiB
    return bytes(b"".join(compressor.compress(piece) for _ in range(BOMB // MiB)) + compressor.flush())


def _peak(call: Callable[[], TestResponse]) -> tuple[TestResponse, int]:
    """The response and the peak of Python allocations while it was made (bytes)."""
    tracemalloc.start()
    try:
        response = call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return response, peak


def test_an_oversized_page_is_refused_and_not_stored(client: Client, upstream: ScriptedServer, tmp_path: Path) -> None:
    rows = [{"filename": wheel_name("demo", f"1.{i}"), "url": f"/f/{i}.whl", "data": WHEEL} for i in range(20000)]
    page = project_page("demo", rows)
    assert len(page) > 2 * MiB
    upstream.route("/simple/demo/", Reply(body=page, headers=page_headers()))
    answer = client(max_page_bytes=MiB).get("/simple/demo/")
    assert answer.status_code == 502 and f"larger than {MiB} bytes" in answer.text
    assert _stored(tmp_path / "cache", "pypi.page") == (0, 0)


def test_a_gzip_bomb_page_is_cut_at_the_cap(client: Client, upstream: ScriptedServer, tmp_path: Path) -> None:
    bomb = _bomb(zlib.compressobj(9, zlib.DEFLATED, 31))  # gzip
    assert len(bomb) < MiB
    upstream.route("/simple/demo/", Reply(body=bomb, headers={**page_headers(), "Content-Encoding": "gzip"}))
    gate = client(max_page_bytes=MiB)
    answer, peak = _peak(lambda: gate.get("/simple/demo/"))
    assert answer.status_code == 502 and "larger than" in answer.text
    assert peak < 32 * MiB  # decoding the whole bomb would take 200 MiB
    assert _stored(tmp_path / "cache", "pypi.page") == (0, 0)


@pytest.mark.parametrize("variant", ["repodata.json.zst", "repodata.json"])
def test_a_repodata_bomb_is_cut_at_the_cap(
    client: Client, upstream: ScriptedServer, tmp_path: Path, variant: str
) -> None:
    if variant.endswith(".zst"):
        upstream.route(f"/ch/noarch/{variant}", Reply(body=_bomb(zstandard.ZstdCompressor().compressobj())))
    else:
        upstream.route(f"/ch/noarch/{variant}", Reply(body=_bomb(zlib.compressobj(9, zlib.DEFLATED, 31)),
                                                      headers={"Content-Encoding": "gzip"}))
    gate = client(max_repodata_bytes=MiB, conda_channels=(("ch", upstream.url("/ch")),))
    answer, peak = _peak(lambda: gate.get("/conda/ch/noarch/repodata.json"))
    assert answer.status_code == 502, answer.text
    assert peak < 32 * MiB
    assert _stored(tmp_path / "cache", "conda.repodata") == (0, 0)


def test_a_compressed_page_within_the_cap_is_decoded(client: Client, upstream: ScriptedServer) -> None:
    file = {"filename": wheel_name("demo"), "url": "/files/demo.whl", "data": WHEEL}
    upstream.route("/simple/demo/", Reply(body=project_page("demo", [file]), headers=page_headers(), gzip=True))
    answer = client().get("/simple/demo/?format=application/vnd.pypi.simple.v1+json")
    assert answer.status_code == 200 and answer.json is not None
    assert [f["filename"] for f in answer.json["files"]] == [wheel_name("demo")]


@pytest.mark.parametrize(
    ("encoding", "mangle", "reason"),
    [("gzip", lambda body: body[:-12], "truncated"), ("br", lambda body: body, "did not ask for"),
     ("gzip", lambda body: b"not gzip at all", "corrupt")],
)
def test_a_badly_encoded_page_is_a_502(
    client: Client, upstream: ScriptedServer, encoding: str, mangle: Callable[[bytes], bytes], reason: str
) -> None:
    page = gzip.compress(project_page("demo", [{"filename": wheel_name("demo"), "url": "/f.whl", "data": WHEEL}]))
    upstream.route("/simple/demo/", Reply(body=mangle(page), headers={**page_headers(), "Content-Encoding": encoding}))
    answer = client().get("/simple/demo/")
    assert answer.status_code == 502 and reason in answer.text


def _within_hang_limit(call: Callable[[], Any]) -> Any:
    """The result of `call`, run in a thread; a failure when it is still running after HANG seconds."""
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(call)
        try:
            return future.result(timeout=HANG)
        except TimeoutError:
            pytest.fail("the request hangs: no total deadline")
    raise AssertionError("unreachable")


@pytest.mark.parametrize("headers_too", [False, True])
def test_a_dripping_page_is_cut_at_the_deadline(client: Client, upstream: ScriptedServer, headers_too: bool) -> None:
    page = project_page("demo", [{"filename": wheel_name("demo"), "url": "/files/demo.whl", "data": WHEEL}])
    upstream.route("/simple/demo/", Reply(body=page, headers=page_headers(), drip=0.2, drip_headers=headers_too))
    gate = client(timeout=1.0)
    answer = _within_hang_limit(lambda: gate.get("/simple/demo/"))
    assert answer.status_code == 503 and "within 1s" in answer.text


def test_a_page_without_a_length_cut_at_the_deadline_is_not_taken_as_whole(
    client: Client, upstream: ScriptedServer
) -> None:
    """No Content-Length and no chunks: the cut socket just ends the body, which must not read as a page."""
    page = project_page("demo", [{"filename": wheel_name("demo"), "url": "/files/demo.whl", "data": WHEEL}])
    upstream.route("/simple/demo/", Reply(body=page, headers={**page_headers(), "Content-Length": ""}, drip=0.2))
    gate = client(timeout=1.0)
    answer = _within_hang_limit(lambda: gate.get("/simple/demo/"))
    assert answer.status_code == 503 and "within 1s" in answer.text


def test_a_dripping_file_is_cut_at_the_deadline(client: Client, upstream: ScriptedServer) -> None:
    file = {"filename": wheel_name("demo"), "url": "/files/demo.whl", "data": WHEEL}
    upstream.route("/simple/demo/", Reply(body=project_page("demo", [file]), headers=page_headers()))
    upstream.route("/files/demo.whl", Reply(body=WHEEL, drip=0.2))
    gate = client(timeout=1.0)


    def download() -> tuple[int | str, bytes]:
        try:
            answer = gate.get(f"/files/demo/{wheel_name('demo')}")
            return answer.status_code, answer.data
        except IntegrityError:  # a streamed body cut short: never completed
            return "cut", b""

    status, data = _within_hang_limit(download)
    assert status in ("cut", 502) and data != WHEEL


def test_a_slow_but_steady_large_file_is_not_cut(client: Client, upstream: ScriptedServer) -> None:
    data = bytes(range(256)) * (6 << 10)  # 1.5 MiB at 512 KiB/s: 3 s, past the 1 s timeout, above MIN_RATE
    file = {"filename": wheel_name("demo"), "url": "/files/demo.whl", "data": data}
    upstream.route("/simple/demo/", Reply(body=project_page("demo", [file]), headers=page_headers()))
    upstream.route("/files/demo.whl", Reply(body=data, drip=0.25, piece=128 << 10))
    gate = client(timeout=1.0)
    assert _within_hang_limit(lambda: gate.get(f"/files/demo/{wheel_name('demo')}").data) == data


def test_the_host_header_cannot_grow_the_page_cache(client: Client, upstream: ScriptedServer, tmp_path: Path) -> None:
    file = {"filename": wheel_name("demo"), "url": "/files/demo.whl", "data": WHEEL}
    upstream.route("/simple/demo/", Reply(body=project_page("demo", [file]),
                                          headers={**page_headers(), "Cache-Control": "max-age=600"}))
    gate = client()
    for i in range(2000):
        assert gate.get("/simple/demo/", headers={"Host": f"h{i}.example"}).status_code == 200
    entries, _ = _stored(tmp_path / "cache", "pypi.rendered")
    assert 1 <= entries <= 8
    page = gate.get("/simple/demo/", headers={"Host": "late.example"}).text
    assert "http://late.example/files/demo/" in page  # still rendered for the host asked


def test_the_page_root_is_decided_outside_a_request(client: Client) -> None:
    """The service is given the request's root by the route: it reads no Flask request of its own."""
    state = client().application.extensions[EXTENSION]
    assert isinstance(state, Gate)
    roots = [state.page_root(f"http://h{i}.example/") for i in range(MAX_ROOTS + 2)]
    assert roots[0] == ("http://h0.example/", True)
    assert [cacheable for _, cacheable in roots] == [True] * MAX_ROOTS + [False, False]
    assert state.page_root("http://h0.example/") == ("http://h0.example/", True)


def test_a_public_url_keys_the_page_cache(client: Client, upstream: ScriptedServer, tmp_path: Path) -> None:
    file = {"filename": wheel_name("demo"), "url": "/files/demo.whl", "data": WHEEL}
    upstream.route("/simple/demo/", Reply(body=project_page("demo", [file]), headers=page_headers()))
    gate = client(public_url="https://gate.example/pypi")
    for i in range(20):
        page = gate.get("/simple/demo/", headers={"Host": f"h{i}.example"}).text
        assert "https://gate.example/pypi/files/demo/" in page and f"h{i}.example" not in page
    assert _stored(tmp_path / "cache", "pypi.rendered")[0] == 1


@pytest.mark.slow
def test_health_answers_while_upstream_drips_into_every_slot(tmp_path: Path, write_policy: PolicyWriter) -> None:
    policies = write_policy(ALLOW_OLD)
    with scripted_upstream() as upstream:
        page = gzip.compress(b" " * 4096)  # 4096 bytes at 1 byte a second: far past any wait below
        upstream.route("/simple/demo/", Reply(body=page, headers=page_headers(), drip=1.0))
        args = ["--policy", str(policies), "--upstream", upstream.url("/simple/"), "--timeout", "30",
                "--workers", "1", "--threads", "4"]
        with running_gate(args, tmp_path / "gate.log") as url, ThreadPoolExecutor(12) as pool:
            pages = [pool.submit(requests.get, f"{url}/simple/demo/", timeout=HANG) for _ in range(12)]
            turned_away = list(islice(as_completed(pages, timeout=HANG), 10))  # 4 threads, 2 upstream slots
            health = requests.get(f"{url}/-/health", timeout=10)  # a hang: the threads are all waiting
            assert health.status_code == 200
            assert all(p.result().status_code == 503 and "busy" in p.result().text for p in turned_away)
            assert "gate_busy_total" in requests.get(f"{url}/-/metrics", timeout=10).text
            upstream.stop()  # ends the drips


def test_parsed_documents_kept_in_memory_are_bounded_by_their_size() -> None:
    memo: Memo[int] = Memo(size=10, budget=100)
    for i in range(5):
        memo.put(str(i), i, 40)
    assert [memo.get(str(i)) for i in range(5)] == [None, None, None, 3, 4]
    memo.put("big", -1, 1000)  # the latest is kept whatever its weight, alone
    assert memo.get("big") == -1 and memo.get("4") is None


@pytest.mark.parametrize(
    "flags",
    [["--public-url", "gate.example"], ["--public-url", "https://u:p@gate.example/"], ["--allow-host", "u@h"],
     ["--allow-host", "h:port"], ["--upstream-slots", "0"]],
)
def test_limit_flags_are_checked(tmp_path: Path, flags: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "age.yaml").write_text(ALLOW_OLD)
    with pytest.raises(SystemExit) as exit_:  # argparse's usage error, or gate's
        code = main(["serve", "--policy", str(tmp_path / "age.yaml"), *flags])
        raise SystemExit(code)
    assert exit_.value.code == 2
    assert "u:p" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GATE_PUBLIC_URL": "gate.example"}, r"expected an http\(s\) URL"),
        ({"GATE_PUBLIC_URL": "https://u:Hunter2@gate.example/"}, r"expected an http\(s\) URL"),
        ({"GATE_UPSTREAM_SLOTS": "-1"}, "GATE_UPSTREAM_SLOTS must be"),
    ],
)
def test_limit_variables_are_checked_like_the_flags(env: dict[str, str], message: str) -> None:
    """A bare gunicorn reads these from the environment: refused as `gate serve` refuses the flags."""
    with pytest.raises(ValueError, match=message) as raised:
        Settings.from_env(env)
    assert "Hunter2" not in str(raised.value)


def test_connections_through_an_environment_proxy_are_watched_too() -> None:
    """`HTTPS_PROXY` makes requests build a proxy pool manager of its own: its pools must honour deadlines."""
    adapter = deadline_session().get_adapter("https://upstream.example/")
    assert isinstance(adapter, DeadlineAdapter)
    manager = adapter.proxy_manager_for("http://proxy.example:3128")
    assert manager.pool_classes_by_scheme == WATCHED_POOLS
