"""A hostile upstream channel against the scaled monolithic repodata path (`gate.sources.conda_index`,
`gate.proxy.conda_repodata`): bodies built to cost time, to crash the parser, and outcomes kept in the
store that no longer fit the body they are applied to."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import pytest
import zstandard
from flask import Flask

from gate.proxy.conda import JUDGED, CondaChannels
from gate.proxy.conda_repodata import Judged
from gate.proxy.conda_routes import SERVICE
from gate.sources import conda_channel
from gate.sources.conda_index import RepodataIndex
from tests.support.conda_app import conda_app
from tests.support.conda_policies import policy_document
from tests.support.conda_server import ChannelServer

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
NOW_MS = int(NOW.timestamp() * 1000)
DAY_MS = 86_400_000
AGE = policy_document("age", ecosystems=["conda"], minimumAge="7d")
CHANNEL = "hostile"
PATH = f"/conda/{CHANNEL}/noarch/repodata.json"


def _record(name: str, timestamp: int) -> dict[str, Any]:
    return {"name": name, "version": "1.0", "build": "0", "sha256": "ab" * 32, "size": 10, "subdir": "noarch",
            "timestamp": timestamp}


def _app(tmp_path: Path, url: str, clock: Any = lambda: NOW) -> Flask:
    return conda_app(tmp_path, {CHANNEL: url}, AGE, clock=clock)


def _serve(tmp_path: Path, body: bytes) -> ChannelServer:
    (tmp_path / "channel" / "noarch").mkdir(parents=True)
    (tmp_path / "channel" / "noarch" / "repodata.json").write_bytes(body)
    return ChannelServer(tmp_path / "channel")


@pytest.mark.parametrize("where", ["record", "info", "section"])
def test_repodata_nested_past_the_parsers_depth_is_a_502(tmp_path: Path, where: str) -> None:
    """msgspec raises RecursionError (not a DecodeError) for deep nesting: it was a 500 with a traceback."""
    deep = "[" * 100_000 + "]" * 100_000
    body = {
        "record": '{"packages":{"a-1.0-0.tar.bz2":{"name":"a","x":%s}}}',
        "info": '{"info":{"x":%s},"packages":{}}',
        "section": '{"packages":%s}',
    }[where] % deep
    with _serve(tmp_path, body.encode()) as server:
        response = _app(tmp_path, server.url).test_client().get(PATH)
    assert response.status_code == 502 and "nests too deep" in response.text
    with pytest.raises(ValueError, match="nests too deep"):
        RepodataIndex(body.encode())


def test_a_channel_listing_every_filename_in_both_sections_is_indexed_in_linear_time() -> None:
    """Every filename of `packages` listed again in `packages.conda`: each was located by a scan of the whole
    section (quadratic: 8,000 of them took 1.5 s, 100,000 would take minutes). The deadline only detects
    that hang; indexing them takes well under a second."""
    count = 100_000
    record = json.dumps(_record("a", NOW_MS - 30 * DAY_MS), separators=(",", ":"))
    section = ",".join(f'"a-1.0-{i}.tar.bz2":{record.replace(chr(34) + "0" + chr(34), chr(34) + str(i) + chr(34))}'
                       for i in range(count))
    body = f'{{"packages":{{{section}}},"packages.conda":{{{section}}}}}'.encode()
    started = time.process_time()
    index = RepodataIndex(body)
    assert time.process_time() - started < 60
    assert len(index) == 2 * count and len(index.shadowed) == count and not index.conflicts
    assert min(index.shadowed) == count  # the later section's copies


def _outcomes(app: Flask) -> tuple[CondaChannels, str]:
    service: CondaChannels = app.extensions[SERVICE]
    client = service.clients[CHANNEL]
    return service, "|".join((client.subdir_url("noarch"), service.state.view_digest))


def test_outcomes_in_the_store_that_do_not_fit_the_body_are_judged_afresh(tmp_path: Path) -> None:
    """Per-record outcomes another worker kept (`conda.judged`) are not verified against the body: a stale
    or damaged entry (another gate version, a bad write) whose lengths do not add up made every rebuild of
    that subdir a 500 until the upstream changed. Now the rebuild judges every record afresh."""
    records = {f"p{i}-1.0-0.conda": _record(f"p{i}", NOW_MS - 30 * DAY_MS) for i in range(50)}
    records["young-1.0-0.conda"] = _record("young", NOW_MS - 7 * DAY_MS + 1)  # of age 1 ms after NOW
    body = json.dumps({"info": {"subdir": "noarch"}, "packages.conda": records}, separators=(",", ":")).encode()
    moment = [NOW]
    with _serve(tmp_path, body) as server:
        first = _app(tmp_path, server.url, lambda: moment[0])
        assert "young-1.0-0.conda" not in json.loads(first.test_client().get(PATH).data)["packages.conda"]
        service, key = _outcomes(first)
        entry = service.state.store.get(JUDGED, key)
        assert entry is not None
        judged = Judged.load(entry.value, int(entry.meta["count"]))
        assert judged is not None
        judged.lengths[0] += 7  # lengths that no longer add up to the body
        service.state.store.put(JUDGED, key, judged.dump(), entry.meta)
        moment[0] = NOW + dt.timedelta(milliseconds=1)  # `young` comes of age: a rebuild from the store
        other = _app(tmp_path, server.url, lambda: moment[0]).test_client()  # fresh process memory
        response = other.get(PATH)
    assert response.status_code == 200
    assert json.loads(response.data)["packages.conda"] == records


@pytest.mark.parametrize("timestamp", [10**17, 10**15, 253402300799999, -(10**17), 2**63 - 1, 1e300, -1e300])
def test_a_channel_whose_only_record_is_dated_at_an_extreme_is_served(tmp_path: Path, timestamp: Any) -> None:
    """The filtered body is kept until its earliest decision may change: a record dated in year 5000 or
    before year 1 must not make that moment a date Python cannot represent (a 500)."""
    body = json.dumps({"packages.conda": {"far-1.0-0.conda": _record("far", timestamp)}}).encode()
    with _serve(tmp_path, body) as server:
        client = _app(tmp_path, server.url).test_client()
        response = client.get(PATH)
        again = client.get(PATH)
    assert response.status_code == again.status_code == 200
    assert json.loads(response.data) == {"packages.conda": {}}  # not of age, or not a time: denied


def test_a_stored_zst_body_is_read_again_within_the_configured_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The upstream `.zst` is kept as sent and decompressed again by a worker without it in memory; that
    read used `decompress_zst`'s built-in limit, not `max_repodata_bytes`, so with a limit configured above
    the built-in one a body between the two was served by the first worker and a 500 in every other. The
    built-in limit is lowered here to stand for that body."""
    records = {f"p{i}-1.0-0.conda": _record(f"p{i}", NOW_MS - 30 * DAY_MS) for i in range(20)}
    body = json.dumps({"info": {"subdir": "noarch"}, "packages.conda": records}).encode()
    (tmp_path / "channel" / "noarch").mkdir(parents=True)
    (tmp_path / "channel" / "noarch" / "repodata.json.zst").write_bytes(zstandard.ZstdCompressor().compress(body))
    monkeypatch.setattr(conda_channel.decompress_zst, "__defaults__", (len(body) // 2,))
    with ChannelServer(tmp_path / "channel") as server:
        first = _app(tmp_path, server.url).test_client().get(PATH)
        other = _app(tmp_path, server.url).test_client()  # fresh process memory: the stored body is read
        unlisted = other.get(f"/conda/{CHANNEL}/noarch/absent-1.0-0.conda")
    assert first.status_code == 200 and json.loads(first.data)["packages.conda"] == records
    assert unlisted.status_code == 404
