"""CEP 16 shards through gate against a hostile upstream channel and hostile clients (the red-team of the shard
path): record values msgpack can hold and JSON cannot, the store's growth under clients and index rebuilds.
A real sharded channel on loopback, the conda blueprint in a Flask test client."""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zstandard
from flask.testing import FlaskClient

from gate.proxy import conda_shards as conda_shards_proxy
from gate.sources import conda_shards
from tests.proxy.conda.conftest import CondaGate
from tests.support.conda_channel import (
    build_conda_package,
    epoch_ms,
    index_channel,
    read_repodata,
    set_record_fields,
    write_repodata,
)
from tests.support.conda_policies import policy_document
from tests.support.conda_server import ChannelServer
from tests.support.conda_shards import decode, shard_path, write_shard

DAY = dt.timedelta(days=1)
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
AGE = policy_document("age", ecosystems=["conda"], minimumAge="7d")
BASE = "/conda/local/noarch"
INDEX = f"{BASE}/repodata_shards.msgpack.zst"
DEMO = "demo-1.0-0.conda"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """noarch: demo 1.0 and other 1.0, both indexed 30 days ago (allowed by AGE)."""
    channel = tmp_path_factory.mktemp("hostile-sharded") / "channel"
    for name in ("demo", "other"):
        build_conda_package(channel / "noarch", name, "1.0", timestamp_ms=epoch_ms(NOW - 40 * DAY))
    index_channel(channel)
    for filename in (DEMO, "other-1.0-0.conda"):
        set_record_fields(channel, "noarch", filename, indexed_timestamp=epoch_ms(NOW - 30 * DAY))
    return channel


@pytest.fixture
def upstream(pristine: Path, tmp_path: Path) -> Iterator[ChannelServer]:
    with ChannelServer(Path(shutil.copytree(pristine, tmp_path / "channel"))) as server:
        yield server


Factory = Callable[..., FlaskClient]


@pytest.fixture
def make_client(conda_gate: CondaGate) -> Factory:
    def make(clock: Callable[[], dt.datetime] = lambda: NOW) -> FlaskClient:
        return conda_gate((AGE,), clock)

    return make


def _address(client: FlaskClient, name: str) -> str:
    response = client.get(INDEX)
    assert response.status_code == 200, response.text
    address: bytes = decode(response.data)["shards"][name]
    return address.hex()


def _set_demo(upstream: ChannelServer, **fields: Any) -> None:
    """Rewrite demo's upstream shard (and its index entry) with `fields` set in demo 1.0's record."""
    shard: dict[str, Any] = decode(shard_path(upstream.channel_dir, "noarch", "demo").read_bytes())
    shard["packages.conda"][DEMO].update(fields)
    write_shard(upstream.channel_dir, "noarch", "demo", shard)


@pytest.mark.parametrize("size", [b"\x04\x00", msgspec.msgpack.Ext(5, b"xx"), 1e300, -1, True])
def test_a_shard_record_whose_size_is_not_a_byte_count_is_denied(
    make_client: Factory, upstream: ChannelServer, size: object
) -> None:
    """msgpack holds bin, ext and floats where a size belongs: such a record cannot bound its download, so it
    is unjudgeable (it was a 500 on download: the size reached the integrity check)."""
    _set_demo(upstream, size=size)
    client = make_client()
    shard = decode(client.get(f"{BASE}/shards/{_address(client, 'demo')}.msgpack.zst").data)
    assert shard["packages.conda"] == {}
    for path in (f"{BASE}/{DEMO}", f"{BASE}/{DEMO}.sigs"):
        denied = client.get(path)
        assert denied.status_code == 403, denied.text
        assert "gate.unjudgeable" in denied.text and "size is not a byte count" in denied.text


def test_a_repodata_record_whose_size_is_not_a_byte_count_is_denied(
    make_client: Factory, upstream: ChannelServer
) -> None:
    """The same in `repodata.json` (a string size), where clients that do not speak shards read it."""
    upstream.not_found.add("*/repodata_shards.msgpack.zst")
    set_record_fields(upstream.channel_dir, "noarch", DEMO, size="1024")
    client = make_client()
    listed: dict[str, Any] = client.get(f"{BASE}/repodata.json").get_json()
    assert DEMO not in listed["packages.conda"]
    denied = client.get(f"{BASE}/{DEMO}")
    assert denied.status_code == 403 and "size is not a byte count" in denied.text


def _rows(cache: Path, namespace: str | None = None) -> int:
    with sqlite3.connect(cache / "cache.sqlite3") as db:
        if namespace is None:
            return int(db.execute("SELECT count(*) FROM entries").fetchone()[0])
        return int(db.execute("SELECT count(*) FROM entries WHERE namespace = ?", (namespace,)).fetchone()[0])


def test_subdirs_a_client_names_leave_no_rows_in_the_store(
    make_client: Factory, upstream: ChannelServer, tmp_path: Path
) -> None:
    """Any client may name any subdir: each one the upstream has no shard index for is remembered (so that
    downloads from it do not ask again) in the worker's bounded memory, never as a store row per name."""
    client = make_client()
    assert client.get(INDEX).status_code == 200
    rows = _rows(tmp_path / "cache")
    for i in range(20):
        for _ in range(2):
            assert client.get(f"/conda/local/made-up-{i}/repodata_shards.msgpack.zst").status_code == 404
            assert client.get(f"/conda/local/made-up-{i}/{DEMO}").status_code in (404, 502)
    assert _rows(tmp_path / "cache") == rows
    asked = [path for path in upstream.paths() if path.endswith("/repodata_shards.msgpack.zst")]
    assert len(asked) == 1 + 20  # each absent index asked for once, however often a client names it


def _bytes(cache: Path, namespace: str) -> int:
    with sqlite3.connect(cache / "cache.sqlite3") as db:
        query = "SELECT coalesce(sum(length(value)), 0) FROM entries WHERE namespace = ?"
        return int(db.execute(query, (namespace,)).fetchone()[0])


def test_a_shard_named_by_many_index_builds_is_stored_once(
    make_client: Factory, upstream: ChannelServer, tmp_path: Path
) -> None:
    """Two workers (apps on one store): the one building the index has not made demo's shard, so each build
    names it under a new pending address, which the other worker serves. The bytes are stored once, under
    their sha256; each pending address only names them (the store grew by a shard's bytes per build)."""
    builder, server = make_client(), make_client()
    other: dict[str, Any] = decode(shard_path(upstream.channel_dir, "noarch", "other").read_bytes())
    served: set[bytes] = set()
    addresses = set()
    for build in range(6):
        write_shard(upstream.channel_dir, "noarch", "other", {**other, "removed": [f"other-0.{build}-0.conda"]})
        addresses.add(address := _address(builder, "demo"))  # the upstream index changed: a new build
        response = server.get(f"{BASE}/shards/{address}.msgpack.zst")
        assert response.status_code == 200
        served.add(response.data)
        assert server.get(f"{BASE}/shards/{address}.msgpack.zst").data == response.data
    assert len(addresses) == 6 and len(served) == 1
    assert _bytes(tmp_path / "cache", "conda.shards.served") == len(served.pop())


def _set_index_info(upstream: ChannelServer, **info: object) -> None:
    index_file = upstream.channel_dir / "noarch" / "repodata_shards.msgpack.zst"
    index = decode(index_file.read_bytes())
    index["info"].update(info)
    index_file.write_bytes(zstandard.ZstdCompressor().compress(msgspec.msgpack.encode(index)))


@pytest.mark.parametrize("key", ["base_url", "shards_base_url"])
def test_an_index_locating_files_at_no_url_is_a_bad_gateway(
    make_client: Factory, upstream: ChannelServer, key: str
) -> None:
    """`http://[` cannot be resolved (it was a 500 for every shard or download it locates); a download is
    judged from the repodata instead, and comes from beside it."""
    _set_index_info(upstream, **{key: "http://["})
    client = make_client()
    response = client.get(INDEX)
    assert response.status_code == 502 and f"info.{key} 'http://[' is not a URL reference" in response.text
    assert client.get(f"{BASE}/{DEMO}").status_code == 200
    assert "/noarch/repodata.json.zst" in upstream.paths()


def test_a_repodata_base_url_that_is_no_url_is_a_bad_gateway(make_client: Factory, upstream: ChannelServer) -> None:
    upstream.not_found.add("*/repodata_shards.msgpack.zst")
    repodata = read_repodata(upstream.channel_dir, "noarch")
    write_repodata(upstream.channel_dir, "noarch", {**repodata, "info": {**repodata["info"], "base_url": "http://["}})
    response = make_client().get(f"{BASE}/{DEMO}")
    assert response.status_code == 502 and "info.base_url 'http://[' is not a URL" in response.text


def _demo_record(version: str, **fields: Any) -> dict[str, Any]:
    return {"name": "demo", "version": version, "build": "0", "build_number": 0, "depends": [], "subdir": "noarch",
            "sha256": bytes(32), "size": 1, "indexed_timestamp": epoch_ms(NOW - 30 * DAY), **fields}


def test_a_download_decodes_only_its_own_records(
    make_client: Factory, upstream: ChannelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """demo's shard lists 2,000 builds: judging a download of one of them reads that record, not all 2,000
    (each download request decoded the whole shard: seconds of CPU per request for a large one, which any
    client could ask for again and again)."""
    shard: dict[str, Any] = decode(shard_path(upstream.channel_dir, "noarch", "demo").read_bytes())
    shard["packages.conda"].update({f"demo-1.{i}-0.conda": _demo_record(f"1.{i}") for i in range(1, 2001)})
    write_shard(upstream.channel_dir, "noarch", "demo", shard)
    read: list[str] = []
    original = conda_shards.hex_record

    def counted(record: dict[str, Any]) -> dict[str, Any]:
        read.append(record["version"])
        return original(record)

    monkeypatch.setattr(conda_shards, "hex_record", counted)
    client = make_client()
    for _ in range(3):
        assert client.get(f"{BASE}/{DEMO}").status_code == 200
    assert read == ["1.0"] * 6  # each request: the record's view, then the record whole (`Listed`)


SHAPES: list[tuple[str, bytes]] = [
    ("duplicated across sections, different", msgspec.msgpack.encode(
        {"packages": {DEMO: _demo_record("1.0")}, "packages.conda": {DEMO: _demo_record("1.0", size=2)}})),
    ("duplicated across sections, same", msgspec.msgpack.encode(
        {"packages": {DEMO: _demo_record("1.0")}, "packages.conda": {DEMO: _demo_record("1.0")}, "v3": {}})),
    # a map listing demo-1.0 twice: the last one counts, as when the whole shard is decoded
    ("a key twice in one map", b"\x81\xaepackages.conda\x82" + msgspec.msgpack.encode(DEMO)
     + msgspec.msgpack.encode(_demo_record("1.0", size=3)) + msgspec.msgpack.encode(DEMO)
     + msgspec.msgpack.encode(_demo_record("1.0", size=4))),
    ("a key that is not a string", b"\x81\xaepackages.conda\x82\x01\x80" + msgspec.msgpack.encode(DEMO)
     + msgspec.msgpack.encode(_demo_record("1.0"))),
    ("a section that is no map",
     msgspec.msgpack.encode({"packages": [1], "packages.conda": {DEMO: _demo_record("1.0")}})),
    ("a record that is no map", msgspec.msgpack.encode({"packages": {DEMO: 7}, "packages.conda": {}})),
    ("another package's record",
     msgspec.msgpack.encode({"packages.conda": {"other-1.0-0.conda": _demo_record("1.0")}})),
    ("another subdir", msgspec.msgpack.encode({"packages.conda": {DEMO: _demo_record("1.0", subdir="linux-64")}})),
    ("nil sections", msgspec.msgpack.encode({"packages": None, "packages.conda": {DEMO: _demo_record("1.0")}})),
    ("an unknown key holding maps", msgspec.msgpack.encode({"v3": [{}] * 1000, "packages.conda": {DEMO: _demo_record(
        "1.0", extra=[[{}]] * 100)}})),
    ("a name that is a map", msgspec.msgpack.encode({"packages.conda": {DEMO: _demo_record("1.0", name={"x": 1})}})),
    ("removed not strings", msgspec.msgpack.encode({"removed": [1, {}, "x"], "packages.conda": {DEMO: _demo_record(
        "1.0")}})),
    ("a record too large", b"\x81\xaepackages.conda\x81" + msgspec.msgpack.encode(DEMO) + b"\xc6\x00\x20\x00\x00"
     + bytes(2 << 20)),
    ("a duplicate encoded otherwise", msgspec.msgpack.encode({"packages": {DEMO: _demo_record("1.0")}})[:-0 or None]
     .replace(b"\x81\xa8packages", b"\x82\xa8packages") + b"\xaepackages.conda\x81" + msgspec.msgpack.encode(DEMO)
     + msgspec.msgpack.encode(dict(reversed(_demo_record("1.0").items())))),
]


@pytest.mark.parametrize(("shape", "data"), SHAPES, ids=[shape for shape, _ in SHAPES])
def test_one_file_is_read_from_a_shard_as_the_whole_shard_reads_it(shape: str, data: bytes) -> None:
    """The same records and problems, or the same refusal (a shard that cannot be read is a 502 either way)."""
    for filename in (DEMO, "other-1.0-0.conda", "demo-9-0.conda"):
        try:
            records, problems = conda_shards.shard_records(conda_shards.parse_shard(data), "demo", "noarch")
        except ValueError as err:
            with pytest.raises(ValueError) as refused:
                conda_shards.file_records(data, "demo", "noarch", filename)
            assert str(refused.value) == str(err), shape
            continue
        whole = ([(f, r) for f, r in records if f == filename], {f: p for f, p in problems.items() if f == filename})
        assert conda_shards.file_records(data, "demo", "noarch", filename) == whole, shape


def test_a_made_up_shard_address_takes_no_upstream_slot(
    make_client: Factory, upstream: ChannelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client asking for random shard addresses is answered 404 from the index's metadata and the names the
    worker holds in memory: it waits for no upstream slot (which it could exhaust) and reads no stored index
    (it took a slot and read the whole index, up to 64 MiB, per request)."""
    client = make_client()
    assert client.get(INDEX).status_code == 200
    slots: list[str] = []
    original = conda_shards_proxy.upstream_slot

    def counted(state: Any) -> Any:
        slots.append("slot")
        return original(state)

    def unread(*_: object) -> object:
        raise AssertionError("the stored index was read for an address it cannot name")

    monkeypatch.setattr(conda_shards_proxy, "upstream_slot", counted)
    monkeypatch.setattr(conda_shards_proxy.CondaShards, "_last_index", unread)
    for i in range(20):
        response = client.get(f"{BASE}/shards/{i:064x}.msgpack.zst")
        assert response.status_code == 404, response.text
    assert slots == []
    monkeypatch.undo()
    assert client.get(f"{BASE}/shards/{_address(client, 'demo')}.msgpack.zst").status_code == 200
