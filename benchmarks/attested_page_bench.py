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

Run: `.venv/bin/python benchmarks/attested_page_bench.py [--files 500]`
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from gate.proxy.state import EXTENSION  # noqa: E402
from tests.support.gate_app import gate_app  # noqa: E402
from tests.support.pypi_model import UpstreamFile, UpstreamIndex  # noqa: E402
from tests.support.pypi_upstream import serve  # noqa: E402

PROVENANCE = REPO / "examples" / "pypi" / "gcb_attestation_test-0.0.0.tar.gz.provenance"
NOW = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
JSON = "application/vnd.pypi.simple.v1+json"
HTML = "application/vnd.pypi.simple.v1+html"
AGE = "apiVersion: gate/v1\nkind: Policy\nmetadata: {name: age}\nspec: {minimumAge: 7d}\n"
SIGNED = """apiVersion: gate/v1
kind: Policy
metadata: {name: signed}
spec:
  minimumAge: 7d
  attestations:
    required: true
    signers:
      - publisher: {kind: GitHub, repository: "bench/*"}
"""


def index(files: int) -> UpstreamIndex:
    out = UpstreamIndex()
    for i in range(files):
        version = f"1.{i // 4}.0"
        filename = f"bench-{version}-py3-none-{'any' if i % 4 == 0 else f'p{i % 4}'}.whl"
        content = f"bench {filename}\n".encode()
        out.add(UpstreamFile(filename=filename, project="bench", version=version, path=None,
                             sha256=hashlib.sha256(content).hexdigest(), size=len(content),
                             upload_time=NOW - dt.timedelta(days=60), content=content, provenance=PROVENANCE))
    return out


def counter(app: Any, name: str, cache: str) -> int:
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
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gate-attested-"))
    try:
        (work / "age").mkdir()
        (work / "age" / "p.yaml").write_text(AGE)
        (work / "signed").mkdir()
        (work / "signed" / "p.yaml").write_text(SIGNED)
        with serve(index(args.files)) as upstream:
            def app(policy: str, cache: str) -> Any:
                return gate_app(work / policy, cache_dir=work / cache, clock=lambda: NOW, upstream=upstream.url,
                                timeout=30.0)

            baseline, listed = timed_page(app("age", "cache-age"))
            first = app("signed", "cache-signed")
            upstream.clear_log()
            cold, shown = timed_page(first)
            fetched = sum(1 for r in upstream.request_log if "/integrity/" in r)
            verified = counter(first, "gate_cache_misses_total", "verified")
            second = app("signed", "cache-signed")  # another worker: the same store
            upstream.clear_log()
            shared, _ = timed_page(second, HTML)  # a rendering not in the store: every decision made again
            refetched = sum(1 for r in upstream.request_log if "/integrity/" in r)
            hits, again = (counter(second, f"gate_cache_{k}_total", "verified") for k in ("hits", "misses"))
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


if __name__ == "__main__":
    raise SystemExit(main())
