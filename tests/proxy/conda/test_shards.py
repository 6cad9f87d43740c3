"""CEP 16 sharded repodata through the conda blueprint (Flask test client) in front of a real sharded channel
on loopback: gate's index lists every name without fetching a shard, each shard is fetched only when asked
for, checked against its upstream address, filtered by policy and served under the sha256 of its bytes."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zstandard
from flask.testing import FlaskClient

from tests.proxy.conda.conftest import CondaGate
from tests.support.conda_channel import build_conda_package, epoch_ms, index_channel, set_record_fields
from tests.support.conda_policies import policy_document
from tests.support.conda_server import ChannelServer
from tests.support.conda_shards import decode, shard_addresses, shard_path, tamper_shard, write_shard

DAY = dt.timedelta(days=1)
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
AGE = policy_document("age", ecosystems=["conda"], minimumAge="7d")
BASE = "/conda/local/noarch"
INDEX = f"{BASE}/repodata_shards.msgpack.zst"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """noarch: demo 1.0 (indexed 30 days ago), demo 2.0 (2 days ago, .tar.bz2), app 1.0 (needs demo), other."""
    channel = tmp_path_factory.mktemp("sharded") / "channel"
    old = epoch_ms(NOW - 40 * DAY)
    build_conda_package(channel / "noarch", "demo", "1.0", timestamp_ms=old)
    build_conda_package(channel / "noarch", "demo", "2.0", timestamp_ms=epoch_ms(NOW - 3 * DAY), fmt="tar.bz2")
    build_conda_package(channel / "noarch", "app", "1.0", depends=["demo"], timestamp_ms=old)
    build_conda_package(channel / "noarch", "other", "1.0", timestamp_ms=old)
    index_channel(channel)
    for filename, days in (("demo-1.0-0.conda", 30), ("demo-2.0-0.tar.bz2", 2), ("app-1.0-0.conda", 30),
                           ("other-1.0-0.conda", 30)):
        set_record_fields(channel, "noarch", filename, indexed_timestamp=epoch_ms(NOW - days * DAY))
    return channel


@pytest.fixture
def channel(pristine: Path, tmp_path: Path) -> Path:
    """A copy of the sharded channel this test may make hostile."""
    return Path(shutil.copytree(pristine, tmp_path / "channel"))


Factory = Callable[..., FlaskClient]


@pytest.fixture
def make_client(conda_gate: CondaGate) -> Factory:
    def make(*policies: dict[str, Any], clock: Callable[[], dt.datetime] = lambda: NOW) -> FlaskClient:
        return conda_gate(policies or (AGE,), clock)

    return make


def _index(client: FlaskClient) -> dict[str, Any]:
    response = client.get(INDEX)
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "max-age=0, must-revalidate"
    index: dict[str, Any] = decode(response.data)
    return index


def _shard(client: FlaskClient, index: dict[str, Any], name: str) -> tuple[dict[str, Any], bytes]:
    response = client.get(f"{BASE}/shards/{index['shards'][name].hex()}.msgpack.zst")
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    shard: dict[str, Any] = decode(response.data)
    return shard, response.data


def _shard_requests(upstream: ChannelServer) -> list[str]:
    return [path for path in upstream.paths() if "/shards/" in path]


def test_the_index_names_every_package_and_points_at_gate(make_client: Factory, upstream: ChannelServer) -> None:
    index = _index(make_client())
    assert sorted(index["shards"]) == ["app", "demo", "other"]
    assert all(isinstance(a, bytes) and len(a) == 32 for a in index["shards"].values())
    assert index["info"] == {"subdir": "noarch", "base_url": "./", "shards_base_url": "./shards/",
                             "created_at": index["info"]["created_at"]}
    upstream_addresses = shard_addresses(upstream.channel_dir, "noarch")
    assert {a.hex() for a in index["shards"].values()}.isdisjoint(upstream_addresses.values())
    assert upstream.paths() == ["/noarch/repodata_shards.msgpack.zst"]  # no shard, no monolithic repodata


def test_a_shard_holds_only_allowed_records_under_the_sha256_of_its_bytes(
    make_client: Factory, upstream: ChannelServer
) -> None:
    client = make_client()
    shard, body = _shard(client, _index(client), "demo")
    assert list(shard["packages.conda"]) == ["demo-1.0-0.conda"]
    assert shard["packages"] == {} and shard["removed"] == []  # demo 2.0 is 2 days old: denied
    record = shard["packages.conda"]["demo-1.0-0.conda"]
    assert isinstance(record["sha256"], bytes) and len(record["sha256"]) == 32  # as rattler writes shards
    demo = shard_addresses(upstream.channel_dir, "noarch")["demo"]
    assert _shard_requests(upstream) == [f"/noarch/shards/{demo}.msgpack.zst"]
    assert _index(client)["shards"]["demo"] == _index(client)["shards"]["demo"]  # an address stays while it holds
    other = decode(shard_path(upstream.channel_dir, "noarch", "other").read_bytes())
    write_shard(upstream.channel_dir, "noarch", "other", {**other, "removed": ["other-0.9-0.conda"]})
    again = _index(client)  # rebuilt (upstream changed): demo's filtered shard is named by the sha256 of its bytes
    assert again["shards"]["demo"] == hashlib.sha256(body).digest()
    assert _shard(client, again, "demo")[1] == body
    assert len(_shard_requests(upstream)) == 1  # content-addressed: fetched from upstream once


def test_a_denied_record_is_in_no_served_shard(make_client: Factory) -> None:
    client = make_client()
    index = _index(client)
    served = [_shard(client, index, name)[0] for name in index["shards"]]
    filenames = {f for shard in served for section in ("packages", "packages.conda") for f in shard[section]}
    assert filenames == {"demo-1.0-0.conda", "app-1.0-0.conda", "other-1.0-0.conda"}


def test_a_record_coming_of_age_gets_a_new_address(make_client: Factory) -> None:
    moment = [NOW]
    client = make_client(clock=lambda: moment[0])
    index = _index(client)
    before, _ = _shard(client, index, "demo")
    moment[0] = NOW + 6 * DAY  # demo 2.0 is 8 days old now
    assert client.get(f"{BASE}/shards/{index['shards']['demo'].hex()}.msgpack.zst").status_code == 404
    after, _ = _shard(client, _index(client), "demo")
    assert list(before["packages"]) == [] and list(after["packages"]) == ["demo-2.0-0.tar.bz2"]


def test_an_address_gate_never_gave_is_not_found(make_client: Factory, upstream: ChannelServer) -> None:
    client = make_client()
    upstream_demo = shard_addresses(upstream.channel_dir, "noarch")["demo"]
    for address in (upstream_demo, "0" * 64):
        response = client.get(f"{BASE}/shards/{address}.msgpack.zst")
        assert response.status_code == 404 and "fetch repodata_shards.msgpack.zst again" in response.text
    assert client.get(f"{BASE}/shards/{'A' * 64}.msgpack.zst").status_code == 404
    assert _shard_requests(upstream) == []


def test_a_tampered_upstream_shard_is_never_served(make_client: Factory, upstream: ChannelServer) -> None:
    """The upstream rewrote demo's shard in place (backdated, so demo 2.0 would pass the age rule)."""
    tamper_shard(upstream.channel_dir, "noarch", "demo")
    client = make_client()
    index = _index(client)
    for _ in range(2):  # nothing of it is kept: the second request fails the same way
        response = client.get(f"{BASE}/shards/{index['shards']['demo'].hex()}.msgpack.zst")
        assert response.status_code == 502
        assert "does not hash to the address its index gives" in response.text
    assert _shard(client, index, "app")[0]["packages.conda"]  # other shards are unaffected


def test_records_misplaced_in_a_shard_are_dropped(make_client: Factory, upstream: ChannelServer) -> None:
    """A shard may hold only its own package's records, of this subdir; unknown sections are dropped."""
    channel = upstream.channel_dir
    demo: dict[str, Any] = decode(shard_path(channel, "noarch", "demo").read_bytes())
    good = demo["packages.conda"]["demo-1.0-0.conda"]
    demo["packages.conda"].update({
        "other-1.0-0.conda": decode(shard_path(channel, "noarch", "other").read_bytes())["packages.conda"][
            "other-1.0-0.conda"],
        "demo-1.1-0.conda": {**good, "version": "1.1", "subdir": "linux-64"},
    })
    demo["v3"] = {"whl": {"demo-1.0-py3-none-any.whl": {"name": "demo"}}}
    write_shard(channel, "noarch", "demo", demo)
    client = make_client()
    shard, _ = _shard(client, _index(client), "demo")
    assert shard == {"packages": {}, "packages.conda": {"demo-1.0-0.conda": good}, "removed": []}


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (zstandard.ZstdCompressor().compress(b"\0" * ((64 << 20) + 1)), "exceeds"),  # a zstd bomb
        (b"not zstd at all", "not valid zstd"),
        (zstandard.ZstdCompressor().compress(b"\x91" * 100_000 + b"\xc0"), "Expected `object`, got `array`"),
        # nesting under a key gate skips: msgspec's guard holds while skipping too
        (zstandard.ZstdCompressor().compress(b"\x81\xa2v3" + b"\x91" * 100_000 + b"\xc0"), "nests too deep"),
        (zstandard.ZstdCompressor().compress(b"\x81\xa8packages\x91\x01"), "`packages` is not as expected"),
        (zstandard.ZstdCompressor().compress(b"\x82\xa1a"), "not msgpack"),
        # a record larger than any real one (2 MiB): refused unread
        (zstandard.ZstdCompressor().compress(b"\x81\xaepackages.conda\x81\xa1x\xc6\x00\x20\x00\x00"
                                             + bytes(2 << 20)), "more than 1048576"),
    ],
)
def test_a_hostile_upstream_shard_is_a_bad_gateway(
    make_client: Factory, upstream: ChannelServer, blob: bytes, message: str
) -> None:
    write_shard(upstream.channel_dir, "noarch", "demo", blob)
    client = make_client()
    response = client.get(f"{BASE}/shards/{_index(client)['shards']['demo'].hex()}.msgpack.zst")
    assert response.status_code == 502 and message in response.text


def test_a_hostile_index_is_a_bad_gateway(make_client: Factory, upstream: ChannelServer) -> None:
    index_file = upstream.channel_dir / "noarch" / "repodata_shards.msgpack.zst"
    index_file.write_bytes(zstandard.ZstdCompressor().compress(b"\x82\xa4info\x80\xa6shards\x81\xa4demo\xa3abc"))
    response = make_client().get(INDEX)
    assert response.status_code == 502 and "not a 32-byte sha256" in response.text


def test_an_unsharded_upstream_makes_clients_fall_back(make_client: Factory, upstream: ChannelServer) -> None:
    upstream.not_found.add("*/repodata_shards.msgpack.zst")
    client = make_client()
    assert client.get(INDEX).status_code == 404
    assert client.get(f"{BASE}/repodata.json").status_code == 200
    for variant in ("repodata.json.jlap", "current_repodata.json", "repodata.json.bz2"):
        assert client.get(f"{BASE}/{variant}").status_code == 404


def test_the_index_revalidates_with_its_etag(make_client: Factory) -> None:
    client = make_client()
    first = client.get(INDEX)
    again = client.get(INDEX, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.headers["ETag"] == first.headers["ETag"]


def test_shards_elsewhere_are_fetched_only_from_allowed_hosts(make_client: Factory, upstream: ChannelServer) -> None:
    """An index may put its shards on another host (a CDN): gate fetches them only from an allowed one."""
    index_file = upstream.channel_dir / "noarch" / "repodata_shards.msgpack.zst"
    index = decode(index_file.read_bytes())
    index["info"]["shards_base_url"] = "http://198.51.100.7/shards/"  # TEST-NET-2: never reached
    index_file.write_bytes(zstandard.ZstdCompressor().compress(msgspec.msgpack.encode(index)))
    client = make_client()
    response = client.get(f"{BASE}/shards/{_index(client)['shards']['demo'].hex()}.msgpack.zst")
    assert response.status_code == 502 and "gate does not fetch from 198.51.100.7:80" in response.text


def test_a_download_from_a_sharded_channel_is_judged_from_its_shard(
    make_client: Factory, upstream: ChannelServer
) -> None:
    client = make_client()
    assert client.get(f"{BASE}/demo-1.0-0.conda").status_code == 200
    denied = client.get(f"{BASE}/demo-2.0-0.tar.bz2")
    assert denied.status_code == 403 and "age/minimumAge" in denied.text
    assert not [path for path in upstream.paths() if "repodata.json" in path]  # no whole repodata needed
    assert client.get(f"{BASE}/demo-9.0-0.conda").status_code == 404  # nor listed in the repodata
    assert "/noarch/repodata.json.zst" in upstream.paths()


def test_a_download_falls_back_to_the_repodata_when_the_shard_is_unusable(
    make_client: Factory, upstream: ChannelServer
) -> None:
    """A tampered shard is not evidence; the package is judged from the repodata instead (still 403)."""
    tamper_shard(upstream.channel_dir, "noarch", "demo")
    client = make_client()
    denied = client.get(f"{BASE}/demo-2.0-0.tar.bz2")
    assert denied.status_code == 403 and "age/minimumAge" in denied.text
    assert "/noarch/repodata.json.zst" in upstream.paths()


def test_an_index_with_too_many_names_is_a_bad_gateway(
    make_client: Factory, upstream: ChannelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gate.sources.conda_shards.MAX_NAMES", 2)
    response = make_client().get(INDEX)
    assert response.status_code == 502 and "lists more than 2 package names" in response.text


@pytest.mark.parametrize("created_at", ["yesterday", "2024-01-01", "2024-01-01T00:00:00", 12])
def test_an_unreadable_created_at_is_left_out(
    make_client: Factory, upstream: ChannelServer, created_at: object
) -> None:
    """rattler rejects a whole index whose `created_at` is not an RFC 3339 time; gate's has none then."""
    index_file = upstream.channel_dir / "noarch" / "repodata_shards.msgpack.zst"
    index = decode(index_file.read_bytes())
    index["info"]["created_at"] = created_at
    index_file.write_bytes(zstandard.ZstdCompressor().compress(msgspec.msgpack.encode(index)))
    assert "created_at" not in _index(make_client())["info"]


def test_an_address_never_names_other_bytes(make_client: Factory, upstream: ChannelServer, tmp_path: Path) -> None:
    """Even when the store lost what an address served and kept an index past its decisions (a race, another
    backend), an address whose content would now differ is a 404 and the index is rebuilt, never other bytes."""
    moment = [NOW]
    client = make_client(clock=lambda: moment[0])
    pending = _index(client)["shards"]["demo"]
    before, body = _shard(client, _index(client), "demo")
    other = decode(shard_path(upstream.channel_dir, "noarch", "other").read_bytes())
    write_shard(upstream.channel_dir, "noarch", "other", {**other, "removed": ["other-0.9-0.conda"]})
    named = _index(client)["shards"]["demo"]
    assert named == hashlib.sha256(body).digest() != pending
    with sqlite3.connect(tmp_path / "cache" / "cache.sqlite3") as db:
        db.execute("DELETE FROM entries WHERE namespace = 'conda.shards.served'")
        db.execute("UPDATE entries SET expires = NULL WHERE namespace = 'conda.shards.gate-index'")
    moment[0] = NOW + 6 * DAY  # demo 2.0 comes of age: demo's shard is other bytes now
    for address in (named, pending):
        assert client.get(f"{BASE}/shards/{address.hex()}.msgpack.zst").status_code == 404
    after, _ = _shard(client, _index(client), "demo")
    assert list(before["packages"]) == [] and list(after["packages"]) == ["demo-2.0-0.tar.bz2"]
