"""Decoding a shard or shard index costs memory bounded by its known parts, not by what an upstream adds: a
small compressed document expanding to millions of objects under a key gate does not read is skipped without
building them, and too many records, or too large a record, is refused before they are built (it was 2.4 GB of
Python objects for a 32 MiB shard of empty maps, ~1 KB compressed). Bounded by tracemalloc's peak (bytes
allocated in this process), never by time."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

import msgspec
import pytest

from gate.sources import conda_shards

DEMO = "demo-1.0-0.conda"
RECORD = msgspec.msgpack.encode({"name": "demo", "version": "1.0", "build": "0", "subdir": "noarch",
                                 "sha256": bytes(32), "size": 1})
DECODED = 32 << 20  # the bomb's msgpack
PEAK = 64 << 20  # at most this much allocated decoding it


def _array(item: bytes, count: int) -> bytes:
    return b"\xdd" + count.to_bytes(4, "big") + item * count


BOMBS = {
    "empty maps": _array(b"\x80", DECODED),
    "nested arrays": _array(b"\x91\x90", DECODED // 2),
    "ints": _array(b"\xcd\x01\x2c", DECODED // 3),  # 300: not one of CPython's cached small ints
}


def _peak(read: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        read()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("bomb", BOMBS, ids=list(BOMBS))
@pytest.mark.parametrize("where", ["top level", "in a record"])
def test_a_shard_bomb_under_an_unknown_key_is_skipped_unbuilt(bomb: str, where: str) -> None:
    if where == "top level":
        data = b"\x82\xa2v3" + BOMBS[bomb] + b"\xaepackages.conda\x81" + msgspec.msgpack.encode(DEMO) + RECORD
    else:  # a record too large to be one is refused, unread
        record = bytes([RECORD[0] + 1]) + RECORD[1:] + b"\xa1x" + BOMBS[bomb]  # a fixmap with one more key
        data = b"\x81\xaepackages.conda\x81" + msgspec.msgpack.encode(DEMO) + record

    def read() -> None:
        if where == "top level":
            records, _ = conda_shards.shard_records(conda_shards.parse_shard(data), "demo", "noarch")
            assert [f for f, _ in records] == [DEMO]
            conda_shards.filtered_shard(conda_shards.parse_shard(data), {DEMO})
            assert conda_shards.file_records(data, "demo", "noarch", DEMO)[0][0][0] == DEMO
        else:
            with pytest.raises(ValueError, match="more than 1048576"):
                conda_shards.shard_records(conda_shards.parse_shard(data), "demo", "noarch")

    assert _peak(read) < PEAK


def test_a_shard_listing_millions_of_records_is_refused_unbuilt() -> None:
    count = 3_000_000
    entries = b"".join(b"\xa8" + i.to_bytes(8, "big") + b"\x80" for i in range(count))  # 8-byte names, {}
    data = b"\x81\xaepackages.conda\xdf" + count.to_bytes(4, "big") + entries

    def read() -> None:
        with pytest.raises(ValueError, match=f"length <= {conda_shards.MAX_RECORDS}"):
            conda_shards.parse_shard(data)

    assert _peak(read) < PEAK


def test_a_removed_bomb_is_refused_unbuilt() -> None:
    data = b"\x81\xa7removed" + BOMBS["ints"]

    def read() -> None:
        with pytest.raises(ValueError, match="`removed`"):
            conda_shards.parse_shard(data)

    assert _peak(read) < PEAK


@pytest.mark.parametrize("bomb", BOMBS, ids=list(BOMBS))
@pytest.mark.parametrize("where", ["top level", "info"])
def test_an_index_bomb_under_an_unknown_key_is_skipped_unbuilt(bomb: str, where: str) -> None:
    shards = b"\xa6shards\x81\xa4demo\xc4\x20" + bytes(32)
    if where == "top level":
        data = b"\x83\xa4info\x80" + shards + b"\xa4junk" + BOMBS[bomb]
    else:
        data = b"\x82\xa4info\x81\xa4junk" + BOMBS[bomb] + shards

    def read() -> None:
        assert conda_shards.parse_index(data).shards == {"demo": "00" * 32}

    assert _peak(read) < PEAK
