"""What gate serves under a conda channel's `<subdir>/`, and the repodata it serves there.

`classify` decides what a path is: gate filters `repodata.json` and re-encodes it as `repodata.json.zst`,
and serves CEP 16 sharded repodata as its own index and filtered shards; every other repodata variant
(`.bz2`, `current_repodata.json`, `.jlap` patches) is answered 404, which makes rattler, pixi, mamba and
conda fall back to `repodata.json(.zst)`. An unfiltered
variant is never passed through. the filtered repodata is served without `info.base_url`, so
that clients download every package through gate.
"""

from __future__ import annotations

import re
from enum import StrEnum

from gate.sources.conda import is_conda_filename
from gate.sources.conda_shards import SHARD_FILE

_SUBDIR = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_SIDECAR = re.compile(r".+?(?:\.conda|\.tar\.bz2)\.(?:sigs|v0\.sigs|sigs\.[0-9a-f]{64})")


class Served(StrEnum):
    """What gate does with a path under `<channel>/<subdir>/`."""

    REPODATA = "repodata.json"  # filtered
    REPODATA_ZST = "repodata.json.zst"  # filtered, then zstd-compressed
    SHARD_INDEX = "repodata_shards.msgpack.zst"  # CEP 16: gate's index of its filtered shards
    SHARD = "shard"  # CEP 16: `shards/<sha256>.msgpack.zst`, a shard gate filtered (`gate.proxy.conda_shards`)
    UNFILTERED = "unfiltered"  # another repodata variant: 404, so the client falls back to the above
    PACKAGE = "package"  # decided, then streamed with its sha256 checked
    SIDECAR = "sidecar"  # attestation sidecar of a package: passed through (it is evidence, not code)
    NOT_FOUND = "not-found"


def valid_subdir(subdir: str) -> bool:
    """Whether `subdir` can be a conda subdir (`noarch`, `linux-64`...): anything else is a 404."""
    return _SUBDIR.fullmatch(subdir) is not None


def classify(name: str) -> Served:
    """How gate serves `name`, a path relative to a subdir (`repodata.json`, `shards/<hex>.msgpack.zst`...)."""
    if name == Served.REPODATA.value:
        return Served.REPODATA
    if name == Served.REPODATA_ZST.value:
        return Served.REPODATA_ZST
    if name == Served.SHARD_INDEX.value:
        return Served.SHARD_INDEX
    if SHARD_FILE.fullmatch(name):
        return Served.SHARD
    if name.startswith("shards/"):
        return Served.UNFILTERED
    if "/" in name:
        return Served.NOT_FOUND
    if _SIDECAR.fullmatch(name):
        return Served.SIDECAR
    if is_conda_filename(name):
        return Served.PACKAGE
    if "repodata" in name or name.endswith(".jlap"):
        return Served.UNFILTERED  # .bz2, current_repodata.json, CEP 16 shard index, jlap patches...
    return Served.NOT_FOUND


def is_shard_path(path: str) -> bool:
    """Whether a request path is `/conda/<name>/<subdir>/shards/<sha256>.msgpack.zst`: clients fetch these by
    the dozen at once and do not retry a 503, so they wait for an upstream slot instead of being refused
    (`gate.proxy.conda_shards.upstream_slot`); one served from the cache needs none."""
    parts = path.split("/", 4)
    return len(parts) == 5 and parts[1] == "conda" and SHARD_FILE.fullmatch(parts[4]) is not None
