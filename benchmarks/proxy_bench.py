"""Benchmark: simple-API page latency and throughput of upstream direct, proxpi, and gate, side by side.

A local upstream (tests/support/pypi_upstream.py, in its own process, PyPI-like `Cache-Control:
max-age=600`) serves synthetic projects of 1000 versions x 4 files with upload times and no provenance.
proxpi (`pip install proxpi`) and `gate serve` (a `minimumAge` + `match` policy) each run under gunicorn
with 2 workers of 8 threads in front of it (gate with its default upstream slots, threads - 2: a warm page
takes none, so one worker may serve all 8 connections). One load tool (the
http.client loop below, sending pip's `Accept` and `Accept-Encoding: gzip`, reading every body) measures all
three:

- cold p50: the first request for each of several never-seen projects (one request at a time);
- warm p50: repeated requests for one project (one at a time, after warming every worker);
- warm req/s: THREADS keep-alive connections (one process each) requesting one project for SECONDS.

With `--denied`, every file was uploaded in the last 14 days, so the 30-day minimum age denies all 4000:
gate's page lists none, and every file's decision carries its own message (and is audited). With
`--identity`, the load tool sends no `Accept-Encoding` (a client without gzip: gate serves the identity copy
of its stored page). With `--cache-control ''`, the upstream sends no `Cache-Control` at all (a static
mirror): gate then reuses a page for its `--index-ttl` (default 600 s), proxpi for its index TTL.

Run: `.venv/bin/python benchmarks/proxy_bench.py [--seconds 10] [--threads 8] [--cold 7] [--denied] [--identity]
[--cache-control VALUE] [--rounds N]` (N throughput rounds per target, alternating between targets, the median
kept: on a shared machine one round is at the mercy of its neighbours); the table is
printed and written to benchmarks/results/ (and was copied by hand into benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from _common import write_results  # noqa: E402  (benchmarks/_common.py, beside this script)

from tests.support.gate_server import free_port  # noqa: E402
from tests.support.pypi_model import UpstreamIndex, synthetic_project  # noqa: E402
from tests.support.pypi_upstream import serve  # noqa: E402

BIN = Path(sys.executable).parent
ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
POLICY = """\
apiVersion: gate/v1
kind: Policy
metadata: {name: bench}
spec:
  mode: enforce
  match: {ecosystems: [pypi], packages: ["*"], exclude: ["corp-*"]}
  minimumAge: 30d
"""


def run_upstream(projects: int, denied: bool, cache_control: str) -> None:
    """Child mode: serve `projects` synthetic projects until stdin closes; print the URL first. `denied`:
    uploaded in the last 14 days (younger than the policy's 30), else from 2023 to 2025."""
    index = UpstreamIndex()
    step = dt.timedelta(minutes=20) if denied else dt.timedelta(hours=20)
    start = dt.datetime.now(dt.UTC) - 1000 * step if denied else dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
    for i in range(projects):
        synthetic_project(index, f"bench-{i}", start=start, step=step)
    with serve(index) as upstream:
        upstream.set_cache_control(cache_control)
        print(upstream.url, flush=True)
        sys.stdin.read()


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with {process.returncode}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


class Target:
    def __init__(self, name: str, base: str, page_path: str) -> None:
        self.name, self.base, self.page_path = name, base, page_path

    def path(self, project: str) -> str:
        return self.page_path.format(project)


HEADERS = {"Accept": ACCEPT, "Accept-Encoding": "gzip"}


def fetch(connection: http.client.HTTPConnection, path: str) -> int:
    connection.request("GET", path, headers=HEADERS)
    response = connection.getresponse()
    body = response.read()
    if response.status != 200:
        raise RuntimeError(f"{path}: {response.status} {body[:200]!r}")
    return len(body)


def connect(base: str) -> http.client.HTTPConnection:
    url = urlsplit(base)
    return http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=120)


def latencies(base: str, paths: list[str]) -> list[float]:
    out = []
    for path in paths:
        connection = connect(base)
        started = time.perf_counter()
        fetch(connection, path)
        out.append(time.perf_counter() - started)
        connection.close()
    return out


def _load(base: str, path: str, seconds: float, counts: Any, slot: int) -> None:
    connection = connect(base)
    stop = time.perf_counter() + seconds
    done = 0
    while time.perf_counter() < stop:
        fetch(connection, path)
        done += 1
    counts[slot] = done
    connection.close()


def throughput(base: str, path: str, connections: int, seconds: float) -> float:
    """Requests per second over `connections` keep-alive connections, each in its own process (so the load
    tool's reading of large bodies is not held to one core by the GIL)."""
    context = multiprocessing.get_context("fork")
    counts = context.Array("q", connections)
    workers = [context.Process(target=_load, args=(base, path, seconds, counts, i)) for i in range(connections)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
        if worker.exitcode != 0:
            raise RuntimeError(f"a load process failed against {base}{path}")
    total: int = sum(int(n) for n in counts[:])
    return total / (time.perf_counter() - started)


def measure(target: Target, cold: int, threads: int, seconds: float) -> dict[str, Any]:
    cold_paths = [target.path(f"bench-{i}") for i in range(1, cold + 1)]
    cold_times = latencies(target.base, cold_paths)
    warm_path = target.path("bench-0")
    size = fetch(connect(target.base), warm_path)
    for _ in range(8):  # every worker process has the page
        latencies(target.base, [warm_path])
    warm_times = latencies(target.base, [warm_path] * 30)
    rate = throughput(target.base, warm_path, threads, seconds)
    return {"cold": statistics.median(cold_times), "warm": statistics.median(warm_times), "rps": rate, "size": size,
            "cold_samples": cold_times, "rps_samples": [rate]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--cold", type=int, default=7, help="never-seen projects per target for the cold p50")
    parser.add_argument("--denied", action="store_true", help="every file too young: the policy denies all 4000")
    parser.add_argument("--rounds", type=int, default=1, help="throughput rounds per target, alternating (median)")
    parser.add_argument("--identity", action="store_true", help="send no Accept-Encoding (a client without gzip)")
    parser.add_argument("--cache-control", default="max-age=600, public",
                        help="the upstream's Cache-Control (default: PyPI's; '' sends none)")
    parser.add_argument("--serve-upstream", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        run_upstream(args.serve_upstream, args.denied, args.cache_control)
        return 0
    if args.identity:
        del HEADERS["Accept-Encoding"]
    work = Path(tempfile.mkdtemp(prefix="gate-bench-"))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        upstream_process = subprocess.Popen(
            [sys.executable, __file__, "--serve-upstream", str(args.cold + 1), *(["--denied"] if args.denied else []),
             f"--cache-control={args.cache_control}"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )
        processes.append(upstream_process)
        assert upstream_process.stdout is not None
        upstream = upstream_process.stdout.readline().decode().strip()
        up = urlsplit(upstream)
        gate_port, proxpi_port = free_port(), free_port()
        (work / "policy.yaml").write_text(POLICY)
        gate = subprocess.Popen(
            [str(BIN / "gate"), "serve", "--policy", str(work / "policy.yaml"), "--upstream", upstream,
             "--port", str(gate_port), "--cache-dir", str(work / "gate-cache"), "--workers", "2", "--threads", "8"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        env = {**os.environ, "PROXPI_INDEX_URL": upstream, "PROXPI_CACHE_DIR": str(work / "proxpi-cache"),
               "PROXPI_LOGGING_LEVEL": "WARNING"}
        proxpi = subprocess.Popen(
            [str(BIN / "gunicorn"), "-w", "2", "-k", "gthread", "--threads", "8", "-b", f"127.0.0.1:{proxpi_port}",
             "proxpi.server:app"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        processes += [gate, proxpi]
        wait_ready(f"http://127.0.0.1:{gate_port}/-/health", gate)
        wait_ready(f"http://127.0.0.1:{proxpi_port}/health", proxpi)
        targets = [
            Target("upstream direct", f"http://{up.netloc}", "/simple/{}/"),
            Target("proxpi 1.3 (gunicorn -w 2)", f"http://127.0.0.1:{proxpi_port}", "/index/{}/"),
            Target("gate (gunicorn -w 2)", f"http://127.0.0.1:{gate_port}", "/simple/{}/"),
        ]
        rows = [(t.name, measure(t, args.cold, args.threads, args.seconds)) for t in targets]
        for _ in range(args.rounds - 1):  # more throughput rounds, the targets alternating: the median is kept
            for target, (_, row) in zip(targets, rows, strict=True):
                row["rps_samples"].append(throughput(target.base, target.path("bench-0"), args.threads, args.seconds))
        for _, row in rows:
            row["rps"] = statistics.median(row["rps_samples"])
        metrics = requests.get(f"http://127.0.0.1:{gate_port}/-/metrics", timeout=10).text
        upstream_asks = [line for line in metrics.splitlines()
                         if line.startswith(("gate_cache_misses_total{cache=\"pypi.page\"}",
                                             "gate_cache_hits_total{cache=\"pypi.page\"}"))]
    finally:
        for process in reversed(processes):
            if process.stdin:
                process.stdin.close()
            process.terminate()
            process.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    lines = [
        f"4000 files per project (1000 versions x 4), JSON {'without' if args.identity else 'with'} gzip;"
        f" upstream Cache-Control: {args.cache_control or '(none)'}; cold = first request for each of {args.cold}"
        f" projects, warm req/s = {args.threads} threads for {args.seconds:g}s; {os.cpu_count()} cores"
        + ("; every file denied (--denied)." if args.denied else "."),
        "",
        "| target | cold p50 (ms) | warm p50 (ms) | warm req/s | body bytes |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in rows:
        lines.append(f"| {name} | {r['cold'] * 1000:.1f} | {r['warm'] * 1000:.2f} | {r['rps']:.0f} | {r['size']:.0f} |")
    proxpi_row, gate_row = rows[1][1], rows[2][1]
    if args.rounds > 1:
        lines += ["", f"warm req/s per round (median of {args.rounds} in the table):"]
        lines += [f"- {name}: {', '.join(f'{x:.0f}' for x in r['rps_samples'])}" for name, r in rows]
    lines += ["", "cold samples, in request order (ms):"]
    lines += [f"- {name}: {', '.join(f'{t * 1000:.0f}' for t in r['cold_samples'])}" for name, r in rows]
    lines += [
        "",
        f"gate warm req/s / proxpi warm req/s = {gate_row['rps'] / proxpi_row['rps']:.1f} (target >= 10)",
        f"gate cold p50 / proxpi cold p50 = {gate_row['cold'] / proxpi_row['cold']:.2f} (target <= 1.5)",
    ]
    lines += ["", "gate's upstream page cache over the whole run (a miss asks upstream):", *upstream_asks]
    write_results("proxy", "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
