"""Benchmark: a cold PyPI page of 500 files with provenance on every file (fetch + verify), per-file cost.

A local upstream (tests/support/pypi_upstream.py) serves project `bench`: 125 versions x 4 files, each row
with a `provenance` URL. Every provenance is the real PEP 740 provenance of `gcb_attestation_test` 0.0.0
(examples/pypi/), so every file costs a full offline Sigstore verification (signature, certificate chain,
transparency log entry) with the production trusted root; its statement then names another file, so none
verifies as evidence for these files and the signer policy denies them all (the cost is that of a file that
does verify: the subject is compared after the cryptography). In one process, through the Flask app:

- page without a policy reading attestations (minimumAge): no provenance fetched, the baseline;
- cold attested page: 500 provenance fetches (8 in parallel, `provenance_workers`) and 500 verifications;
- the page in a second app on the same cache directory (another worker: its own memos, the same store), as
  HTML (a rendering the store does not hold, so every file is decided again): every provenance and every
  verification is found in the store (`verified` cache, keyed by file, evidence digest, URL and trusted
  root), none is fetched or verified again.

With `--concurrent N`: N real `gate serve` processes (1 worker, 8 threads each) asked for the same cold page at
the same moment, on one cache directory (`--engine sqlite`: what gunicorn's workers share) or each with its own
on one Redis or PostgreSQL (`--engine redis|postgresql`, started here: replicas of a fleet), against one process
alone in the same run: the page time of each, and how often each provenance was fetched (the upstream's log) and
verified (`gate_cache_misses_total{cache="verified"}`, summed over the processes).

Run: `.venv/bin/python benchmarks/attested_page_bench.py [--files 500] [--concurrent 2 [--engine sqlite]]`
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from gate.proxy.state import EXTENSION  # noqa: E402
from tests.support.attested_pages import SIGNED_POLICY, add_attested_files, at_once, counter, metrics_of  # noqa: E402
from tests.support.gate_app import gate_app  # noqa: E402
from tests.support.gate_server import running_gate  # noqa: E402
from tests.support.pypi_model import UpstreamIndex  # noqa: E402
from tests.support.pypi_upstream import RunningUpstream, serve  # noqa: E402

NOW = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
JSON = "application/vnd.pypi.simple.v1+json"
HTML = "application/vnd.pypi.simple.v1+html"
AGE = "apiVersion: gate/v1\nkind: Policy\nmetadata: {name: age}\nspec: {minimumAge: 7d}\n"
SECRET = b"attested-page-bench-secret-0123456789"


def index(files: int, uploaded: dt.datetime = NOW - dt.timedelta(days=60)) -> UpstreamIndex:
    return add_attested_files(UpstreamIndex(), files, uploaded)


def app_counter(app: Any, name: str, cache: str) -> int:
    """The value of counter `name` for `cache` (`Metrics.totals`, as the status page reads it)."""
    totals = app.extensions[EXTENSION].metrics.totals(name)
    return int(sum(value for labels, value in totals if labels == {"cache": cache}))


def timed_page(app: Any, accept: str = JSON) -> tuple[float, int]:
    started = time.perf_counter()
    response = app.test_client().get("/simple/bench/", headers={"Accept": accept})
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"{response.status_code}: {response.text[:300]}")
    return elapsed, len(response.get_json()["files"]) if accept == JSON else -1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--concurrent", type=int, default=0, help="gate processes asked for one cold page at once")
    parser.add_argument("--engine", choices=["sqlite", "redis", "postgresql"], default="sqlite")
    args = parser.parse_args()
    if args.concurrent:
        return concurrent(args.files, args.concurrent, args.engine)
    work = Path(tempfile.mkdtemp(prefix="gate-attested-"))
    try:
        (work / "age").mkdir()
        (work / "age" / "p.yaml").write_text(AGE)
        (work / "signed").mkdir()
        (work / "signed" / "p.yaml").write_text(SIGNED_POLICY)
        with serve(index(args.files)) as upstream:
            def app(policy: str, cache: str) -> Any:
                return gate_app(work / policy, cache_dir=work / cache, clock=lambda: NOW, upstream=upstream.url,
                                timeout=30.0)

            baseline, listed = timed_page(app("age", "cache-age"))
            first = app("signed", "cache-signed")
            upstream.clear_log()
            cold, shown = timed_page(first)
            fetched = sum(1 for r in upstream.request_log if "/integrity/" in r)
            verified = app_counter(first, "gate_cache_misses_total", "verified")
            second = app("signed", "cache-signed")  # another worker: the same store
            upstream.clear_log()
            shared, _ = timed_page(second, HTML)  # a rendering not in the store: every decision made again
            refetched = sum(1 for r in upstream.request_log if "/integrity/" in r)
            hits, again = (app_counter(second, f"gate_cache_{k}_total", "verified") for k in ("hits", "misses"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    n = args.files
    print(f"{n} files, provenance on every file (a real PEP 740 provenance, verified offline); one process\n")
    print("| page | ms | ms per file | provenance fetched | verifications |")
    print("|---|---:|---:|---:|---:|")
    print(f"| minimumAge only (no provenance read; {listed} listed) | {baseline * 1000:.0f} | "
          f"{baseline * 1000 / n:.2f} | 0 | 0 |")
    print(f"| cold, signer policy ({shown} listed) | {cold * 1000:.0f} | {cold * 1000 / n:.2f} | {fetched} | "
          f"{verified} |")
    print(f"| second app, same cache dir (another worker), HTML: decided again | {shared * 1000:.0f} | "
          f"{shared * 1000 / n:.2f} | "
          f"{refetched} | {again} ({hits} found in the store) |")
    print(f"\nfetch + verify per file: {(cold - baseline) * 1000 / n:.2f} ms (cold attested minus baseline)")
    return 0


@contextmanager
def engine_url(engine: str, work: Path) -> Iterator[str | None]:
    """None for SQLite; else the URL of a Redis or PostgreSQL started here for the run."""
    if engine == "sqlite":
        yield None
        return
    if engine == "redis":
        from tests.support.redis_server import running_redis  # noqa: PLC0415 (only when asked for)

        with running_redis(work / "redis") as server:
            yield server.url
        return
    from tests.support.postgres_server import running_postgres  # noqa: PLC0415 (only when asked for)

    with running_postgres(work / "postgres") as server:
        yield server.url


def cold_at_once(upstream: RunningUpstream, work: Path, name: str, processes: int, url: str | None,
                 ) -> tuple[list[float], float, int, float]:
    """`processes` gate processes asked for the cold page at once: (their page seconds, verifications in all,
    provenance fetches, waits for another's lease)."""
    common = ["--policy", str(work / "signed"), "--upstream", upstream.url, "--workers", "1", "--threads", "8",
              "--timeout", "60"]
    if url is not None:
        (work / "secret").write_bytes(SECRET)
        common += ["--cache-url", url, "--cache-secret-file", str(work / "secret")]
    with ExitStack() as stack:
        cache = [work / f"{name}-{n}" if url is not None else work / name for n in range(processes)]
        urls = [stack.enter_context(running_gate([*common, "--cache-dir", str(cache[n])], work / f"{name}-{n}.log",
                                                 start_timeout=120)) for n in range(processes)]
        upstream.clear_log()
        answers = at_once([(u, "bench") for u in urls])
        if any(r.status_code != 200 for r, _ in answers):
            raise RuntimeError(str([(r.status_code, r.text[:200]) for r, _ in answers]))
        texts = metrics_of(urls)
    shown = texts[:1] if url is None else texts  # one cache directory: the first shows every process's counts
    verified = sum(counter(t, "gate_cache_misses_total", cache="verified") for t in shown)
    waits = sum(counter(t, "gate_lease_waits_total", cache="verified", outcome=o) for t in shown
                for o in ("shared", "alone"))
    fetched = sum(1 for r in upstream.request_log if "/integrity/" in r)
    return [seconds for _, seconds in answers], verified, fetched, waits


def concurrent(files: int, processes: int, engine: str) -> int:
    work = Path(tempfile.mkdtemp(prefix="gate-attested-"))
    try:
        (work / "signed").mkdir()
        (work / "signed" / "p.yaml").write_text(SIGNED_POLICY)
        with serve(index(files, dt.datetime.now(dt.UTC) - dt.timedelta(days=60))) as upstream, \
                engine_url(engine, work) as url:
            alone = cold_at_once(upstream, work, "alone", 1, url)
            if url is not None:  # the next run must find nothing the first stored
                with engine_url(engine, work / "second") as fresh:
                    together = cold_at_once(upstream, work, "together", processes, fresh)
            else:
                together = cold_at_once(upstream, work, "together", processes, url)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{files} files with provenance, {engine}; gate processes of 1 worker x 8 threads\n")
    print("| cold page asked of | page s (each) | page s / alone | verifications | per file | provenance fetches "
          "| lease waits |")
    print("|---|---|---:|---:|---:|---:|---:|")
    base = alone[0][0]
    for label, (seconds, verified, fetched, waits) in (("1 process alone", alone),
                                                       (f"{processes} processes at once", together)):
        each = ", ".join(f"{s:.2f}" for s in seconds)
        print(f"| {label} | {each} | {statistics.median(seconds) / base:.2f} | {verified:.0f} | "
              f"{verified / files:.2f} | {fetched} | {waits:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
