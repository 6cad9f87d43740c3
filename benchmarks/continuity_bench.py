"""Benchmark: what `spec.continuity` adds to judging a whole page in the proxy (issue 15).

One synthetic project of 1000 releases x 4 files (tests/support/pypi_model.synthetic_project: versions
1.<i>.0, one a day, no provenance) on the loopback upstream; the proxy's page service (`PypiIndex.judge_page`,
in process, no HTTP) judges all 4000 files under a `minimumAge` policy (the peer path), and under the same
policy with `continuity` within `major` (one line of 4000 files) and within `minor` (every release its own
line: each is held to the project's bar). The page's history is built afresh for every run (as for a page
not seen before); runs alternate between the policies and the medians are compared as ratios.

Run: `.venv/bin/python benchmarks/continuity_bench.py [--runs 7]`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from gate.proxy.pypi import SERVICE  # noqa: E402
from gate.proxy.pypi_index import PypiIndex  # noqa: E402
from tests.support.gate_app import gate_app  # noqa: E402
from tests.support.pypi_model import UpstreamIndex, synthetic_project  # noqa: E402
from tests.support.pypi_upstream import serve  # noqa: E402

NOW = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
BASE = """\
apiVersion: gate/v1
kind: Policy
metadata: {name: bench}
spec:
  match: {ecosystems: [pypi]}
  minimumAge: 30d
"""
POLICIES = {
    "minimumAge": BASE,
    "+ continuity within major": BASE + "  continuity: {noDowngrade: true, within: major}\n",
    "+ continuity within minor": BASE + "  continuity: {noDowngrade: true, within: minor}\n",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    index = UpstreamIndex()
    synthetic_project(index, "big")
    times: dict[str, list[float]] = {name: [] for name in POLICIES}
    with serve(index) as upstream, tempfile.TemporaryDirectory() as tmp:
        services: dict[str, PypiIndex] = {}
        for i, (name, text) in enumerate(POLICIES.items()):
            directory = Path(tmp) / f"p{i}"
            directory.mkdir()
            (directory / "p.yaml").write_text(text)
            app = gate_app(directory, cache_dir=Path(tmp) / f"c{i}", clock=lambda: NOW, upstream=upstream.url)
            services[name] = app.extensions[SERVICE]
        page = next(iter(services.values())).page("big")
        for _ in range(args.runs):
            for name, service in services.items():
                service.facts._histories.clear()  # a page not seen before
                start = time.perf_counter()
                judged = service.judge_page(page, NOW)
                times[name].append(time.perf_counter() - start)
                assert len(judged) == 4000
    base = statistics.median(times["minimumAge"])
    print(f"| policy | judge 4000 files, median of {args.runs} (ms) | ratio to minimumAge alone |")
    print("|---|---|---|")
    for name, runs in times.items():
        median = statistics.median(runs)
        print(f"| {name} | {median * 1000:.0f} | {median / base:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
