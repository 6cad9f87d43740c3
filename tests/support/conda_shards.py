"""CEP 16 sharded repodata in tests: read what gate (or an upstream) serves, and make an upstream channel's
shards hostile. The channels of :mod:`tests.support.conda_channel` are sharded already (rattler's indexer
writes `repodata_shards.msgpack.zst` and `shards/<sha256 of the compressed shard>.msgpack.zst`).

API::

    decode(data) -> Any                                   # zstd, then msgpack (bounded: 64 MiB)
    shard_addresses(channel_dir, subdir) -> dict[str, str]     # name -> hex address in the upstream index
    shard_path(channel_dir, subdir, name) -> Path
    write_shard(channel_dir, subdir, name, shard | raw bytes) -> str  # a shard under its sha256, indexed
    tamper_shard(channel_dir, subdir, name) -> None     # same address, other bytes (records changed)
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import msgspec
import zstandard

__all__ = ["decode", "shard_addresses", "shard_path", "tamper_shard", "write_shard"]

INDEX = "repodata_shards.msgpack.zst"


def decode(data: bytes) -> Any:
    """zstd-compressed msgpack, decoded (at most 64 MiB of msgpack)."""
    return msgspec.msgpack.decode(zstandard.ZstdDecompressor().decompress(data, max_output_size=64 << 20))


def _index(channel_dir: Path, subdir: str) -> dict[str, Any]:
    index: dict[str, Any] = decode((channel_dir / subdir / INDEX).read_bytes())
    return index


def shard_addresses(channel_dir: Path, subdir: str) -> dict[str, str]:
    """Each package name of the upstream subdir's shard index, with the hex address of its shard."""
    return {name: digest.hex() for name, digest in _index(channel_dir, subdir)["shards"].items()}


def shard_path(channel_dir: Path, subdir: str, name: str) -> Path:
    """The upstream file of the shard of `name` (under `./shards/`, where rattler's indexer puts them)."""
    return channel_dir / subdir / "shards" / f"{shard_addresses(channel_dir, subdir)[name]}.msgpack.zst"


def write_shard(channel_dir: Path, subdir: str, name: str, shard: dict[str, Any] | bytes) -> str:
    """Write `shard` (a document, msgpack+zstd encoded; or raw file bytes) as the shard of `name` under the
    sha256 of its bytes and point the subdir's index at it; return the address."""
    blob = shard if isinstance(shard, bytes) else zstandard.ZstdCompressor().compress(msgspec.msgpack.encode(shard))
    digest = hashlib.sha256(blob)
    (channel_dir / subdir / "shards").mkdir(parents=True, exist_ok=True)
    (channel_dir / subdir / "shards" / f"{digest.hexdigest()}.msgpack.zst").write_bytes(blob)
    index = _index(channel_dir, subdir)
    index["shards"][name] = digest.digest()
    (channel_dir / subdir / INDEX).write_bytes(zstandard.ZstdCompressor().compress(msgspec.msgpack.encode(index)))
    return digest.hexdigest()


def tamper_shard(channel_dir: Path, subdir: str, name: str, **record_changes: Any) -> None:
    """Rewrite the shard file of `name` in place with `record_changes` applied to every record (default: an
    old `timestamp` and `indexed_timestamp`, as an attacker backdating a release would): its address no
    longer hashes to the bytes."""
    path = shard_path(channel_dir, subdir, name)
    shard: dict[str, Any] = decode(path.read_bytes())
    changes = record_changes or {"timestamp": 1_000_000_000_000, "indexed_timestamp": 1_000_000_000_000}
    for section in ("packages", "packages.conda"):
        for record in shard.get(section, {}).values():
            record.update(changes)
    path.write_bytes(zstandard.ZstdCompressor().compress(msgspec.msgpack.encode(shard)))
