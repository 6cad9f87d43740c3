"""The conda blueprint in a Flask test client, in front of a real channel served on loopback."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zstandard
from flask.testing import FlaskClient

from gate.gather.conda import SIDECAR_TTL
from gate.proxy.conda_routes import conda_blueprint
from gate.sources.conda_index import RepodataIndex
from tests.proxy.conda.conftest import CondaGate
from tests.support.conda_channel import (
    add_fixture_signed_package,
    build_conda_package,
    epoch_ms,
    index_channel,
    read_repodata,
    set_record_fields,
    write_repodata,
)
from tests.support.conda_policies import (
    SIGNED,
    TARGET_CHANNEL,
    policy_document,
    signer_attestations,
    write_policies,
)
from tests.support.conda_server import ChannelServer
from tests.support.gate_app import gate_app

DAY = dt.timedelta(days=1)
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
AGE = policy_document("age", ecosystems=["pypi", "conda"], minimumAge="7d")


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """demo 1.0 (indexed 30 days ago, .conda), demo 2.0 (2 days ago, .tar.bz2), nosha 1.0, the signed package."""
    channel_dir = tmp_path_factory.mktemp("upstream") / "channel"
    build_conda_package(channel_dir / "noarch", "demo", "1.0", timestamp_ms=epoch_ms(NOW - 40 * DAY))
    build_conda_package(channel_dir / "noarch", "demo", "2.0", timestamp_ms=epoch_ms(NOW - 3 * DAY), fmt="tar.bz2")
    build_conda_package(channel_dir / "noarch", "nosha", "1.0", timestamp_ms=epoch_ms(NOW - 40 * DAY))
    add_fixture_signed_package(channel_dir)
    set_record_fields(channel_dir, "noarch", "demo-1.0-0.conda", indexed_timestamp=epoch_ms(NOW - 30 * DAY))
    set_record_fields(channel_dir, "noarch", "demo-2.0-0.tar.bz2", indexed_timestamp=epoch_ms(NOW - 2 * DAY))
    set_record_fields(channel_dir, "noarch", "nosha-1.0-0.conda", sha256=None)
    set_record_fields(channel_dir, "linux-64", SIGNED, indexed_timestamp=None)  # 2025-09-01 timestamp
    return channel_dir


Factory = Callable[..., FlaskClient]


@pytest.fixture
def make_client(conda_gate: CondaGate) -> Factory:
    def make(*policies: dict[str, Any], clock: Callable[[], dt.datetime] = lambda: NOW, url: str = "") -> FlaskClient:
        return conda_gate(policies or (AGE,), clock, url)

    return make


def _names(repodata: dict[str, Any]) -> list[str]:
    return sorted([*repodata.get("packages", {}), *repodata.get("packages.conda", {})])


def test_repodata_lists_only_allowed_records(make_client: Factory) -> None:
    client = make_client()
    response = client.get("/conda/local/noarch/repodata.json")
    assert response.status_code == 200 and response.content_type == "application/json"
    repodata = json.loads(response.data)
    assert _names(repodata) == ["demo-1.0-0.conda"]  # 2.0 is 2 days old, nosha has no sha256
    assert repodata["info"]["subdir"] == "noarch"
    etag = response.headers["ETag"]
    again = client.get("/conda/local/noarch/repodata.json", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.headers["ETag"] == etag


def test_zst_is_the_same_filtered_repodata(make_client: Factory) -> None:
    client = make_client()
    plain = client.get("/conda/local/noarch/repodata.json").data
    response = client.get("/conda/local/noarch/repodata.json.zst")
    assert response.status_code == 200
    assert zstandard.ZstdDecompressor().decompress(response.data) == plain
    assert client.head("/conda/local/noarch/repodata.json.zst").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "noarch/repodata.json.bz2",
        "noarch/current_repodata.json",
        "noarch/repodata.jlap",
        "noarch/repodata.json.jlap",
        "noarch/shards/" + "0" * 63 + ".msgpack.zst",
        "noarch/index.html",
    ],
)
def test_unfiltered_variants_are_never_passed_through(
    make_client: Factory, upstream: ChannelServer, path: str
) -> None:
    client = make_client()
    assert client.head(f"/conda/local/{path}").status_code == 404
    response = client.get(f"/conda/local/{path}")
    assert response.status_code == 404 and b"demo-2.0" not in response.data
    assert not [p for p in upstream.paths() if "shards" in p or "bz2" in p]  # not even asked upstream


def test_allowed_package_is_streamed_and_denied_one_refused(make_client: Factory, channel: Path) -> None:
    client = make_client()
    response = client.get("/conda/local/noarch/demo-1.0-0.conda")
    assert response.status_code == 200
    assert response.data == (channel / "noarch" / "demo-1.0-0.conda").read_bytes()
    denied = client.get("/conda/local/noarch/demo-2.0-0.tar.bz2")
    assert denied.status_code == 403
    text = denied.get_data(as_text=True)
    assert "demo-2.0-0.tar.bz2 (demo 2.0) is denied by policy" in text
    assert re.search(r"age/minimumAge: uploaded [0-9T:-]+Z; allowed from [0-9T:-]+Z \(minimum age 7d\)", text)
    nosha = client.get("/conda/local/noarch/nosha-1.0-0.conda")
    assert nosha.status_code == 403 and "gate/gate.unjudgeable" in nosha.get_data(as_text=True)
    assert client.get("/conda/local/noarch/absent-1.0-0.conda").status_code == 404


def test_decisions_are_audited_and_counted(make_client: Factory, tmp_path: Path) -> None:
    client = make_client()
    client.get("/conda/local/noarch/repodata.json")
    client.get("/conda/local/noarch/demo-2.0-0.tar.bz2")
    lines = [json.loads(line) for line in (tmp_path / "cache" / "audit.jsonl").read_text().splitlines()]
    events = {(r["event"], r["file"], r["verdict"], r["served"]) for r in lines}
    assert ("repodata", "demo-2.0-0.tar.bz2", "deny", False) in events
    assert ("download", "demo-2.0-0.tar.bz2", "deny", False) in events
    assert all(r["ecosystem"] == "conda" for r in lines)
    metrics = client.get("/-/metrics").get_data(as_text=True)
    assert 'gate_decisions_total{event="download",verdict="deny"} 1' in metrics


def test_time_dependent_decisions_expire(make_client: Factory) -> None:
    moment = [NOW]
    client = make_client(clock=lambda: moment[0])
    assert _names(json.loads(client.get("/conda/local/noarch/repodata.json").data)) == ["demo-1.0-0.conda"]
    assert b"demo-2.0" not in zstandard.ZstdDecompressor().decompress(
        client.get("/conda/local/noarch/repodata.json.zst").data
    )
    moment[0] = NOW + 6 * DAY  # demo 2.0 is now 8 days old: the cached filtered repodata must not be reused
    later = json.loads(client.get("/conda/local/noarch/repodata.json").data)
    assert _names(later) == ["demo-1.0-0.conda", "demo-2.0-0.tar.bz2"]
    compressed = client.get("/conda/local/noarch/repodata.json.zst").data
    assert _names(json.loads(zstandard.ZstdDecompressor().decompress(compressed))) == _names(later)


def test_upstream_is_revalidated_not_refetched(make_client: Factory, upstream: ChannelServer) -> None:
    client = make_client()
    for _ in range(2):
        assert client.get("/conda/local/noarch/repodata.json").status_code == 200
    asked = [(r.method, r.path, r.status) for r in upstream.requests if "repodata" in r.path]
    assert asked == [("GET", "/noarch/repodata.json.zst", 200), ("GET", "/noarch/repodata.json.zst", 304)]


def test_repodata_is_parsed_only_when_its_records_are_needed(
    make_client: Factory, upstream: ChannelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A filtered-repodata cache hit needs only the upstream digest: another worker (an app with the same
    cache and no memo) answers it from a 304 revalidation without parsing the upstream repodata."""
    parsed: list[int] = []

    def counting(data: bytes) -> RepodataIndex:
        parsed.append(len(data))
        return RepodataIndex(data)

    upstream.not_found.add("*/repodata_shards.msgpack.zst")  # unsharded: a download is judged from the repodata
    monkeypatch.setattr("gate.proxy.conda.RepodataIndex", counting)
    monkeypatch.setattr("gate.sources.conda_upstream.RepodataIndex", counting)
    first = make_client().get("/conda/local/noarch/repodata.json")
    assert first.status_code == 200 and len(parsed) == 1  # a new upstream body is parsed once, to check it
    worker = make_client()
    for path in ("repodata.json", "repodata.json.zst"):  # both from the one cached compressed copy
        assert worker.get(f"/conda/local/noarch/{path}").status_code == 200
    assert len(parsed) == 1
    assert [r.status for r in upstream.requests if "repodata" in r.path] == [200, 304, 304]
    assert worker.get("/conda/local/noarch/demo-1.0-0.conda").status_code == 200  # judging it needs its record
    assert worker.get("/conda/local/noarch/repodata.json").status_code == 200
    assert len(parsed) == 2  # parsed once for the download, then memoized


def test_upstream_failure_is_an_error_never_unfiltered(make_client: Factory, upstream: ChannelServer) -> None:
    upstream.not_found.add("/noarch/repodata.json*")
    client = make_client()
    assert client.get("/conda/local/noarch/repodata.json").status_code == 404
    assert client.get("/conda/local/linux-64/repodata.json").status_code == 200
    dead = make_client(url="http://127.0.0.1:9")  # nothing listens on the discard port
    response = dead.get("/conda/local/noarch/repodata.json")
    assert response.status_code == 503 and response.headers["Cache-Control"] == "no-store"


def test_malformed_upstream_repodata_is_an_error_and_not_kept(tmp_path: Path) -> None:
    (tmp_path / "channel" / "noarch").mkdir(parents=True)
    (tmp_path / "channel" / "noarch" / "repodata.json").write_text("[]")
    with ChannelServer(tmp_path / "channel") as bad:
        directory = write_policies(tmp_path / "policies", AGE)
        blueprint = conda_blueprint({"bad": bad.url})
        app = gate_app(directory, cache_dir=tmp_path / "cache", clock=lambda: NOW, blueprints=(blueprint,))
        client = app.test_client()
        response = client.get("/conda/bad/noarch/repodata.json")
        assert response.status_code == 502 and "repodata is not valid" in response.get_data(as_text=True)
        assert 'gate_upstream_requests_total{outcome="502"} 1' in client.get("/-/metrics").get_data(as_text=True)
    with sqlite3.connect(tmp_path / "cache" / "cache.sqlite3") as db:
        assert not db.execute("SELECT key FROM entries WHERE namespace = 'conda.repodata'").fetchall()


def test_unknown_channel_and_bad_subdir(make_client: Factory) -> None:
    client = make_client()
    assert client.get("/conda/other/noarch/repodata.json").status_code == 404
    assert client.get("/conda/local/no%20arch/repodata.json").status_code == 404


def test_tampered_upstream_package_is_cut_off(
    make_client: Factory, channel: Path, tmp_path: Path, upstream: ChannelServer
) -> None:
    package = channel / "noarch" / "demo-1.0-0.conda"
    original = package.read_bytes()
    try:
        package.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        client = make_client()
        response = client.get("/conda/local/noarch/demo-1.0-0.conda")  # small: checked before answering
        assert response.status_code == 502 and "differs from the" in response.text
    finally:
        package.write_bytes(original)
    lines = [json.loads(line) for line in (tmp_path / "cache" / "audit.jsonl").read_text().splitlines()]
    [integrity] = [line for line in lines if line["event"] == "integrity"]
    download = next(line for line in lines if line["event"] == "download")
    assert integrity["time"].endswith("Z") and integrity["served"] is False and integrity["verdict"] == "deny"
    assert {k: integrity[k] for k in ("client", "ecosystem", "project", "file", "sha256")} == {
        k: download[k] for k in ("client", "ecosystem", "project", "file", "sha256")
    }
    assert [(r["rule"], r["enforced"]) for r in integrity["rules"]] == [("gate.integrity", True)]


@pytest.mark.parametrize(
    ("target", "allowed"), [(TARGET_CHANNEL, True), ("match", False), ("https://prefix.dev/conda-forge", False)]
)
def test_attestation_policy_on_the_real_signed_package(make_client: Factory, target: str, allowed: bool) -> None:
    signed = policy_document(
        "signed", ecosystems=["conda"], packages=("signed-package",),
        attestations=signer_attestations(targetChannel=target),
    )
    client = make_client(AGE, signed)
    listed = _names(json.loads(client.get("/conda/local/linux-64/repodata.json").data))
    assert listed == ([SIGNED] if allowed else [])
    response = client.get(f"/conda/local/linux-64/{SIGNED}")
    metrics = client.get("/-/metrics").get_data(as_text=True)  # the download's sidecars came from the cache
    assert 'gate_cache_misses_total{cache="conda.sidecar"}' in metrics
    assert 'gate_cache_hits_total{cache="conda.sidecar"}' in metrics
    if allowed:
        assert response.status_code == 200 and hashlib.sha256(response.data).hexdigest().startswith("54303491")
    else:
        assert response.status_code == 403
        assert "signed/attestations.targetChannel" in response.get_data(as_text=True)


def test_sidecars_and_channeldata_pass_through(make_client: Factory, channel: Path) -> None:
    client = make_client()
    sidecar = client.get(f"/conda/local/linux-64/{SIGNED}.sigs")
    assert sidecar.status_code == 200 and sidecar.data == (channel / "linux-64" / f"{SIGNED}.sigs").read_bytes()
    assert client.get(f"/conda/local/linux-64/{SIGNED}.v0.sigs").status_code == 404
    assert client.get("/conda/local/channeldata.json").status_code == 404
    (channel / "channeldata.json").write_text('{"channeldata_version": 1, "packages": {}}')
    try:
        assert client.get("/conda/local/channeldata.json").json == {"channeldata_version": 1, "packages": {}}
    finally:
        (channel / "channeldata.json").unlink()


def _signed_policy() -> dict[str, Any]:
    return policy_document(
        "signed", ecosystems=["conda"], packages=("signed-package",),
        attestations=signer_attestations(targetChannel=TARGET_CHANNEL),
    )


def test_a_sidecar_outage_hides_a_package_only_briefly(
    make_client: Factory, upstream: ChannelServer, tmp_path: Path
) -> None:
    moment = [NOW]
    client = make_client(AGE, _signed_policy(), clock=lambda: moment[0])
    upstream.failing.add(f"/linux-64/{SIGNED}.sigs")
    assert _names(json.loads(client.get("/conda/local/linux-64/repodata.json").data)) == []  # unverifiable
    upstream.failing.clear()
    moment[0] = NOW + dt.timedelta(seconds=30)
    assert _names(json.loads(client.get("/conda/local/linux-64/repodata.json").data)) == []  # reused a while
    moment[0] = NOW + dt.timedelta(seconds=61)
    assert _names(json.loads(client.get("/conda/local/linux-64/repodata.json").data)) == [SIGNED]
    with sqlite3.connect(tmp_path / "cache" / "cache.sqlite3") as db:
        expiries = [row[0] for row in db.execute("SELECT expires FROM entries WHERE namespace = 'conda.filtered'")]
    checked = (NOW + dt.timedelta(seconds=61)).timestamp()
    assert expiries and all(e is not None and e <= checked + SIDECAR_TTL + 1 for e in expiries)  # sidecars' TTL


def test_sidecars_are_fetched_only_for_packages_an_attestation_policy_covers(
    make_client: Factory, upstream: ChannelServer
) -> None:
    client = make_client(AGE, _signed_policy())
    assert client.get("/conda/local/noarch/repodata.json").status_code == 200
    assert not [p for p in upstream.paths() if ".sigs" in p]
    assert client.get("/conda/local/linux-64/repodata.json").status_code == 200
    assert f"/linux-64/{SIGNED}.sigs" in upstream.paths()


def test_a_channel_that_stops_serving_zst_is_read_from_repodata_json(
    make_client: Factory, upstream: ChannelServer
) -> None:
    client = make_client()
    first = client.get("/conda/local/noarch/repodata.json")
    upstream.not_found.add("/noarch/repodata.json.zst")
    again = client.get("/conda/local/noarch/repodata.json")
    assert again.status_code == 200 and json.loads(again.data) == json.loads(first.data)
    asked = [(r.path, r.status) for r in upstream.requests if "repodata" in r.path]
    assert asked[0] == ("/noarch/repodata.json.zst", 200) and asked[-1] == ("/noarch/repodata.json", 200)
    assert ("/noarch/repodata.json.zst", 404) in asked


def _channel_client(tmp_path: Path, name: str, url: str) -> FlaskClient:
    """The age policy in front of the channel at `url`, served as `name`."""
    blueprint = conda_blueprint({name: url})
    policies = write_policies(tmp_path / "policies", AGE)
    return gate_app(policies, cache_dir=tmp_path / "cache", clock=lambda: NOW, blueprints=(blueprint,)).test_client()


def test_a_filename_listed_twice_with_different_records_is_denied(tmp_path: Path) -> None:
    channel_dir = tmp_path / "dups"
    for name in ("dup", "same"):
        build_conda_package(channel_dir / "noarch", name, "1.0", timestamp_ms=epoch_ms(NOW - 40 * DAY))
    index_channel(channel_dir)
    repodata = read_repodata(channel_dir, "noarch")
    for name in ("dup-1.0-0.conda", "same-1.0-0.conda"):
        repodata["packages.conda"][name]["indexed_timestamp"] = epoch_ms(NOW - 30 * DAY)
    dup = repodata["packages.conda"]["dup-1.0-0.conda"]
    repodata["packages"] = {
        "dup-1.0-0.conda": {**dup, "sha256": "0" * 64, "indexed_timestamp": epoch_ms(NOW - 40 * DAY)},
        "same-1.0-0.conda": dict(repodata["packages.conda"]["same-1.0-0.conda"]),
    }
    write_repodata(channel_dir, "noarch", repodata)
    with ChannelServer(channel_dir) as server:
        client = _channel_client(tmp_path, "dups", server.url)
        filtered = json.loads(client.get("/conda/dups/noarch/repodata.json").data)
        # identical duplicates collapse to one record (the first section's); differing ones are both dropped
        assert [*filtered["packages"], *filtered["packages.conda"]] == ["same-1.0-0.conda"]
        refused = client.get("/conda/dups/noarch/dup-1.0-0.conda")
        assert refused.status_code == 403 and "lists this filename 2 times with different records" in refused.text
        assert client.get("/conda/dups/noarch/dup-1.0-0.conda.sigs").status_code in (403, 404)
        assert client.get("/conda/dups/noarch/same-1.0-0.conda").status_code == 200
        assert "/noarch/dup-1.0-0.conda" not in server.paths()


def test_a_json_key_given_twice_is_one_record_the_judged_one(tmp_path: Path) -> None:
    """`{"x.conda": A, "x.conda": B}`: gate parses one record (the last, as Python's json does), judges it and
    re-encodes the repodata, so clients see exactly the record that was judged."""
    channel_dir = tmp_path / "twice"
    build_conda_package(channel_dir / "noarch", "twice", "1.0", timestamp_ms=epoch_ms(NOW - 40 * DAY))
    index_channel(channel_dir)
    repodata = read_repodata(channel_dir, "noarch")
    record = repodata["packages.conda"]["twice-1.0-0.conda"]
    old = json.dumps({**record, "indexed_timestamp": epoch_ms(NOW - 30 * DAY)})
    fresh = json.dumps({**record, "indexed_timestamp": epoch_ms(NOW)})
    text = f'{{"info":{{"subdir":"noarch"}},"packages":{{}},"packages.conda":{{"twice-1.0-0.conda":{old},' \
           f'"twice-1.0-0.conda":{fresh}}}}}'.encode()
    (channel_dir / "noarch" / "repodata.json").write_bytes(text)
    (channel_dir / "noarch" / "repodata.json.zst").write_bytes(zstandard.ZstdCompressor().compress(text))
    with ChannelServer(channel_dir) as server:
        client = _channel_client(tmp_path, "twice", server.url)
        body = client.get("/conda/twice/noarch/repodata.json").data
        assert body.count(b"twice-1.0-0.conda") == 0  # the record parsed (the fresh one) is denied
        assert client.get("/conda/twice/noarch/twice-1.0-0.conda").status_code == 403
