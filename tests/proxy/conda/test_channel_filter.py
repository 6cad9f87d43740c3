"""Repodata as gate serves it: which paths are filtered, 404'd or decided, and what filtering keeps."""

from __future__ import annotations

import json
from typing import Any

import pytest
import zstandard

from gate.facts import FileFacts, Unidentified
from gate.gather.conda import record_facts
from gate.proxy.conda_paths import Served, classify, valid_subdir
from gate.sources.conda_channel import (
    compress_zst,
    decompress_zst,
    find_record,
    find_records,
    package_url,
    parse_repodata,
)
from tests.conftest import FIXTURES
from tests.support.conda_reference import encode, filter_repodata, iter_records, served_repodata, unique_records

SHA = "ab" * 32


def _repodata() -> dict[str, Any]:
    return {
        "info": {"subdir": "noarch", "base_url": "https://cdn.example/ch/noarch/"},
        "repodata_version": 2,
        "packages": {"old-1.0-0.tar.bz2": {"name": "old", "version": "1.0", "build": "0", "sha256": SHA}},
        "packages.conda": {
            "new-2.0-0.conda": {"name": "new", "version": "2.0", "build": "0", "sha256": SHA},
            "keep-1.0-0.conda": {"name": "keep", "version": "1.0", "build": "0", "sha256": SHA},
        },
        "removed": ["gone-1.0-0.conda"],
        "x_unknown": 1,
        "x_list": ["a"],
        "x_map": {"key": "value"},
        "packages.future": {"new-2.0-0.future": {"name": "new", "version": "2.0", "sha256": SHA}},
    }


@pytest.mark.parametrize(
    ("name", "served"),
    [
        ("repodata.json", Served.REPODATA),
        ("repodata.json.zst", Served.REPODATA_ZST),
        ("repodata.json.bz2", Served.UNFILTERED),
        ("current_repodata.json", Served.UNFILTERED),
        ("repodata_from_packages.json", Served.UNFILTERED),
        ("repodata.jlap", Served.UNFILTERED),
        ("repodata_shards.msgpack.zst", Served.SHARD_INDEX),  # gate's own index of its filtered shards
        ("shards/" + SHA + ".msgpack.zst", Served.SHARD),
        ("shards/" + SHA.upper() + ".msgpack.zst", Served.UNFILTERED),
        ("shards/x/" + SHA + ".msgpack.zst", Served.UNFILTERED),
        ("repodata_shards_daily.msgpack.zst", Served.UNFILTERED),
        ("demo-1.0-0.conda", Served.PACKAGE),
        ("demo-1.0-0.tar.bz2", Served.PACKAGE),
        ("repodata-tools-1.0-0.conda", Served.PACKAGE),
        ("demo-1.0-0.conda.sigs", Served.SIDECAR),
        ("demo-1.0-0.conda.v0.sigs", Served.SIDECAR),
        ("demo-1.0-0.tar.bz2.sigs." + SHA, Served.SIDECAR),
        ("demo-1.0-0.conda.sigs.xyz", Served.NOT_FOUND),
        ("sub/demo-1.0-0.conda", Served.NOT_FOUND),
        ("index.html", Served.NOT_FOUND),
    ],
)
def test_classify_never_passes_an_unfiltered_variant(name: str, served: Served) -> None:
    assert classify(name) is served


def test_subdir_names() -> None:
    assert all(valid_subdir(s) for s in ("noarch", "linux-64", "osx-arm64", "emscripten-wasm32"))
    assert not any(valid_subdir(s) for s in ("", "..", "a/b", "-x", "noarch%2f"))


def test_filter_keeps_accepted_records_and_what_holds_no_records() -> None:
    repodata = _repodata()
    seen: list[str] = []

    def keep(filename: str, record: dict[str, Any]) -> bool:
        seen.append(filename)
        return bool(record["name"] == "keep")

    out = filter_repodata(repodata, keep)
    assert sorted(seen) == ["keep-1.0-0.conda", "new-2.0-0.conda", "old-1.0-0.tar.bz2"]
    assert out["packages"] == {} and list(out["packages.conda"]) == ["keep-1.0-0.conda"]
    assert out["info"] == repodata["info"]  # a filter: where downloads come from is the proxy's (served_repodata)
    assert (out["removed"], out["x_unknown"], out["repodata_version"]) == (["gone-1.0-0.conda"], 1, 2)
    assert (out["x_list"], out["x_map"]) == (["a"], {"key": "value"})  # unknown keys that hold no records pass
    assert "packages.future" not in out  # a section of records gate does not know is never passed unfiltered
    assert repodata == _repodata()  # the input is not changed


def test_served_repodata_sends_downloads_through_gate() -> None:
    repodata = _repodata()
    out = served_repodata(repodata, lambda _name, record: bool(record["name"] == "keep"))
    assert out["info"] == {"subdir": "noarch"}  # no base_url: clients resolve packages against gate's URL
    assert list(out["packages.conda"]) == ["keep-1.0-0.conda"] and "packages.future" not in out
    assert repodata == _repodata()  # the input (a memoized upstream document) is not changed


def test_package_url_follows_base_url() -> None:
    assert package_url("http://up/ch/noarch", {}, "a-1-0.conda") == "http://up/ch/noarch/a-1-0.conda"
    assert package_url("http://up/ch/noarch/", _repodata(), "a-1-0.conda") == "https://cdn.example/ch/noarch/a-1-0.conda"
    relative = {"info": {"base_url": "../../mirror/noarch"}}
    assert package_url("http://up/ch/noarch", relative, "a-1-0.conda") == "http://up/mirror/noarch/a-1-0.conda"


def test_records_and_facts_from_a_real_record() -> None:
    repodata = json.loads((FIXTURES / "conda/channel-sigstore-example/linux-64/repodata.json").read_text())
    (filename, record), = iter_records(repodata)
    assert find_record(repodata, filename) is record and find_record(repodata, "x-1-0.conda") is None
    facts = record_facts(filename, record, "https://prefix.dev/sigstore-example/")
    assert isinstance(facts, FileFacts)
    assert (facts.name, facts.version, facts.build) == ("signed-package", "2.1.0", "hb0f4dca_0")
    assert facts.subdir == "linux-64"
    assert facts.index == "https://prefix.dev/sigstore-example" and facts.uploadedFrom == "timestamp"


@pytest.mark.parametrize(
    ("filename", "record"),
    [
        ("a-1-0.conda", {}),
        ("a-1-0.conda", {"sha256": "zz" * 32}),
        ("a-1-0.conda", {"sha256": 5}),
        ("package.conda", {"sha256": SHA}),
    ],
)
def test_records_gate_cannot_check_have_no_facts(filename: str, record: dict[str, Any]) -> None:
    assert isinstance(record_facts(filename, record, "http://up/ch"), Unidentified)


def test_zst_round_trip_and_limits() -> None:
    data = encode(_repodata())
    assert parse_repodata(decompress_zst(compress_zst(data))) == _repodata()
    compressor = zstandard.ZstdCompressor().compressobj()
    streamed = compressor.compress(data) + compressor.flush()  # a frame without a content size
    assert decompress_zst(streamed) == data
    with pytest.raises(ValueError, match="exceeds"):
        decompress_zst(compress_zst(data), limit=10)
    with pytest.raises(ValueError, match="not zstd"):
        decompress_zst(b"not zstd at all")
    assert parse_repodata(b"") == {} and parse_repodata(b" \n") == {}
    with pytest.raises(ValueError):
        parse_repodata(b"[]")


def test_one_record_per_filename() -> None:
    record = {"name": "a", "version": "1", "build": "0", "sha256": SHA}
    repodata = {
        "packages": {"a-1-0.conda": record, "b-1-0.conda": record},
        "packages.conda": {"a-1-0.conda": dict(record), "b-1-0.conda": {**record, "sha256": "cd" * 32}},
    }
    records, conflicts = unique_records(repodata)
    assert [name for name, _ in records] == ["a-1-0.conda", "b-1-0.conda"]
    assert conflicts == {"b-1-0.conda": "the repodata lists this filename 2 times with different records"}
    assert find_records(repodata, "b-1-0.conda") == [record, {**record, "sha256": "cd" * 32}]
    filtered = filter_repodata(repodata, lambda name, _: name not in conflicts)
    assert filtered["packages"] == {"a-1-0.conda": record} and filtered["packages.conda"] == {}


@pytest.mark.parametrize("filename", ["x-1-0.conda#.conda", "a/b-1-0.conda", "x-1-0.conda?", "..", "x%23-1-0.conda"])
def test_package_url_never_takes_a_name_that_is_not_one_segment(filename: str) -> None:
    with pytest.raises(ValueError, match="not a path segment"):
        package_url("https://ch.example/noarch", {}, filename)
    assert package_url("https://ch.example/noarch", {}, "x-1.0+a!b-0.conda") == "https://ch.example/noarch/x-1.0+a!b-0.conda"
