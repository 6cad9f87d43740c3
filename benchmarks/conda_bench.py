"""Benchmark: a conda-forge-shaped `repodata.json` through gate against the direct fetch of the same file.

A generated `linux-64/repodata.json` (tests/support/conda_forge.py: names, versions, builds, depends,
constrains, licenses, md5, sha256, sizes, timestamps; 2% of the records younger than 6 days, one record 1 h
short of 7 days) is served by the conda test channel server (tests/support/conda_server.py) on loopback,
with `Cache-Control: public, max-age=600`.
`gate serve`'s gunicorn app (one gthread worker, a `minimumAge: 7d` policy, its clock moved by a file this
script writes) proxies it. One `http.client` loop reads every body, for each size:

- direct: the file from the channel server (median of 3);
- cold: gate's first request (fetch, index, judge every record, write, compress);
- warm: the next request (median of 3: the cached compressed body, decompressed as it is sent);
- one record comes of age: gate's clock moves 2 h on, so the record 1 h short of 7 days is allowed now; the
  next request rebuilds (re-judging only the records whose decision could change), and must list it;
- the worker's peak RSS (VmHWM) after all of that.

Run: `.venv/bin/python benchmarks/conda_bench.py [--records 10000,50000,100000,250000] [--repeats N]` (N runs per
size, each a fresh gate and cache, the median run tabled: one cold request is one sample); the table is printed
and written to benchmarks/results/ (and was copied by hand into benchmarks/RESULTS.md). With `--cold-cpu N`:
instead, the least CPU time of the request thread over N cold requests served in process (steadier than wall
time on a shared machine).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import http.client
import json
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

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from _common import write_results  # noqa: E402  (benchmarks/_common.py, beside this script)

from tests.support.conda_forge import forge_repodata  # noqa: E402
from tests.support.conda_server import ChannelServer  # noqa: E402
from tests.support.gate_server import free_port  # noqa: E402

POLICY = """\
apiVersion: gate/v1
kind: Policy
metadata: {name: bench}
spec:
  match: {ecosystems: [conda], packages: ["*"]}
  minimumAge: 7d
"""
PATH = "/conda/bench/linux-64/repodata.json"
SETTLE = 2.0  # seconds gate is given to store a body it has sent (it does so after the last byte)
DAY_MS = 86_400_000


def run_gate(work: Path, upstream: str, port: int) -> None:
    """Child mode: gate's app under gunicorn (1 gthread worker), its clock `now + <work>/offset` seconds."""
    from gate.proxy.app import create_app  # noqa: PLC0415 (the parent never loads the server)
    from gate.proxy.server import Gunicorn  # noqa: PLC0415
    from gate.proxy.settings import Settings  # noqa: PLC0415

    offset = work / "offset"

    def clock() -> dt.datetime:
        return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=float(offset.read_text() or 0))

    class Bench(Gunicorn):
        def load(self) -> Any:
            app = create_app(self.settings, clock=clock)
            gc.collect()
            gc.freeze()  # as `server_app` does
            return app

    settings = Settings(policies=(work / "policies",), conda_channels=(("bench", upstream),),
                        cache_dir=work / "cache")
    options = {"bind": f"127.0.0.1:{port}", "workers": 1, "threads": 4, "worker_class": "gthread",
               "timeout": 600, "accesslog": None}
    Bench(settings, options).run()


def fetch(base: str, path: str) -> tuple[float, bytes]:
    url = urlsplit(base)
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=600)
    started = time.perf_counter()
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - started
    connection.close()
    if response.status != 200:
        raise RuntimeError(f"{path}: {response.status} {body[:300]!r}")
    return elapsed, body


def worker_of(master: int) -> int:
    for _ in range(300):
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.1)
    raise RuntimeError("gunicorn started no worker")


def memory(pid: int, field: str) -> float:
    """A `/proc/<pid>/status` field (VmHWM, VmRSS) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for {pid}")


def cpu(pid: int) -> float:
    """CPU seconds (user + system) the process has used, with those of the children it has reaped (a large
    build's helper: `gate.proxy.conda_examine`)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(field) for field in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def listed(body: bytes) -> set[str]:
    document = json.loads(body)
    return {*document.get("packages", {}), *document.get("packages.conda", {})}


def channel(count: int, work: Path) -> tuple[Path, str, int]:
    """A generated channel of `count` records under `work`: its directory, the record that comes of age in an
    hour, and the body's size."""
    now = dt.datetime.now(dt.UTC)
    repodata = forge_repodata(count, now=now)
    boundary, record = next(iter(repodata["packages.conda"].items()))
    record["timestamp"] = int(now.timestamp() * 1000) - 7 * DAY_MS + 3_600_000  # of age in 1 h
    directory = work / "channel"
    (directory / "linux-64").mkdir(parents=True)
    data = json.dumps(repodata, separators=(",", ":")).encode()
    (directory / "linux-64" / "repodata.json").write_bytes(data)
    return directory, boundary, len(data)


def measure(count: int, directory: Path, boundary: str, size: int, work: Path) -> dict[str, Any]:
    """One run: a fresh gate (fresh cache, clock at now) in front of the channel at `directory`."""
    (work / "policies").mkdir(parents=True)
    (work / "policies" / "bench.yaml").write_text(POLICY)
    (work / "offset").write_text("0")
    with ChannelServer(directory) as upstream:
        upstream.cache_control = "public, max-age=600"  # PyPI-like; conda-forge's CDN sends a max-age too
        direct = statistics.median(fetch(upstream.url, "/linux-64/repodata.json")[0] for _ in range(3))
        port = free_port()
        log = (work / "gate.log").open("w")
        gate = subprocess.Popen([sys.executable, __file__, "--serve-gate", str(work), upstream.url, str(port)],
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    fetch(base, "/-/health")
                    break
                except OSError:
                    time.sleep(0.1)
            worker = worker_of(gate.pid)  # once it answers: the master's only child then is its worker
            idle = memory(worker, "VmRSS")
            before = cpu(worker)
            cold, body = fetch(base, PATH)
            time.sleep(SETTLE)  # gate stores the body after its last byte: not while warm requests are timed
            cold_cpu = cpu(worker) - before
            served = listed(body)
            warm = statistics.median(fetch(base, PATH)[0] for _ in range(3))
            (work / "offset").write_text(str(2 * 3600))
            rebuild, after = fetch(base, PATH)
            now_listed = listed(after)
            if boundary in served or boundary not in now_listed or len(now_listed) != len(served) + 1:
                raise RuntimeError("the record that came of age is not (only) what changed")
            time.sleep(SETTLE)  # the peak of storing the rebuilt body (after its last byte) counts too
            peak = memory(worker, "VmHWM")
        except RuntimeError:
            print((work / "gate.log").read_text()[-3000:], file=sys.stderr)
            raise
        finally:
            gate.terminate()
            gate.wait(timeout=60)
    return {"records": count, "mb": size / 1e6, "served": len(served), "direct": direct, "cold": cold,
            "warm": warm, "rebuild": rebuild, "peak": peak, "idle": idle, "cold_cpu": cold_cpu,
            "load": os.getloadavg()[0]}


def cold_cpu(count: int, repeats: int) -> float:
    """The least CPU time of the request thread over `repeats` cold requests served in this process, each by a
    fresh app on a fresh cache (a steadier figure than wall time on a shared machine; compression threads
    excluded)."""
    from tests.support.conda_app import conda_app  # noqa: PLC0415 (only this mode loads the app)
    from tests.support.conda_policies import policy_document  # noqa: PLC0415

    now = dt.datetime.now(dt.UTC)
    work = Path(tempfile.mkdtemp(prefix="gate-conda-bench-"))
    times = []
    try:
        (work / "channel" / "linux-64").mkdir(parents=True)
        (work / "channel" / "linux-64" / "repodata.json").write_bytes(
            json.dumps(forge_repodata(count, now=now), separators=(",", ":")).encode())
        with ChannelServer(work / "channel") as upstream:
            upstream.cache_control = "public, max-age=600"
            for i in range(repeats):
                age = policy_document("bench", ecosystems=["conda"], minimumAge="7d")
                client = conda_app(work / f"app{i}", {"bench": upstream.url}, age, clock=lambda: now).test_client()
                gc.collect()
                started = time.thread_time()
                if client.get(PATH).status_code != 200:
                    raise RuntimeError("the cold request failed")
                times.append(time.thread_time() - started)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", default="10000,50000,100000,250000", help="comma-separated sizes")
    parser.add_argument("--serve-gate", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs per size, each with a fresh gate and cache (the median run by cold / direct "
                             "is tabled, every run's ratios listed)")
    parser.add_argument("--cold-cpu", type=int, metavar="REPEATS",
                        help="instead: the least request-thread CPU of REPEATS cold requests in process, per size")
    args = parser.parse_args()
    if args.serve_gate:
        run_gate(Path(args.serve_gate[0]), args.serve_gate[1], int(args.serve_gate[2]))
        return 0
    if args.cold_cpu:
        for count in (int(c) for c in args.records.split(",")):
            least = cold_cpu(count, args.cold_cpu)
            print(f"{count:,} records: cold request CPU {least:.2f} s, {least / count * 1e6:.1f} us a record")
        return 0
    rows, runs = [], []
    for count in (int(c) for c in args.records.split(",")):
        work = Path(tempfile.mkdtemp(prefix="gate-conda-bench-"))
        try:
            directory, boundary, size = channel(count, work)
            each = [measure(count, directory, boundary, size, work / f"run{i}") for i in range(args.repeats)]
        finally:
            shutil.rmtree(work, ignore_errors=True)
        for run in each:
            print(run, flush=True)
        each.sort(key=lambda r: r["cold"] / r["direct"])
        rows.append(each[len(each) // 2])
        runs.append(each)
    lines = [
        f"`{' '.join(['benchmarks/conda_bench.py', *sys.argv[1:]])}`, {os.cpu_count()} cores, "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; policy `minimumAge: 7d`; gate: 1 gunicorn gthread worker.",
        "",
        "| records | MB | served | direct (s) | cold (s) | cold / direct | warm (s) | warm / direct "
        "| one of age (s) | rebuild / cold | worker peak RSS (MiB) | idle RSS (MiB) | cold us/record "
        "| cold worker + helper CPU (s) | load avg |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['records']:,} | {r['mb']:.0f} | {r['served']:,} | {r['direct']:.3f} | {r['cold']:.2f} "
            f"| {r['cold'] / r['direct']:.1f}x | {r['warm']:.3f} | {r['warm'] / r['direct']:.2f}x "
            f"| {r['rebuild']:.3f} | {r['rebuild'] / r['cold']:.2f} | {r['peak']:.0f} | {r['idle']:.0f} "
            f"| {r['cold'] / r['records'] * 1e6:.1f} | {r['cold_cpu']:.2f} | {r['load']:.1f} |"
        )
    if args.repeats > 1:
        lines += ["", f"Every run ({args.repeats} per size, each a fresh gate and cache; the table shows the median by "
                  "cold / direct):", ""]
        for each in runs:
            cold = ", ".join(f"{r['cold'] / r['direct']:.1f}x" for r in each)
            rebuild = ", ".join(f"{r['rebuild'] / r['cold']:.2f}" for r in each)
            peak = ", ".join(f"{r['peak']:.0f}" for r in each)
            lines.append(f"- {each[0]['records']:,} records: cold / direct {cold}; rebuild / cold {rebuild}; "
                         f"peak RSS {peak} MiB")
    write_results("conda", "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
