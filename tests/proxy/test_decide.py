"""Upstream trouble is answered in one place (`decide.upstream_failure`): the error says what went wrong
(`Failure`), the proxy decides the status, the retry hint and that the answer is not cached."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from gate.proxy.decide import upstream_failure
from gate.sources.failure import Failure, UpstreamError
from tests.support.gate_app import gate_app
from tests.support.gate_server import free_port
from tests.support.scripted_pages import ALLOW_OLD, page_headers, project_page, wheel_name
from tests.support.scripted_upstream import Reply, ScriptedServer, scripted_upstream

NOW = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("failure", "status", "retry"),
    [(Failure.UNAVAILABLE, 503, "30"), (Failure.BAD_ANSWER, 502, None), (Failure.NOT_FOUND, 404, None)],
)
def test_each_failure_has_one_answer(failure: Failure, status: int, retry: str | None) -> None:
    answer = upstream_failure(UpstreamError("upstream https://u:sekrit@up.example/x went wrong", failure))
    assert answer.status_code == status and answer.headers.get("Retry-After") == retry
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.get_data(as_text=True) == "gate: upstream https://***@up.example/x went wrong\n"
    doing = upstream_failure(UpstreamError("it broke", failure), "cannot fetch a.whl")
    assert doing.status_code == status and doing.get_data(as_text=True) == "gate: cannot fetch a.whl: it broke\n"


def test_every_failure_is_mapped() -> None:
    for failure in Failure:
        assert upstream_failure(UpstreamError("x", failure)).status_code in (404, 502, 503)


@pytest.fixture
def upstream() -> Iterator[ScriptedServer]:
    with scripted_upstream() as server:
        yield server


def test_a_download_from_an_unreachable_host_is_a_503_to_try_again(upstream: ScriptedServer, tmp_path: Path) -> None:
    """The file host is allowed but nothing listens there: the download route answers like a page route."""
    port = free_port()
    file = {"filename": wheel_name("demo"), "url": f"http://127.0.0.1:{port}/demo.whl", "data": b"wheel"}
    upstream.route("/simple/demo/", Reply(body=project_page("demo", [file]), headers=page_headers()))
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "age.yaml").write_text(ALLOW_OLD)
    app = gate_app(tmp_path / "policies", cache_dir=tmp_path / "cache", clock=lambda: NOW,
                   upstream=upstream.url("/simple/"), allow_hosts=(("127.0.0.1", port),))
    answer = app.test_client().get(f"/files/demo/{wheel_name('demo')}")
    assert answer.status_code == 503, answer.text
    assert answer.text.startswith(f"gate: cannot fetch {wheel_name('demo')}: upstream ")
    assert "is unreachable" in answer.text
    assert answer.headers["Retry-After"] == "30" and answer.headers["Cache-Control"] == "no-store"
