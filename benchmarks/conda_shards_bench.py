"""Benchmark: CEP 16 sharded repodata through gate against the direct fetch, on a conda-forge-sized channel.

A loopback channel server (tests/support/conda_server.py) serves a synthetic sharded noarch subdir of NAMES
package names, RECORDS records each (30,000 x 8 = 240,000 records: about conda-forge linux-64), written the
way rattler's indexer writes shards (msgpack, hashes as bin, zstd; addressed by the sha256 of the file).
`gate serve` (gunicorn, one worker, a 7-day `minimumAge` policy, so every shard's decisions are
time-dependent) runs in front of it. One client (requests, one request at a time) measures, against the
direct fetch of the same upstream file in the same run:

- index cold: gate's first index (no shard fetched: every name gets a pending address), per fresh gate;
- index warm: gate's cached index;
- index rebuilt: after the upstream index changed one name, with SOLVE shards already filtered;
- shard cold: SOLVE shards a solve would need (fetch, check the address, judge each record, re-encode);
- shard warm: the same shards again (served from the store by address).
Peak RSS of gate's processes (VmHWM) is read from /proc at the end of each run.

Run: `.venv/bin/python benchmarks/conda_shards_bench.py [--names 30000] [--records 8] [--solve 50] [--runs 3]`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec
import requests
import zstandard

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.support.conda_policies import policy_document, write_policies  # noqa: E402
from tests.support.conda_server import ChannelServer  # noqa: E402
from tests.support.gate_server import running_gate  # noqa: E402

NOW = dt.datetime.now(dt.UTC)
INDEX = "noarch/repodata_shards.msgpack.zst"


def write_channel(root: Path, names: int, records: int) -> dict[str, str]:
    """A sharded noarch subdir of `names` x `records` records; each name's shard address (hex)."""
    subdir = root / "noarch"
    (subdir / "shards").mkdir(parents=True)
    compressor = zstandard.ZstdCompressor(level=3)
    addresses: dict[str, bytes] = {}
    for n in range(names):
        name = f"pkg{n:05d}"
        shard: dict[str, Any] = {"packages": {}, "packages.conda": {}, "removed": []}
        for r in range(records):
            filename = f"{name}-1.{r}-py_0.conda"
            digest = hashlib.sha256(filename.encode()).digest()
            age = dt.timedelta(days=(n * records + r) % 60, minutes=n % 1440)  # some younger than 7 days
            shard["packages.conda"][filename] = {
                "name": name, "version": f"1.{r}", "build": "py_0", "build_number": 0,
                "depends": ["python >=3.9", f"pkg{(n + 1) % names:05d} >=1.0"], "license": "MIT",
                "md5": digest[:16], "sha256": digest, "size": 12345 + r, "subdir": "noarch", "noarch": "python",
                "timestamp": int((NOW - age).timestamp() * 1000),
            }
        blob = compressor.compress(msgspec.msgpack.encode(shard))
        addresses[name] = hashlib.sha256(blob).digest()
        (subdir / "shards" / f"{addresses[name].hex()}.msgpack.zst").write_bytes(blob)
    write_index(subdir, addresses)
    return {name: digest.hex() for name, digest in addresses.items()}


def write_index(subdir: Path, addresses: dict[str, bytes]) -> None:
    info = {"subdir": "noarch", "base_url": "", "shards_base_url": "./shards/", "created_at": NOW.isoformat()}
    document = msgspec.msgpack.encode({"info": info, "shards": addresses})
    (subdir / "repodata_shards.msgpack.zst").write_bytes(zstandard.ZstdCompressor(level=3).compress(document))


def timed(session: requests.Session, url: str) -> tuple[float, bytes]:
    started = time.perf_counter()
    response = session.get(url, timeout=600)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed, response.content


def peak_rss_mb(marker: str) -> float:
    """The largest VmHWM of the processes whose command line holds `marker` (gate's cache dir)."""
    peak = 0
    for proc in Path("/proc").iterdir():
        try:
            if marker not in (proc / "cmdline").read_bytes().decode(errors="replace"):
                continue
            for line in (proc / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            continue
    return peak / 1024


def one_run(channel: Path, upstream: ChannelServer, addresses: dict[str, str], solve: int) -> dict[str, float]:
    session = requests.Session()
    direct_index = statistics.median(timed(session, f"{upstream.url}/{INDEX}")[0] for _ in range(5))
    names = sorted(addresses)[:: max(1, len(addresses) // solve)][:solve]
    direct_shard = statistics.median(
        timed(session, f"{upstream.url}/noarch/shards/{addresses[n]}.msgpack.zst")[0] for n in names
    )
    with tempfile.TemporaryDirectory(prefix="gate-shards-bench-") as tmp:
        work = Path(tmp)
        policies = write_policies(work / "policies", policy_document("age", ecosystems=["conda"], minimumAge="7d"))
        args = ["--policy", str(policies), "--upstream", "http://127.0.0.1:9/simple/",
                "--conda-channel", f"bench={upstream.url}/", "--cache-dir", str(work / "cache"), "--workers", "1"]
        with running_gate(args, work / "serve.log", start_timeout=60) as gate:
            base = f"{gate}/conda/bench"
            cold, body = timed(session, f"{base}/{INDEX}")
            warm = statistics.median(timed(session, f"{base}/{INDEX}")[0] for _ in range(10))
            index = msgspec.msgpack.decode(zstandard.ZstdDecompressor().decompress(body, max_output_size=1 << 28))
            shard_cold = [timed(session, f"{base}/noarch/shards/{index['shards'][n].hex()}.msgpack.zst")[0]
                          for n in names]
            shard_warm = [timed(session, f"{base}/noarch/shards/{index['shards'][n].hex()}.msgpack.zst")[0]
                          for n in names]
            changed = {n: bytes.fromhex(a) for n, a in addresses.items()}
            changed[names[0]] = hashlib.sha256(b"moved").digest()  # the upstream published a new shard of one name
            write_index(channel / "noarch", changed)
            rebuilt, _ = timed(session, f"{base}/{INDEX}")
            write_index(channel / "noarch", {n: bytes.fromhex(a) for n, a in addresses.items()})
            rss = peak_rss_mb(str(work / "cache"))
    return {
        "direct index": direct_index, "index cold": cold, "index warm": warm, "index rebuilt": rebuilt,
        "direct shard": direct_shard, "shard cold": statistics.median(shard_cold),
        "shard warm": statistics.median(shard_warm), "peak rss MB": rss,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--names", type=int, default=30_000)
    parser.add_argument("--records", type=int, default=8)
    parser.add_argument("--solve", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sharded-channel-") as tmp:
        channel = Path(tmp) / "channel"
        started = time.perf_counter()
        addresses = write_channel(channel, options.names, options.records)
        size = (channel / INDEX).stat().st_size
        print(f"channel: {options.names} names x {options.records} records, index {size / 1024:.0f} KiB, "
              f"written in {time.perf_counter() - started:.1f}s")
        with ChannelServer(channel) as upstream:
            for run in range(options.runs):
                result = one_run(channel, upstream, addresses, options.solve)
                di, ds = result["direct index"], result["direct shard"]
                print(
                    f"run {run + 1}: index direct {di * 1000:.1f} ms | gate cold {result['index cold'] * 1000:.0f} ms "
                    f"({result['index cold'] / di:.1f}x) warm {result['index warm'] * 1000:.1f} ms "
                    f"({result['index warm'] / di:.2f}x) rebuilt {result['index rebuilt'] * 1000:.0f} ms "
                    f"({result['index rebuilt'] / di:.1f}x) | shard direct {ds * 1000:.2f} ms | gate cold "
                    f"{result['shard cold'] * 1000:.1f} ms ({result['shard cold'] / ds:.1f}x) warm "
                    f"{result['shard warm'] * 1000:.2f} ms ({result['shard warm'] / ds:.2f}x) | "
                    f"peak RSS {result['peak rss MB']:.0f} MB"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
