"""Benchmark: two `gate serve` replicas on one store engine, SQLite (each replica its own: no sharing), Redis or
PostgreSQL (shared), in front of one local upstream of synthetic 4000-file projects (proxy_bench.py's).

For each engine: replica A's cold p50 (first request for each of COLD never-seen projects), replica B's first
request for the same projects (a hit in a shared store, cold again with SQLite), B's warm p50 (one project,
repeated), and the resident memory of each worker after serving them. Real servers on loopback
(tests/support/redis_server.py, postgres_server.py). Ratios within one run are what to compare.

Run: `.venv/bin/python benchmarks/fleet_bench.py [--cold 7]`; the table is printed.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]
from proxy_bench import POLICY, connect, fetch, latencies  # noqa: E402

from tests.support.backend_process import descendants  # noqa: E402
from tests.support.gate_server import running_gate  # noqa: E402
from tests.support.postgres_server import running_postgres  # noqa: E402
from tests.support.redis_server import running_redis  # noqa: E402

SECRET = "fleet-bench-secret-0123456789"


@contextmanager
def engine_url(engine: str, work: Path) -> Iterator[str | None]:
    if engine == "sqlite":
        yield None
    elif engine == "redis":
        with running_redis(work / "redis") as server:
            yield server.url
    else:
        with running_postgres(work / "postgres") as server:
            yield server.url


def worker_rss_mib(url: str) -> float:
    """The resident memory of the gunicorn worker behind `url` (the one child of the serving process)."""
    port = url.rsplit(":", 1)[1]
    found = subprocess.run(["pgrep", "-f", "--", f"--port {port}$"], capture_output=True, text=True, check=False)
    total = 0.0
    for parent in found.stdout.split():
        for pid in descendants(int(parent)):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total = max(total, int(line.split()[1]) / 1024)
    return total


def run(engine: str, upstream: str, cold: int, work: Path) -> dict[str, float]:
    (work / "policy.yaml").write_text(POLICY)
    (work / "secret").write_text(SECRET)
    with ExitStack() as stack:
        url = stack.enter_context(engine_url(engine, work))
        shared = [] if url is None else ["--cache-url", url, "--cache-secret-file", str(work / "secret")]
        args = ["--policy", str(work / "policy.yaml"), "--upstream", upstream, "--public-url", "http://gate.example/",
                "--workers", "1", "--threads", "8", *shared]
        a, b = (stack.enter_context(running_gate([*args, "--cache-dir", str(work / n)], work / f"{n}.log",
                                                 start_timeout=60)) for n in ("a", "b"))
        paths = [f"/simple/bench-{i}/" for i in range(1, cold + 1)]
        a_cold = latencies(a, paths)
        b_first = latencies(b, paths)
        fetch(connect(b), paths[0])
        b_warm = latencies(b, [paths[0]] * 30)
        return {"a_cold": statistics.median(a_cold), "b_first": statistics.median(b_first),
                "b_warm": statistics.median(b_warm), "rss_a": worker_rss_mib(a), "rss_b": worker_rss_mib(b)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cold", type=int, default=7, help="never-seen projects for the cold p50")
    args = parser.parse_args()
    upstream_process = subprocess.Popen(
        [sys.executable, str(REPO / "benchmarks" / "proxy_bench.py"), "--serve-upstream", str(args.cold + 1)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )
    rows = {}
    try:
        assert upstream_process.stdout is not None
        upstream = upstream_process.stdout.readline().decode().strip()
        for engine in ("sqlite", "redis", "postgresql"):
            with tempfile.TemporaryDirectory(prefix=f"gate-fleet-{engine}-") as work:
                rows[engine] = run(engine, upstream, args.cold, Path(work))
    finally:
        assert upstream_process.stdin is not None
        upstream_process.stdin.close()
        upstream_process.terminate()
        upstream_process.wait(timeout=30)
    base = rows["sqlite"]
    lines = [
        f"4000-file projects, JSON with gzip; two replicas, 1 worker x 8 threads each; {args.cold} cold projects.",
        "",
        "| engine | A cold p50 (ms) | B first p50 (ms) | B first / A cold | B warm p50 (ms) | warm vs SQLite "
        "| worker RSS A / B (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for engine, r in rows.items():
        lines.append(
            f"| {engine} | {r['a_cold'] * 1000:.1f} | {r['b_first'] * 1000:.1f} | {r['b_first'] / r['a_cold']:.2f} "
            f"| {r['b_warm'] * 1000:.2f} | {r['b_warm'] / base['b_warm']:.2f} | {r['rss_a']:.0f} / {r['rss_b']:.0f} |"
        )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
