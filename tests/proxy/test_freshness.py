"""How long gate reuses an upstream project page: the upstream's own freshness (`Cache-Control`, `Expires`)
when it states one, else `--index-ttl`; then a conditional request (`If-None-Match`, `If-Modified-Since`)
whose 304 keeps the stored page. `no-store` and `max-age=0` are honoured. Clients without gzip get the
rendered page's identity copy. The upstream is a scripted loopback server with a request log; the page
cache's clock is moved by the test (no sleeping)."""

from __future__ import annotations

import datetime as dt
import email.utils
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from gate.cli import build_parser
from gate.commands.serve import settings_from
from gate.proxy.pypi import SERVICE
from gate.proxy.pypi_index import PAGES, PypiIndex
from gate.proxy.settings import DEFAULT_INDEX_TTL, Settings, parse_ttl
from gate.sources.http import MAX_FRESHNESS, freshness, no_store
from tests.conftest import PolicyWriter
from tests.proxy.conftest import AGE_POLICY, JSON_V1, NOW
from tests.support.gate_app import gate_app
from tests.support.scripted_pages import project_page, wheel_name
from tests.support.scripted_upstream import Reply, ScriptedServer, scripted_upstream, sequence

PAGE = "/simple/demo/"


@pytest.fixture
def upstream() -> Iterator[ScriptedServer]:
    with scripted_upstream() as server:
        yield server


def _page(*versions: str) -> bytes:
    base = "http://127.0.0.1:1"  # files are not fetched here
    return project_page("demo", [
        {"filename": wheel_name("demo", v), "url": f"{base}/files/{wheel_name('demo', v)}", "data": v.encode()}
        for v in versions
    ])


def _reply(body: bytes, *, status: int = 200, cache_control: str | None = None, **headers: str) -> Reply:
    """A page reply (`headers` with `_` for `-`: `Last_Modified`)."""
    sent = {"Content-Type": JSON_V1, **{k.replace("_", "-"): v for k, v in headers.items()}}
    return Reply(status=status, body=body, headers=sent | ({"Cache-Control": cache_control} if cache_control else {}))


class Clock:
    """The page cache's clock (Unix seconds), moved by the test."""

    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def app_for(upstream: ScriptedServer, write_policy: PolicyWriter, tmp_path: Path) -> Any:
    def make(**settings: Any) -> tuple[Flask, Clock]:
        app = gate_app(write_policy(AGE_POLICY), cache_dir=tmp_path / "cache", clock=lambda: NOW,
                       upstream=upstream.url("/simple/"), **settings)
        clock = Clock()
        index: PypiIndex = app.extensions[SERVICE]
        index.pages.clock = clock
        return app, clock
    return make


def _listed(app: Flask, **headers: str) -> list[str]:
    response = app.test_client().get(PAGE, headers={"Accept": JSON_V1, **headers})
    assert response.status_code == 200, response.text
    return [f["filename"] for f in response.get_json()["files"]]


def _asked(upstream: ScriptedServer) -> list[dict[str, str]]:
    """The headers of every request for the page, in order."""
    return [headers for path, headers in upstream.requests if path == PAGE]


def test_an_upstream_without_freshness_is_asked_once_per_ttl_not_per_request(
    app_for: Any, upstream: ScriptedServer,
) -> None:
    upstream.route(PAGE, _reply(_page("1.0"), ETag='"v1"'))
    app, clock = app_for(index_ttl=600)
    for _ in range(20):
        assert _listed(app) == [wheel_name("demo", "1.0")]
    assert len(_asked(upstream)) == 1
    clock.now += 599
    _listed(app)
    assert len(_asked(upstream)) == 1
    clock.now += 2  # past the TTL: asked again, conditionally
    _listed(app)
    asked = _asked(upstream)
    assert len(asked) == 2 and asked[1].get("If-None-Match") == '"v1"'
    metrics = app.test_client().get("/-/metrics").text
    assert f'gate_cache_hits_total{{cache="{PAGES}"}} 20' in metrics


def test_a_304_reuses_the_stored_page(app_for: Any, upstream: ScriptedServer) -> None:
    last_modified = "Wed, 21 Oct 2026 07:28:00 GMT"
    upstream.route(PAGE, sequence(
        _reply(_page("1.0"), Last_Modified=last_modified),  # no ETag: If-Modified-Since
        _reply(b"", status=304),
        _reply(_page("2.0")),  # never reached within this test's requests
    ))
    app, clock = app_for(index_ttl=60)
    assert _listed(app) == [wheel_name("demo", "1.0")]
    clock.now += 61
    assert _listed(app) == [wheel_name("demo", "1.0")]  # the 304 kept the stored page
    asked = _asked(upstream)
    assert len(asked) == 2 and asked[1].get("If-Modified-Since") == last_modified
    assert "If-None-Match" not in asked[1]
    _listed(app)
    assert len(_asked(upstream)) == 2  # and made it fresh for another TTL


def test_a_changed_page_is_seen_after_the_ttl(app_for: Any, upstream: ScriptedServer) -> None:
    upstream.route(PAGE, sequence(_reply(_page("1.0"), ETag='"v1"'), _reply(_page("1.0", "2.0"), ETag='"v2"')))
    app, clock = app_for(index_ttl=600)
    assert _listed(app) == [wheel_name("demo", "1.0")]
    clock.now += 300
    assert _listed(app) == [wheel_name("demo", "1.0")]  # within the TTL: not asked
    clock.now += 301
    assert _listed(app) == [wheel_name("demo", "1.0"), wheel_name("demo", "2.0")]
    assert len(_asked(upstream)) == 2


@pytest.mark.parametrize("cache_control", ["max-age=0", "no-cache", "max-age=0, must-revalidate"])
def test_an_upstream_that_says_revalidate_is_asked_every_time(
    app_for: Any, upstream: ScriptedServer, cache_control: str,
) -> None:
    upstream.route(PAGE, sequence(_reply(_page("1.0"), ETag='"v1"', cache_control=cache_control),
                                  _reply(b"", status=304, cache_control=cache_control)))
    app, _ = app_for(index_ttl=600)  # the TTL is for upstreams that say nothing
    for _ in range(3):
        assert _listed(app) == [wheel_name("demo", "1.0")]
    asked = _asked(upstream)
    assert len(asked) == 3 and [h.get("If-None-Match") for h in asked] == [None, '"v1"', '"v1"']


def test_no_store_is_fetched_whole_every_time(app_for: Any, upstream: ScriptedServer) -> None:
    upstream.route(PAGE, sequence(
        _reply(_page("1.0"), ETag='"v1"', cache_control="no-store"),
        _reply(_page("1.0", "2.0"), ETag='"v2"', cache_control="no-store"),
    ))
    app, _ = app_for(index_ttl=600)
    assert _listed(app) == [wheel_name("demo", "1.0")]
    assert _listed(app) == [wheel_name("demo", "1.0"), wheel_name("demo", "2.0")]
    asked = _asked(upstream)
    assert len(asked) == 2 and "If-None-Match" not in asked[1]  # never revalidated with what it said not to keep


def test_the_upstreams_max_age_and_expires_win_over_the_ttl(app_for: Any, upstream: ScriptedServer) -> None:
    upstream.route(PAGE, _reply(_page("1.0"), cache_control="max-age=30"))
    app, clock = app_for(index_ttl=600)
    _listed(app)
    clock.now += 31
    _listed(app)
    assert len(_asked(upstream)) == 2
    date = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    upstream.route(PAGE, _reply(_page("1.0"), Date=email.utils.format_datetime(date, usegmt=True),
                                Expires=email.utils.format_datetime(date + dt.timedelta(seconds=120), usegmt=True)))
    clock.now += 1000
    _listed(app)  # stale: asked, now fresh for the 120 s its Expires gives
    clock.now += 100
    _listed(app)
    assert len(_asked(upstream)) == 3
    clock.now += 21
    _listed(app)
    assert len(_asked(upstream)) == 4


def test_a_client_without_gzip_gets_the_identity_copy(app_for: Any, upstream: ScriptedServer) -> None:
    upstream.route(PAGE, _reply(_page("1.0", "2.0")))
    app, _ = app_for()
    client = app.test_client()
    zipped = client.get(PAGE, headers={"Accept": JSON_V1, "Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    index: PypiIndex = app.extensions[SERVICE]
    index.identity.clear()  # as in another worker process: the stored page is gzip only
    plain = [client.get(PAGE, headers={"Accept": JSON_V1}) for _ in range(3)]
    assert all("Content-Encoding" not in r.headers and r.headers["ETag"] == zipped.headers["ETag"] for r in plain)
    assert {r.data for r in plain} == {gzip.decompress(zipped.data)}
    assert json.loads(plain[0].data)["name"] == "demo"
    assert index.identity.get(zipped.headers["ETag"]) == plain[0].data  # decompressed once, then kept


# -- the parts -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("headers", "expected"), [
    ({}, None),
    ({"Cache-Control": "public"}, None),
    ({"Cache-Control": "max-age=600, public"}, 600.0),
    ({"Cache-Control": "s-maxage=60, max-age=600"}, 60.0),
    ({"Cache-Control": 'max-age="90"'}, 90.0),
    ({"Cache-Control": "max-age=0"}, 0.0),
    ({"Cache-Control": "max-age=-5"}, 0.0),
    ({"Cache-Control": "max-age=nan"}, 0.0),
    ({"Cache-Control": "max-age=inf"}, MAX_FRESHNESS),
    ({"Cache-Control": "max-age=1e400"}, MAX_FRESHNESS),
    ({"Cache-Control": "max-age=soon"}, None),
    ({"Cache-Control": "no-cache, max-age=600"}, 0.0),
    ({"Cache-Control": "NO-STORE"}, 0.0),
    ({"Cache-Control": "max-age=30", "Expires": "Thu, 01 Jan 2099 00:00:00 GMT"}, 30.0),
    ({"Expires": "0"}, 0.0),  # unreadable: already expired
    ({"Expires": "Thu, 01 Jan 2099 00:00:00 GMT", "Date": "Wed, 31 Dec 2098 23:59:00 GMT"}, 60.0),
    ({"Expires": "Thu, 01 Jan 1970 00:00:00 GMT"}, 0.0),
    ({"Expires": "Fri, 31 Dec 9999 23:59:59 GMT", "Date": "Thu, 01 Jan 1970 00:00:00 GMT"}, MAX_FRESHNESS),
])
def test_freshness(headers: dict[str, str], expected: float | None) -> None:
    assert freshness(headers) == expected


def test_no_store() -> None:
    assert no_store({"Cache-Control": "public, no-store"}) and not no_store({"Cache-Control": "no-cache"})


def test_index_ttl_setting() -> None:
    assert Settings(policies=()).index_ttl == DEFAULT_INDEX_TTL == 600
    assert Settings.from_env({"GATE_INDEX_TTL": "30"}).index_ttl == 30
    assert parse_ttl("0") == 0
    for bad in ("-1", "nan", "inf", "soon", "1e9"):
        with pytest.raises(ValueError, match="expected seconds"):
            parse_ttl(bad)


def test_index_ttl_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser(["serve"])
    policy = str(tmp_path)
    assert settings_from(parser.parse_args(["serve", "-p", policy])).index_ttl == 600
    assert settings_from(parser.parse_args(["serve", "-p", policy, "--index-ttl", "0"])).index_ttl == 0
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "-p", policy, "--index-ttl", "-5"])
    assert "expected seconds" in capsys.readouterr().err
