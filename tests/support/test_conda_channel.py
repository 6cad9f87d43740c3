"""Tests for the local conda channel support code, with py-rattler as the real client (loopback only)."""

from __future__ import annotations

import bz2
import datetime as dt
import hashlib
import json
import urllib.request
from pathlib import Path
from urllib.error import HTTPError

import pytest
import zstandard
from rattler import RepoDataRecord
from rattler.exceptions import CacheDirError, GatewayError

from .conda_channel import (
    DAY_MS,
    FIXTURE_CHANNEL,
    SIGNED_PACKAGE,
    JsonObject,
    add_fixture_signed_package,
    build_conda_package,
    epoch_ms,
    index_channel,
    payload_relpath,
    payload_text,
    read_repodata,
    set_record_fields,
    write_sidecar,
)
from .conda_rattler import install, solve
from .conda_server import ChannelServer, ServedRequest, serve_channel

OLD_MS = 1_600_000_000_000  # 2020-09-13
NEW_MS = 1_700_000_000_000  # 2023-11-14
SHARD_INDEX = "/noarch/repodata_shards.msgpack.zst"


@pytest.fixture
def channel(tmp_path: Path) -> Path:
    """Return an indexed channel with demo 1.0 (.conda, older) and demo 2.0 (.tar.bz2, newer) in noarch."""
    channel_dir = tmp_path / "channel"
    build_conda_package(channel_dir / "noarch", "demo", "1.0", timestamp_ms=OLD_MS)
    build_conda_package(channel_dir / "noarch", "demo", "2.0", timestamp_ms=NEW_MS, fmt="tar.bz2")
    index_channel(channel_dir)
    return channel_dir


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    """GET url and return status, body and headers (HTTP errors included, connections closed)."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), dict(response.headers)
    except HTTPError as error:
        with error:
            return error.code, error.read(), dict(error.headers)


def versions(records: list[RepoDataRecord]) -> list[str]:
    """Return the versions of solved records."""
    return [str(record.version) for record in records]


def decompress(path: Path) -> bytes:
    """Return the content of a .zst file."""
    return zstandard.ZstdDecompressor().decompress(path.read_bytes(), max_output_size=1 << 24)


# --- building, indexing, editing ----------------------------------------------------------------------------


def test_index_writes_records_and_variants(channel: Path) -> None:
    """Indexing yields both records with hashes of the files plus .zst and shards, nothing else."""
    repodata = read_repodata(channel, "noarch")
    old = repodata["packages.conda"]["demo-1.0-0.conda"]
    new = repodata["packages"]["demo-2.0-0.tar.bz2"]
    assert (old["timestamp"], new["timestamp"]) == (OLD_MS, NEW_MS)
    assert old["sha256"] == hashlib.sha256((channel / "noarch" / "demo-1.0-0.conda").read_bytes()).hexdigest()
    assert old["noarch"] == "generic" and "indexed_timestamp" in old
    names = {p.name for p in (channel / "noarch").iterdir()}
    assert names == {
        "demo-1.0-0.conda",
        "demo-2.0-0.tar.bz2",
        "repodata.json",
        "repodata.json.zst",
        "repodata_shards.msgpack.zst",
        "shards",
    }
    assert len(list((channel / "noarch" / "shards").iterdir())) == 1
    assert json.loads(decompress(channel / "noarch" / "repodata.json.zst")) == repodata
    assert not (channel / ".tmp").exists()


def test_set_record_fields_rewrites_variants_and_drops_stale_ones(channel: Path) -> None:
    """Edits land in repodata.json and .zst, replace the shard, and delete variants rattler never writes."""
    noarch = channel / "noarch"
    (noarch / "repodata.json.bz2").write_bytes(bz2.compress(b"{}"))
    (noarch / "current_repodata.json").write_text("{}")
    old_shards = set((noarch / "shards").iterdir())
    record = set_record_fields(channel, "noarch", "demo-2.0-0.tar.bz2", indexed_timestamp=42, license=None)
    assert record["indexed_timestamp"] == 42 and "license" not in record
    assert json.loads(decompress(noarch / "repodata.json.zst")) == read_repodata(channel, "noarch")
    assert not (noarch / "repodata.json.bz2").exists() and not (noarch / "current_repodata.json").exists()
    new_shards = set((noarch / "shards").iterdir())
    assert len(new_shards) == 1 and new_shards != old_shards


def test_reindex_keeps_known_edits_and_refreshes_rebuilt_files(channel: Path) -> None:
    """A re-index keeps edited fields rattler models, drops unknown ones, and re-reads a rebuilt package."""
    set_record_fields(channel, "noarch", "demo-2.0-0.tar.bz2", timestamp=7, x_gate_note="dropped")
    rebuilt = build_conda_package(channel / "noarch", "demo", "1.0", depends=["python"], timestamp_ms=9)
    index_channel(channel)
    records = read_repodata(channel, "noarch")
    assert records["packages"]["demo-2.0-0.tar.bz2"]["timestamp"] == 7
    assert "x_gate_note" not in records["packages"]["demo-2.0-0.tar.bz2"]
    fresh = records["packages.conda"]["demo-1.0-0.conda"]
    assert fresh["sha256"] == hashlib.sha256(rebuilt.read_bytes()).hexdigest()
    assert (fresh["depends"], fresh["timestamp"]) == (["python"], 9)
    assert len(list((channel / "noarch" / "shards").iterdir())) == 1


def test_rattler_index_advertises_sidecars(channel: Path) -> None:
    """rattler's indexer sets attestations_sha256 for a `.sigs` sidecar and drops it with the sidecar."""
    package = channel / "noarch" / "demo-1.0-0.conda"
    body = (FIXTURE_CHANNEL / "linux-64" / f"{SIGNED_PACKAGE}.sigs").read_bytes()  # other subject: accepted
    digest = write_sidecar(package, body)
    index_channel(channel)
    assert read_repodata(channel, "noarch")["packages.conda"][package.name]["attestations_sha256"] == digest
    (package.parent / f"{package.name}.sigs").unlink()
    index_channel(channel)
    assert "attestations_sha256" not in read_repodata(channel, "noarch")["packages.conda"][package.name]


def test_rattler_index_rejects_empty_sidecar(channel: Path) -> None:
    """rattler's indexer refuses a sidecar that is not a non-empty JSON array."""
    write_sidecar(channel / "noarch" / "demo-1.0-0.conda", b"[]")
    with pytest.raises(CacheDirError, match="non-empty JSON array"):
        index_channel(channel)


# --- serving -----------------------------------------------------------------------------------------------


def test_server_serves_logs_hides_and_revalidates(channel: Path) -> None:
    """The server serves files with a strong ETag, answers If-None-Match with 304, and 404s hidden paths."""
    log: list[ServedRequest] = []
    with serve_channel(channel, request_log=log, not_found={"*.zst"}) as url:
        status, body, headers = fetch(f"{url}/noarch/repodata.json")
        assert status == 200 and body == (channel / "noarch" / "repodata.json").read_bytes()
        assert headers["ETag"] == f'"{hashlib.sha256(body).hexdigest()}"'
        assert fetch(f"{url}/noarch/repodata.json", {"If-None-Match": headers["ETag"]})[0] == 304
        assert fetch(f"{url}/noarch/repodata.json.zst")[0] == 404
        assert fetch(f"{url}/noarch/missing.conda")[0] == 404
    assert [(r.path, r.status) for r in log] == [
        ("/noarch/repodata.json", 200),
        ("/noarch/repodata.json", 304),
        ("/noarch/repodata.json.zst", 404),
        ("/noarch/missing.conda", 404),
    ]


def test_fixture_signed_package_is_served_with_attestations_sha256(tmp_path: Path) -> None:
    """The real signed package is served in linux-64 with the fixture's record plus attestations_sha256."""
    channel_dir = tmp_path / "channel"
    add_fixture_signed_package(channel_dir)
    fixture = json.loads((FIXTURE_CHANNEL / "linux-64" / "repodata.json").read_bytes())
    with serve_channel(channel_dir) as url:
        served: JsonObject = json.loads(fetch(f"{url}/linux-64/repodata.json")[1])
        record = served["packages.conda"][SIGNED_PACKAGE]
        status, sidecar, _ = fetch(f"{url}/linux-64/{SIGNED_PACKAGE}.sigs")
        immutable = fetch(f"{url}/linux-64/{SIGNED_PACKAGE}.sigs.{record['attestations_sha256']}")
    assert status == 200 and record["attestations_sha256"] == hashlib.sha256(sidecar).hexdigest()
    assert immutable[:2] == (200, sidecar)
    expected = fixture["packages.conda"][SIGNED_PACKAGE]
    assert {key: record[key] for key in expected} == expected


# --- rattler as the real client ----------------------------------------------------------------------------


@pytest.mark.slow
def test_rattler_solves_newest_and_installs_payload(
    channel: Path, rattler_cache: Path, tmp_path: Path
) -> None:
    """rattler picks demo 2.0 over the served channel and installs its payload file."""
    with ChannelServer(channel) as server:
        records = solve(server.url, rattler_cache, ["demo"])
        assert versions(records) == ["2.0"]
        assert records[0].url == f"{server.url}/noarch/demo-2.0-0.tar.bz2"
        install(records, tmp_path / "env", rattler_cache)
    payload = tmp_path / "env" / payload_relpath("demo")
    assert payload.read_text() == payload_text("demo", "2.0", "0")
    shard_index, shard, package = server.paths()  # no repodata.json* at all while shards exist
    assert (shard_index, package) == (SHARD_INDEX, "/noarch/demo-2.0-0.tar.bz2")
    assert shard.startswith("/noarch/shards/")
    assert list((rattler_cache / "repodata").glob("*.shards-cache-v1"))
    assert (rattler_cache / "pkgs" / "demo-2.0-0" / payload_relpath("demo")).is_file()


@pytest.mark.slow
def test_rattler_sees_record_edits_through_shards(channel: Path, rattler_cache: Path) -> None:
    """Edits reach rattler through the regenerated shards (exclude_newer drops 2.0; bogus hash visible)."""
    now_ms = epoch_ms(dt.datetime.now(dt.UTC))
    fake = "0" * 64  # set after the last index: a bogus attestation hash for mismatch tests
    set_record_fields(
        channel,
        "noarch",
        "demo-1.0-0.conda",
        indexed_timestamp=now_ms - 10 * DAY_MS,
        attestations_sha256=fake,
    )
    set_record_fields(channel, "noarch", "demo-2.0-0.tar.bz2", indexed_timestamp=now_ms - DAY_MS)
    with ChannelServer(channel) as server:
        records = solve(server.url, rattler_cache, ["demo"], exclude_newer=dt.timedelta(days=3))
    assert versions(records) == ["1.0"] and records[0].attestations_sha256 == bytes(32)
    assert SHARD_INDEX in server.paths() and "/noarch/repodata.json" not in server.paths()


@pytest.mark.slow
def test_rattler_revalidates_shard_index_with_etag(channel: Path, rattler_cache: Path) -> None:
    """A warm cache revalidates the shard index with If-None-Match; our 304 with ETag is accepted."""
    with ChannelServer(channel) as server:
        solve(server.url, rattler_cache, ["demo"])
        assert versions(solve(server.url, rattler_cache, ["demo"])) == ["2.0"]
    assert [(r.path, r.status) for r in server.requests if r.path == SHARD_INDEX] == [
        (SHARD_INDEX, 200),
        (SHARD_INDEX, 304),
    ]


@pytest.mark.parametrize(
    ("hidden", "with_bz2", "fetched"),
    [
        (["*/repodata_shards.msgpack.zst"], False, "/noarch/repodata.json.zst"),
        (["*/repodata_shards.msgpack.zst", "*.zst"], True, "/noarch/repodata.json.bz2"),
        (["*/repodata_shards.msgpack.zst", "*.zst"], False, "/noarch/repodata.json"),
    ],
)
@pytest.mark.slow
def test_rattler_falls_back_without_shard_index(
    channel: Path, rattler_cache: Path, hidden: list[str], with_bz2: bool, fetched: str
) -> None:
    """Without a shard index rattler HEADs .zst and .bz2, then GETs the best variant that exists."""
    if with_bz2:
        (channel / "noarch" / "repodata.json.bz2").write_bytes(
            bz2.compress((channel / "noarch" / "repodata.json").read_bytes())
        )
    with ChannelServer(channel, not_found=hidden) as server:
        assert versions(solve(server.url, rattler_cache, ["demo"])) == ["2.0"]
    assert server.paths("HEAD") in (
        ["/noarch/repodata.json.zst", "/noarch/repodata.json.bz2"],
        ["/noarch/repodata.json.bz2", "/noarch/repodata.json.zst"],
    )
    assert server.paths() == [SHARD_INDEX, fetched]


@pytest.mark.parametrize(
    ("hidden", "message"),
    [
        (["*repodata*"], "could not find subdir 'noarch'"),
        (["/noarch/shards/*"], "404"),
    ],
)
@pytest.mark.slow
def test_rattler_fails_without_noarch_repodata_or_shard(
    channel: Path, rattler_cache: Path, hidden: list[str], message: str
) -> None:
    """No noarch repodata at all, or a 404 on a listed shard, is fatal: no further fallback."""
    with ChannelServer(channel, not_found=hidden) as server, pytest.raises(GatewayError, match=message):
        solve(server.url, rattler_cache, ["demo"])


@pytest.mark.slow
def test_rattler_reads_attestations_sha256_of_fixture_package(tmp_path: Path, rattler_cache: Path) -> None:
    """rattler solves the fixture's linux-64 package (empty noarch) and exposes attestations_sha256."""
    channel_dir = tmp_path / "channel"
    record = add_fixture_signed_package(channel_dir)
    with ChannelServer(channel_dir) as server:
        records = solve(server.url, rattler_cache, ["signed-package"], platforms=["linux-64", "noarch"])
    assert [r.file_name for r in records] == [SIGNED_PACKAGE]
    assert records[0].attestations_sha256 == bytes.fromhex(record["attestations_sha256"])
    assert not any(path.endswith(".sigs") for path in server.paths())
