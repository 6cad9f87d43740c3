"""Benchmark: memory and time reading a CEP 16 shard, gate's bounded reading against decoding it whole.

The whole-shard decoding (`msgspec.msgpack.decode`, as gate's `parse_shard` did) builds every object of the
msgpack, known or not; gate's reading (`parse_shard` + `shard_records`, then `filtered_shard` keeping every
record) skips keys it does not know and holds only each record's view. Both on the same documents in the
same run: a real-sized shard (RECORDS builds as rattler's indexer writes them) and a 32 MiB bomb of empty
maps under an unknown key (~1 KB compressed). Peak bytes allocated (tracemalloc) and time, as ratios.

Run: `.venv/bin/python benchmarks/shard_memory_bench.py [--records 20000]`.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable
from functools import partial

import msgspec
from shard_file_bench import shard  # the same synthetic shard (RECORDS builds, hashes as bin)

from gate.sources.conda_shards import filtered_shard, parse_shard, shard_records


def measure(read: Callable[[], object]) -> tuple[float, float]:
    """(peak MiB allocated, seconds) of `read` (the peak under tracemalloc; the time without it)."""
    start = time.perf_counter()
    read()
    seconds = time.perf_counter() - start
    tracemalloc.start()
    try:
        read()
        return tracemalloc.get_traced_memory()[1] / 2**20, seconds
    finally:
        tracemalloc.stop()


def gate_reads(data: bytes) -> None:
    parsed = parse_shard(data)
    records, _ = shard_records(parsed, "demo", "noarch")
    filtered_shard(parsed, {filename for filename, _ in records})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    args = parser.parse_args()
    real = shard(args.records)
    bomb = b"\x82\xa2v3\xdd" + (32 << 20).to_bytes(4, "big") + b"\x80" * (32 << 20) + msgspec.msgpack.encode(
        "packages.conda") + b"\x80"
    for label, data in ((f"{args.records} records", real), ("32 MiB bomb", bomb)):
        whole_mib, whole_s = measure(partial(msgspec.msgpack.decode, data))
        gate_mib, gate_s = measure(partial(gate_reads, data))
        print(f"{label} ({len(data) / 2**20:.1f} MiB msgpack): decoded whole {whole_mib:.1f} MiB {whole_s:.2f} s;"
              f" gate {gate_mib:.1f} MiB {gate_s:.2f} s; memory ratio gate/whole {gate_mib / whole_mib:.3f},"
              f" time ratio {gate_s / whole_s:.2f}")


if __name__ == "__main__":
    main()
