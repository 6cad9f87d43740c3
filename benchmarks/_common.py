"""Helpers shared by the benchmarks, imported by a script beside it as `from _common import ...`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"


def write_results(prefix: str, text: str) -> Path:
    """Print a benchmark's table and keep it in benchmarks/results/PREFIX-<UTC time>.md (the file written)."""
    print(text)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{prefix}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.md"
    path.write_text(text + "\n")
    return path
