"""Benchmark: judging one download from a large CEP 16 shard, whole-shard reading against one-file reading.

A download from a sharded subdir is judged from the package's upstream shard. Reading the whole shard
(`shard_records(parse_shard(...))`, as the download path did) costs the decoding of every record; reading one
file (`file_records`) decodes only its records. Both on the same synthetic shard in the same run (a package
with RECORDS builds, each record as rattler's indexer writes it: hashes as bin), as a ratio.

Run: `.venv/bin/python benchmarks/shard_file_bench.py [--records 20000] [--runs 5]`.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time

import msgspec

from gate.sources.conda_shards import file_records, parse_shard, shard_records


def shard(records: int) -> bytes:
    def record(i: int) -> dict[str, object]:
        digest = hashlib.sha256(str(i).encode()).digest()
        return {"name": "demo", "version": f"1.{i}", "build": "0", "build_number": 0, "subdir": "noarch",
                "depends": [f"dep{j} >=1.0" for j in range(15)], "sha256": digest, "md5": digest[:16],
                "size": 12345, "timestamp": 1_700_000_000_000, "license": "MIT"}

    return msgspec.msgpack.encode({"packages": {}, "packages.conda": {f"demo-1.{i}-0.conda": record(i)
                                                                      for i in range(records)}, "removed": []})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    data = shard(args.records)
    wanted = f"demo-1.{args.records // 2}-0.conda"
    ratios = []
    for _ in range(args.runs):
        start = time.perf_counter()
        shard_records(parse_shard(data), "demo", "noarch")
        whole = time.perf_counter() - start
        start = time.perf_counter()
        file_records(data, "demo", "noarch", wanted)
        one = time.perf_counter() - start
        ratios.append(whole / one)
        size = len(data) / 1e6
        print(f"{size:.1f} MB, {args.records} records: whole {whole * 1e3:.0f} ms, one file {one * 1e3:.1f} ms")
    print(f"median ratio whole/one file: {statistics.median(ratios):.0f}x")


if __name__ == "__main__":
    main()
