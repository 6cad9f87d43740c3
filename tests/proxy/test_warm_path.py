"""The warm path of PyPI project pages (`gate.proxy.pypi_warm.WarmPages`): it answers exactly as the route
would (status, headers, body, metrics), only pages that are fresh and rendered, and needs no upstream slot;
everything else reaches the route unchanged."""

from __future__ import annotations

import gzip
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from werkzeug.test import Client

from gate.proxy.pypi_warm import WarmPages
from tests.conftest import PolicyWriter
from tests.proxy.conftest import AGE_POLICY, HTML_V1, JSON_V1, PIP_ACCEPT, AppFactory
from tests.support.gate_server import running_gate
from tests.support.pypi_upstream import RunningUpstream
from tests.support.scripted_pages import ALLOW_OLD, page_headers, project_page, wheel_name
from tests.support.scripted_upstream import Reply, scripted_upstream

FRESH = "max-age=600, public"
HANG = 60.0  # seconds after which a request is taken to hang


def _apps(make_app: AppFactory, write_policy: PolicyWriter, **settings: Any) -> tuple[Client, Client, Client]:
    """Clients of the app: through its warm path (the whole app), to its warm path alone, and straight to
    what is behind the warm path (the upstream slots, Flask and the route)."""
    app = make_app(write_policy(AGE_POLICY), **settings)
    warm = app.wsgi_app
    assert isinstance(warm, WarmPages)
    return Client(warm), _warm_only(app), Client(warm.app)


class _WarmOnly:
    """The warm path with nothing behind it: a request it does not answer by itself raises TypeError."""

    def __init__(self, warm: WarmPages) -> None:
        self.warm = warm

    def __call__(self, environ: Any, start_response: Any) -> Any:
        behind, self.warm.app = self.warm.app, None  # type: ignore[assignment]
        try:
            return self.warm(environ, start_response)
        finally:
            self.warm.app = behind


def _warm_only(app: Flask) -> Client:
    warm = app.wsgi_app
    assert isinstance(warm, WarmPages)
    return Client(_WarmOnly(warm))


VARIANTS = [
    ("GET", {"Accept": PIP_ACCEPT}),
    ("GET", {"Accept": PIP_ACCEPT, "Accept-Encoding": "gzip"}),
    ("GET", {"Accept": JSON_V1, "Accept-Encoding": "gzip, deflate, br"}),
    ("GET", {"Accept": HTML_V1, "Accept-Encoding": "gzip;q=0, identity"}),
    ("GET", {"Accept-Encoding": "*"}),
    ("GET", {}),
    ("HEAD", {"Accept": PIP_ACCEPT}),
    ("HEAD", {"Accept": PIP_ACCEPT, "Accept-Encoding": "gzip"}),
    ("GET", {"Accept": PIP_ACCEPT, "If-None-Match": "*"}),
    ("GET", {"Accept": PIP_ACCEPT, "If-None-Match": '"not-it"'}),
    ("HEAD", {"If-None-Match": "*"}),
]


@pytest.mark.parametrize(("method", "headers"), VARIANTS)
def test_the_warm_path_answers_as_the_route_does(
    make_app: AppFactory, write_policy: PolicyWriter, upstream: RunningUpstream, method: str, headers: dict[str, str]
) -> None:
    upstream.set_cache_control(FRESH)
    _, warm, route = _apps(make_app, write_policy)
    for accept in (PIP_ACCEPT, HTML_V1, "text/html"):  # render each format once
        assert route.get("/simple/demo/", headers={"Accept": accept}).status_code == 200
    if headers.get("If-None-Match") == "*":
        tag = route.get("/simple/demo/", headers={"Accept": headers.get("Accept", "text/html")}).headers["ETag"]
        headers = {**headers, "If-None-Match": tag}
    expected = route.open("/simple/demo/", method=method, headers=headers)
    got = warm.open("/simple/demo/", method=method, headers=headers)
    assert got.status == expected.status
    assert list(got.headers.items()) == list(expected.headers.items())
    assert got.get_data() == expected.get_data()
    if method == "GET" and expected.headers.get("Content-Encoding") == "gzip":
        assert b"demo-1.0-py3-none-any.whl" in gzip.decompress(got.get_data())


def test_the_warm_path_counts_what_the_route_counts(
    make_app: AppFactory, write_policy: PolicyWriter, upstream: RunningUpstream
) -> None:
    upstream.set_cache_control(FRESH)
    _, warm, route = _apps(make_app, write_policy)
    assert route.get("/simple/demo/", headers={"Accept": JSON_V1}).status_code == 200
    for _ in range(3):
        assert warm.get("/simple/demo/", headers={"Accept": JSON_V1}).status_code == 200
    metrics = route.get("/-/metrics").get_data(as_text=True)
    assert 'gate_requests_total{endpoint="pypi.project_page",status="200"} 4' in metrics
    assert 'gate_cache_hits_total{cache="pypi.rendered"} 3' in metrics
    assert 'gate_cache_hits_total{cache="pypi.page"} 3' in metrics
    assert 'gate_cache_misses_total{cache="pypi.page"} 1' in metrics


@pytest.mark.parametrize(
    "case",
    [("/simple/Demo/", {}, 301), ("/simple/demo/?format=application/vnd.pypi.simple.v1%2Bjson", {}, 200),
     ("/simple/demo/", {"Accept": "image/png"}, 406), ("/simple/de%00mo/", {}, 404), ("/simple/demo", {}, 308)],
)
def test_anything_unusual_goes_to_the_route(
    make_app: AppFactory, write_policy: PolicyWriter, upstream: RunningUpstream, case: tuple[str, dict[str, str], int]
) -> None:
    path, headers, status = case
    upstream.set_cache_control(FRESH)
    whole, warm, route = _apps(make_app, write_policy)
    assert route.get("/simple/demo/").status_code == 200
    assert whole.get(path, headers=headers).status_code == status
    with pytest.raises(TypeError):  # the warm path passed it on (to nothing)
        warm.get(path, headers=headers)


def test_a_stale_page_is_revalidated_and_a_policy_change_renders_afresh(
    make_app: AppFactory, write_policy: PolicyWriter, upstream: RunningUpstream, tmp_path: Path
) -> None:
    upstream.set_cache_control("max-age=1")
    whole, warm, _ = _apps(make_app, write_policy)
    assert whole.get("/simple/demo/").status_code == 200
    assert warm.get("/simple/demo/").status_code == 200  # fresh: answered by the warm path alone
    asked = len(upstream.requests)
    time.sleep(1.1)  # past the upstream's max-age (a bound on staleness, not a timing assertion)
    with pytest.raises(TypeError):  # stale: not the warm path's to answer
        warm.get("/simple/demo/")
    assert whole.get("/simple/demo/").status_code == 200
    assert len(upstream.requests) > asked  # the route asked upstream again
    assert warm.get("/simple/demo/").status_code == 200  # fresh again
    stricter = make_app(write_policy(AGE_POLICY.replace("minimumAge: 7d", "minimumAge: 45d")))
    with pytest.raises(TypeError):  # same store, another decision view: nothing rendered for it yet
        _warm_only(stricter).get("/simple/demo/", headers={"Accept": JSON_V1})
    page = stricter.test_client().get("/simple/demo/", headers={"Accept": JSON_V1}).get_json()
    assert [f["filename"] for f in page["files"]] == ["demo-1.0-py3-none-any.whl"]


@pytest.mark.slow
def test_a_warm_page_needs_no_upstream_slot(tmp_path: Path, write_policy: PolicyWriter) -> None:
    """Every upstream slot held by cold pages waiting on a dripping upstream: a warm page is still served
    (before, it was answered 503 `busy`), and a cold one still turned away."""
    row = {"filename": wheel_name("warm"), "url": "/files/warm.whl", "data": b"wheel"}
    with scripted_upstream() as upstream:
        upstream.route("/simple/warm/", Reply(body=project_page("warm", [row]),
                                              headers={**page_headers(), "Cache-Control": FRESH}))
        upstream.route("/simple/slow/", Reply(body=b" " * 4096, headers=page_headers(), drip=1.0))
        args = ["--policy", str(write_policy(ALLOW_OLD)), "--upstream", upstream.url("/simple/"), "--timeout", "30",
                "--workers", "1", "--threads", "4", "--upstream-slots", "1"]
        with running_gate(args, tmp_path / "gate.log") as url, ThreadPoolExecutor(2) as pool:
            first = requests.get(f"{url}/simple/warm/", headers={"Accept": JSON_V1}, timeout=HANG)
            assert first.status_code == 200
            held = pool.submit(requests.get, f"{url}/simple/slow/", timeout=HANG)
            deadline = time.monotonic() + HANG
            while not any(path.startswith("/simple/slow/") for path, _ in upstream.requests):
                assert time.monotonic() < deadline and not held.done(), "the cold page never reached upstream"
                time.sleep(0.05)
            cold = requests.get(f"{url}/simple/other/", timeout=HANG)
            assert cold.status_code == 503 and "busy" in cold.text  # the slot is held
            for encoding in ("identity", "gzip"):
                warm = requests.get(f"{url}/simple/warm/", headers={"Accept": JSON_V1, "Accept-Encoding": encoding},
                                    timeout=HANG)
                assert warm.status_code == 200, warm.text
                assert warm.content == first.content and warm.headers["ETag"] == first.headers["ETag"]
            again = requests.get(f"{url}/simple/warm/", headers={"Accept": JSON_V1,
                                                                 "If-None-Match": first.headers["ETag"]}, timeout=HANG)
            assert again.status_code == 304
            upstream.stop()  # ends the drip
