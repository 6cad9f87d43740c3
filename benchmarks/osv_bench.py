"""OSV data: load time and peak memory for a synthetic PyPI export of real-record shape, and time per lookup.

Run: python benchmarks/osv_bench.py [--records N] [--lookups N]. Builds `all.zip` in a temporary directory
from the real records of ../shared/fixtures/osv as templates (ids, names, versions and ranges varied), then
loads it in a fresh subprocess (wall time, tracemalloc peak of the load in a second run, the process's peak
RSS before and after) and times lookups. Prints a Markdown table. Targets (issue 16): load <= 2 s and
<= 100 MB, <= 10 us per lookup.

The mix imitates OSV.dev's PyPI export: most records are OpenSSF malicious-package reports (one package each,
a `versions` list of one to three versions, or every version); the rest are GitHub and PyPA advisories with
one or two ECOSYSTEM ranges, CVSS v3 (some also v4) vectors and the `versions` list OSV.dev enumerates (all
releases the ranges cover), spread over a few thousand projects, a few of which have a hundred records.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from gate.facts import Ecosystem
from gate.sources.osv import OsvDatabase

REPO = Path(__file__).resolve().parent.parent
OSV = REPO.parent / "shared" / "fixtures" / "osv"
GHSA = OSV / "github-advisory-database/advisories/github-reviewed/2024/04/GHSA-jjg7-2v4v-x38h/GHSA-jjg7-2v4v-x38h.json"
MAL = OSV / "malicious-packages/osv/malicious/pypi/0requests/MAL-2026-15859.json"
V3 = ["CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:C/C:H/I:N/A:N",
      "CVSS:3.1/AV:L/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:L/I:L/A:N"]
V4 = ["CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:A/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
      "CVSS:4.0/AV:L/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:H/SC:N/SI:N/SA:N"]


def releases(rng: random.Random) -> list[str]:
    """A project's release history, oldest first (20 to 300 releases, some pre-releases)."""
    out: list[str] = []
    major, minor, patch = 0, 1, 0
    for _ in range(rng.randint(20, 300)):
        roll = rng.random()
        if roll < 0.05:
            major, minor, patch = major + 1, 0, 0
        elif roll < 0.3:
            minor, patch = minor + 1, 0
        else:
            patch += 1
        out.append(f"{major}.{minor}.{patch}" + ("rc1" if rng.random() < 0.05 else ""))
    return out


def build(records: int, seed: int = 16) -> tuple[list[tuple[str, bytes]], list[tuple[str, str]]]:
    """(zip members, sample releases to look up) for `records` records."""
    rng = random.Random(seed)
    ghsa, mal = json.loads(GHSA.read_text()), json.loads(MAL.read_text())
    malicious = records * 6 // 10
    projects = [f"project-{i}" for i in range(3000)]
    history = {name: releases(rng) for name in projects}
    members: list[tuple[str, bytes]] = []
    for i in range(malicious):
        record = copy.deepcopy(mal)
        name = f"typo-squat-{i}"
        record["id"] = f"MAL-2025-{i}"
        affected = record["affected"][0]
        affected["package"]["name"] = name
        if rng.random() < 0.3:
            affected.pop("versions")
            affected["ranges"] = [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]
        else:
            affected["versions"] = [f"0.0.{k}" for k in range(rng.randint(1, 3))]
        members.append((f"{record['id']}.json", json.dumps(record, indent=2).encode()))
    for i in range(records - malicious):
        record = copy.deepcopy(ghsa)
        name = projects[min(int(rng.paretovariate(0.6)) - 1, len(projects) - 1)]  # a few projects get many
        versions = history[name]
        record["id"] = f"GHSA-{i:04x}-bench-{i % 97:02d}"
        record["aliases"] = [f"CVE-2024-{i}"]
        vectors = [{"type": "CVSS_V3", "score": rng.choice(V3)}]
        if rng.random() < 0.3:
            vectors.append({"type": "CVSS_V4", "score": rng.choice(V4)})
        record["severity"] = vectors
        entries = []
        for _ in range(1 if rng.random() < 0.85 else 2):
            start = rng.randrange(len(versions))
            end = rng.randrange(start, len(versions))
            events: list[dict[str, str]] = [{"introduced": "0" if rng.random() < 0.6 else versions[start]}]
            events.append({"fixed": versions[end]} if rng.random() < 0.9 else {"last_affected": versions[end]})
            first = 0 if events[0]["introduced"] == "0" else start
            entries.append({"package": {"ecosystem": "PyPI", "name": name.upper()},
                            "ranges": [{"type": "ECOSYSTEM", "events": events}],
                            "versions": versions[first:end],
                            "database_specific": {"source": "https://example.invalid/advisory.json"}})
        record["affected"] = entries
        members.append((f"{record['id']}.json", json.dumps(record, indent=2).encode()))
    rng.shuffle(members)
    hits = [(name, rng.choice(history[name])) for name in rng.sample(projects, 500)]
    misses = [(f"unlisted-{i}", "1.0.0") for i in range(500)]
    return members, hits + misses


CHILD = """
import sys, time, tracemalloc
from pathlib import Path

def hwm():  # this process's peak RSS in MiB (VmHWM starts afresh at exec, unlike ru_maxrss)
    lines = Path("/proc/self/status").read_text().splitlines()
    return next(int(line.split()[1]) for line in lines if line.startswith("VmHWM")) / 1024

before = hwm()
from gate.sources.osv import OsvDatabase
imported = hwm()
if sys.argv[2] == "trace":
    tracemalloc.start()
cpu, start = time.process_time(), time.perf_counter()
db = OsvDatabase.load([Path(sys.argv[1])])
took, cpu = time.perf_counter() - start, time.process_time() - cpu
peak = tracemalloc.get_traced_memory()[1] if sys.argv[2] == "trace" else 0
print(took, cpu, peak, before, imported, hwm(), db.records, len(db.warnings))
"""


def load_in_child(path: Path, mode: str) -> list[float]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), mode], check=True, capture_output=True,
                         text=True, cwd=REPO).stdout
    return [float(x) for x in out.split()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=18_000)
    parser.add_argument("--lookups", type=int, default=20_000)
    args = parser.parse_args()

    members, samples = build(args.records)
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "all.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
            for name, data in members:
                out.writestr(name, data)
        unpacked = sum(len(data) for _, data in members)
        runs = [load_in_child(archive, "plain") for _ in range(3)]
        took = statistics.median(run[0] for run in runs)
        cpu = min(run[1] for run in runs)
        _, _, _, before, imported, after, count, warnings = runs[0]
        traced = load_in_child(archive, "trace")
        database = OsvDatabase.load([archive])
        size = archive.stat().st_size

    hits = [s for s in samples if not s[0].startswith("unlisted-")]
    heavy = max(hits, key=lambda s: len(database.lookup(Ecosystem.PYPI, s[0], s[1])))
    found = sum(bool(database.lookup(Ecosystem.PYPI, n, v)) for n, v in hits)

    def per_lookup_us(pairs: list[tuple[str, str]], lookups: int, *, memo: bool = True) -> float:
        call = database.lookup if memo else lambda _, n, v: database._lookup(n, v)  # _lookup: no memo
        medians = []
        for _ in range(5):
            start = time.perf_counter()
            for i in range(lookups):
                name, version = pairs[i % len(pairs)]
                call(Ecosystem.PYPI, name, version)
            medians.append((time.perf_counter() - start) / lookups * 1e6)
        return statistics.median(medians)

    n = args.lookups
    print(f"records {int(count)}, zip {size / 1e6:.1f} MB, unpacked {unpacked / 1e6:.1f} MB, warnings {int(warnings)}")
    print("| measurement | value |\n|---|---:|")
    print(f"| load, wall (median of 3 fresh processes) / CPU (least of 3) | {took:.2f} s / {cpu:.2f} s |")
    print(f"| tracemalloc peak during load | {traced[2] / 2**20:.1f} MiB |")
    print(f"| peak RSS of the process: at start / after imports / after load | {before:.0f} / {imported:.0f} / "
          f"{after:.0f} MiB |")
    print(f"| lookup, listed projects, uncached ({found}/{len(hits)} releases affected) | "
          f"{per_lookup_us(hits, n, memo=False):.2f} us |")
    print(f"| lookup, listed projects, memoized (a page's files share a version) | {per_lookup_us(hits, n):.2f} us |")
    print(f"| lookup, unlisted projects | {per_lookup_us(samples[len(hits):], n, memo=False):.2f} us |")
    heavy_count = len(database.lookup(Ecosystem.PYPI, heavy[0], heavy[1]))
    print(f"| lookup, the project with most records ({heavy[0]}: {heavy_count} apply), uncached | "
          f"{per_lookup_us([heavy], 50, memo=False):.0f} us |")


if __name__ == "__main__":
    main()
