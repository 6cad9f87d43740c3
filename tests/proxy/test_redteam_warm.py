"""Red team of the warm path (`gate.proxy.pypi_warm.WarmPages`): for requests an outsider shapes (Host, Accept,
Accept-Encoding, If-None-Match, method, names the route redirects or refuses), the whole app answers exactly as the
route behind the warm path does, once the page is warm for every root and format asked."""

from __future__ import annotations

import itertools

from werkzeug.test import Client, EnvironBuilder

from gate.proxy.pypi_warm import WarmPages
from tests.conftest import PolicyWriter
from tests.proxy.conftest import AGE_POLICY, HTML_V1, JSON_V1, PIP_ACCEPT, AppFactory
from tests.support.pypi_upstream import RunningUpstream

HOSTS = [None, "gate.example", "gate.example:8443", "evil.example/simple/demo/", "a b", "[::1]:80", "x" * 300]
ACCEPTS = [None, PIP_ACCEPT, JSON_V1, HTML_V1, "text/html;q=0", "*/*", f"{JSON_V1};q=0, text/html", "image/png"]
ENCODINGS = [None, "gzip", "GZIP", "gzip;q=0", "x-gzip", "*", "identity;q=0, *;q=0", "br"]
PATHS = ["/simple/demo/", "/simple/Demo/", "/simple/demo//", "/simple//demo/", "/simple/./demo/", "/simple/demo/./",
         "/simple/de%2Fmo/", "/simple/%64emo/", "/simple/demo/?", "/simple/demo/?format=", "/simple/d%C3%A9mo/"]


def test_the_whole_app_answers_as_the_route_behind_the_warm_path(
    make_app: AppFactory, write_policy: PolicyWriter, upstream: RunningUpstream
) -> None:
    upstream.set_cache_control("max-age=600, public")
    app = make_app(write_policy(AGE_POLICY))
    warm = app.wsgi_app
    assert isinstance(warm, WarmPages)
    whole, route = Client(warm), Client(warm.app)
    found: set[str] = set()
    for host, accept in itertools.product(HOSTS, ACCEPTS):  # warm every page the requests below could be given
        headers = {k: v for k, v in (("Host", host), ("Accept", accept)) if v is not None}
        found.add(route.get("/simple/demo/", headers=headers).headers.get("ETag") or "")
    tags = sorted(found - {""})
    matches = [None, "*", *tags[:2], ", ".join(tags), f"W/{tags[0]}", '"other"']
    for host in HOSTS[:4]:  # the comparisons below are of warm answers, not only of requests passed on
        environ = EnvironBuilder("/simple/demo/", headers=[("Host", host)] if host else []).get_environ()
        assert warm.answer(environ) is not None, host
    compared = 0
    for method, path, host, accept, encoding, match in itertools.product(
        ("GET", "HEAD"), PATHS, HOSTS[:4], ACCEPTS, ENCODINGS[:5], matches
    ):
        if compared % 7 and path != "/simple/demo/":
            compared += 1
            continue  # every odd path with a sample of the headers: the warm path passes them on anyway
        headers = {k: v for k, v in (("Host", host), ("Accept", accept), ("Accept-Encoding", encoding),
                                     ("If-None-Match", match)) if v is not None}
        got = whole.open(path, method=method, headers=headers)
        expected = route.open(path, method=method, headers=headers)
        where = (method, path, headers)
        assert got.status == expected.status, where
        assert sorted(got.headers.items()) == sorted(expected.headers.items()), where
        assert got.get_data() == expected.get_data(), where
        compared += 1
    assert compared > 1000
