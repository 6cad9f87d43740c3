"""rattler (py-rattler) as the client of a local conda channel: solve against one channel URL, install records.

API::

    solve(url, cache, specs, platforms=("noarch",), exclude_newer=None) -> list[RepoDataRecord]
    install(records, prefix, cache) -> None         # rattler, caches under `cache` (see "Caches" below)

What the rattler 0.28 client requests (``solve`` through a ``Gateway`` with default ``SourceConfig``, seen in
the server log; subdirs are fetched concurrently, so only the order within one subdir is fixed):
    1. ``GET <subdir>/repodata_shards.msgpack.zst``. 200: ``GET <subdir>/shards/<hex>.msgpack.zst`` for each
       package name the solve needs (sent with ``Cache-Control: no-store``; rattler caches them itself under
       ``<cache>/shards-v1/``); no ``repodata.json*`` is requested at all. A 404 on a shard file is fatal
       (``GatewayError``), there is no fallback to ``repodata.json``.
    2. 404 on the shard index: ``HEAD <subdir>/repodata.json.zst`` and ``HEAD <subdir>/repodata.json.bz2``
       (both, in either order), then
    3. ``GET`` of the best variant whose HEAD said 200: ``.zst``, else ``.bz2``, else plain ``repodata.json``.
    4. 404 on ``repodata.json`` as well: fatal for ``noarch`` ("could not find subdir 'noarch' in channel"),
       an empty subdir for a platform subdir such as ``linux-64``.
    A second solve with the same cache dir did not ask for a shard index that had been 404 before. ``install``
    GETs ``<subdir>/<filename>`` (the record's url); ``.sigs`` sidecars are never requested (no
    ``attestation_policy`` given). rattler parses ``attestations_sha256`` (hex string in JSON; hex string or
    bin in shards) into ``RepoDataRecord.attestations_sha256`` (bytes).

Caches: ``solve``'s default ``Gateway()`` ignores ``RATTLER_CACHE_DIR`` and uses
``$XDG_CACHE_HOME/rattler/cache``; ``install`` honours ``RATTLER_CACHE_DIR`` (``<dir>/pkgs``). Pass
``Gateway(cache_dir=...)`` and ``install(cache_dir=...)`` (and point both variables at a tmp dir).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import rattler
from rattler import RepoDataRecord
from rattler.platform.subdir import SubdirLiteral

__all__ = ["install", "solve"]


def solve(
    url: str,
    cache: Path,
    specs: Sequence[str],
    platforms: Sequence[SubdirLiteral] = ("noarch",),
    exclude_newer: timedelta | None = None,
) -> list[RepoDataRecord]:
    """Solve specs against one channel URL only, with repodata cached under cache."""
    gateway = rattler.Gateway(cache_dir=cache / "repodata")
    solving = rattler.solve(
        sources=[url], specs=specs, gateway=gateway, platforms=platforms, exclude_newer=exclude_newer
    )
    return asyncio.run(solving)


def install(records: list[RepoDataRecord], prefix: Path, cache: Path) -> None:
    """Install records into prefix (each downloaded from its record's URL), packages cached under cache."""
    asyncio.run(rattler.install(records, target_prefix=prefix, cache_dir=cache / "pkgs", show_progress=False))
