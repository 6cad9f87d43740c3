"""py-rattler solving through a real `gate serve` (gunicorn, loopback) against a sharded upstream channel:
rattler reads gate's filtered shards, gate fetches from the upstream only the shard index and the shards the
solve needs (never the whole repodata), and the solve gives the same packages as the monolithic path."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rattler import RepoDataRecord
from rattler.exceptions import SolverError

from tests.support.conda_channel import (
    build_conda_package,
    epoch_ms,
    index_channel,
    payload_relpath,
    set_record_fields,
    write_repodata,
)
from tests.support.conda_policies import policy_document, write_policies
from tests.support.conda_rattler import install, solve
from tests.support.conda_server import ChannelServer
from tests.support.conda_shards import shard_addresses
from tests.support.gate_server import running_gate

pytestmark = pytest.mark.slow
NOW = dt.datetime.now(dt.UTC)
DAY = dt.timedelta(days=1)
UNSHARDED = "*/repodata_shards.msgpack.zst"
WIDE = 60  # packages one solve needs at once: rattler asks for all their shards in parallel


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """noarch: demo 1.0 (30 days), demo 2.0 (2 days), app 1.0 and 2.0 needing demo, other 1.0 (not needed)."""
    channel_dir = tmp_path_factory.mktemp("sharded-upstream") / "channel"
    old = epoch_ms(NOW - 40 * DAY)
    build_conda_package(channel_dir / "noarch", "demo", "1.0", timestamp_ms=old)
    build_conda_package(channel_dir / "noarch", "demo", "2.0", timestamp_ms=epoch_ms(NOW - 3 * DAY))
    build_conda_package(channel_dir / "noarch", "app", "1.0", depends=["demo"], timestamp_ms=old)
    build_conda_package(channel_dir / "noarch", "app", "2.0", depends=["demo >=2"], timestamp_ms=old)
    build_conda_package(channel_dir / "noarch", "other", "1.0", timestamp_ms=old)
    index_channel(channel_dir)
    ages = {"demo-1.0-0.conda": 30, "demo-2.0-0.conda": 2, "app-1.0-0.conda": 30, "app-2.0-0.conda": 20,
            "other-1.0-0.conda": 30}
    for filename, days in ages.items():
        set_record_fields(channel_dir, "noarch", filename, indexed_timestamp=epoch_ms(NOW - days * DAY))
    return channel_dir


@pytest.fixture(scope="module")
def sharded(channel: Path) -> Iterator[ChannelServer]:
    with ChannelServer(channel) as server:
        yield server


@pytest.fixture(scope="module")
def unsharded(channel: Path) -> Iterator[ChannelServer]:
    """The same channel without its shard index: clients and gate use the monolithic repodata."""
    with ChannelServer(channel, not_found=[UNSHARDED]) as server:
        yield server


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChannelServer]:
    """A sharded channel of records only (no package files: for solving): `app` needs WIDE other packages."""
    channel_dir = tmp_path_factory.mktemp("wide") / "channel"
    indexed = epoch_ms(NOW - 30 * DAY)

    def record(name: str, depends: list[str]) -> dict[str, Any]:
        digest = hashlib.sha256(name.encode()).hexdigest()
        return {"name": name, "version": "1.0", "build": "0", "build_number": 0, "depends": depends,
                "subdir": "noarch", "noarch": "generic", "sha256": digest, "md5": digest[:32], "size": 1,
                "indexed_timestamp": indexed}

    records = {f"dep{i}-1.0-0.conda": record(f"dep{i}", []) for i in range(WIDE)}
    records["app-1.0-0.conda"] = record("app", [f"dep{i}" for i in range(WIDE)])
    write_repodata(channel_dir, "noarch", {"info": {"subdir": "noarch"}, "packages": {}, "packages.conda": records})
    with ChannelServer(channel_dir) as server:
        yield server


@pytest.fixture(scope="module")
def gate(
    sharded: ChannelServer, unsharded: ChannelServer, wide: ChannelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`gate serve` (one worker, the default 8 threads and 6 upstream slots) with a 7-day age policy, the
    channel as `sharded` and as `mono`, and the `wide` one; yields its base URL."""
    tmp = tmp_path_factory.mktemp("gate")
    policies = write_policies(tmp / "policies", policy_document("age", ecosystems=["conda"], minimumAge="7d"))
    args = [
        "--policy", str(policies), "--upstream", "http://127.0.0.1:9/simple/",
        "--conda-channel", f"sharded={sharded.url}/", "--conda-channel", f"mono={unsharded.url}/",
        "--conda-channel", f"wide={wide.url}/", "--cache-dir", str(tmp / "cache"), "--workers", "1",
    ]
    with running_gate(args, tmp / "serve.log") as url:
        yield url


def _solved(records: list[RepoDataRecord]) -> list[tuple[Any, ...]]:
    """What a solve decided, without where it was fetched from."""
    return sorted(
        (r.name.normalized, str(r.version), r.build, r.build_number, r.sha256, r.md5, r.size, r.depends, r.timestamp)
        for r in records
    )


def test_rattler_fetches_only_the_shards_it_needs(
    gate: str, sharded: ChannelServer, rattler_cache: Path, tmp_path: Path
) -> None:
    before = len(sharded.requests)
    records = solve(f"{gate}/conda/sharded", rattler_cache, ["app"])
    assert sorted((r.name.normalized, str(r.version)) for r in records) == [("app", "1.0"), ("demo", "1.0")]
    assert all(r.url.startswith(f"{gate}/conda/sharded/noarch/") for r in records)
    addresses = shard_addresses(sharded.channel_dir, "noarch")
    fetched = [path for path in sharded.paths()[before:]]
    assert sorted(fetched) == sorted([
        "/noarch/repodata_shards.msgpack.zst",
        *(f"/noarch/shards/{addresses[name]}.msgpack.zst" for name in ("app", "demo")),  # not `other`'s
    ])
    install(records, tmp_path / "env", rattler_cache)  # each download judged from its shard
    assert (tmp_path / "env" / payload_relpath("demo")).is_file()
    assert not [path for path in sharded.paths() if "repodata.json" in path]  # never the whole repodata


def test_the_same_packages_as_through_the_monolithic_repodata(
    gate: str, unsharded: ChannelServer, tmp_path: Path, rattler_cache: Path
) -> None:
    for specs in (["app"], ["demo"], ["app", "other"]):
        through_shards = solve(f"{gate}/conda/sharded", tmp_path / f"shards-{len(specs)}", specs)
        through_repodata = solve(f"{gate}/conda/mono", tmp_path / f"mono-{len(specs)}", specs)
        assert _solved(through_shards) == _solved(through_repodata)
    assert "/noarch/repodata.json.zst" in unsharded.paths()  # the monolithic path was really taken
    assert not [path for path in unsharded.paths() if "/shards/" in path]


def test_a_denied_version_is_not_solvable_through_shards(gate: str, rattler_cache: Path) -> None:
    for specs in (["demo>=2"], ["app>=2"]):  # demo 2.0 is 2 days old; app 2.0 needs it
        with pytest.raises(SolverError):
            solve(f"{gate}/conda/sharded", rattler_cache, specs)


def test_a_solve_needing_many_shards_at_once_waits_for_upstream_slots(
    gate: str, wide: ChannelServer, rattler_cache: Path
) -> None:
    """rattler asks for all WIDE shards at once and does not retry a 503: they wait for gate's 6 slots."""
    records = solve(f"{gate}/conda/wide", rattler_cache, ["app"])
    assert len(records) == WIDE + 1
    assert len([path for path in wide.paths() if "/shards/" in path]) == WIDE + 1
