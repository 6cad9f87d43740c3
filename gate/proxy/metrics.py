"""Prometheus counters for the proxy, summed over gunicorn worker processes.

Each process counts in memory and, at most once a second, writes a snapshot to
`<cache-dir>/metrics/<pid>.json`; `/-/metrics` adds up its own counts and the other processes' snapshots
(a worker that exited keeps its last counts, as counters should).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import defaultdict
from pathlib import Path

from gate.redact import redact_text

Labels = tuple[tuple[str, str], ...]

HELP = {
    "gate_requests_total": ("counter", "HTTP requests by blueprint endpoint and status"),
    "gate_cache_hits_total": ("counter", "cache lookups that found a usable entry, by cache"),
    "gate_cache_misses_total": ("counter", "cache lookups that did not, by cache"),
    "gate_decisions_total": ("counter", "file decisions by verdict"),
    "gate_rule_violations_total": ("counter", "rule violations by policy and rule (enforced or not)"),
    "gate_upstream_requests_total": ("counter", "requests to upstream indexes by outcome"),
    "gate_upstream_seconds": ("summary", "seconds spent waiting for upstream index pages"),
    "gate_integrity_failures_total": ("counter", "downloads aborted because the bytes did not match"),
    "gate_audit_failures_total": ("counter", "audit records that could not be written (lost)"),
    "gate_store_errors_total": ("counter", "store operations that failed (a miss or a dropped write), by backend and "
                                "op (skipped: not tried while the backend recovers; seal: an entry not gate's)"),
    "gate_lease_waits_total": ("counter", "waits for another worker or replica fetching or verifying the same "
                               "evidence, by cache and outcome (shared: its outcome was used; alone: none came, "
                               "done here)"),
    "gate_busy_total": ("counter", "requests answered 503 because every upstream slot was taken"),
    "gate_osv_reloads_total": ("counter", "reloads of the OSV data after its files changed, by outcome (ok, failed)"),
    "gate_osv_stale_total": ("counter", "requests answered 503 because the OSV data is older than --osv-max-age"),
}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    def __init__(self, directory: Path | None = None, *, interval: float = 1.0) -> None:
        self.directory = directory
        self._counts: dict[str, dict[Labels, float]] = defaultdict(lambda: defaultdict(float))
        self._lock = threading.Lock()
        self._interval = interval
        self._written = 0.0
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        key = tuple(sorted((k, redact_text(v)) for k, v in labels.items()))  # a label never shows a secret
        with self._lock:
            self._counts[name][key] += value

    def observe(self, name: str, seconds: float, **labels: str) -> None:
        """One observation of a summary (`<name>_sum` and `<name>_count`)."""
        self.inc(f"{name}_sum", seconds, **labels)
        self.inc(f"{name}_count", 1.0, **labels)

    def _snapshot(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        with self._lock:
            return {name: [(dict(k), v) for k, v in series.items()] for name, series in self._counts.items()}

    def flush(self) -> None:
        """Write this process's snapshot if the interval has passed (no-op without a directory)."""
        now = time.monotonic()
        if self.directory is None or now - self._written < self._interval:
            return
        self._written = now
        target = self.directory / f"{os.getpid()}.json"
        temporary = target.with_suffix(".tmp")
        try:
            temporary.write_text(json.dumps(self._snapshot()))
            temporary.replace(target)
        except OSError:
            pass

    def _totals(self) -> dict[str, dict[Labels, float]]:
        totals: dict[str, dict[Labels, float]] = defaultdict(lambda: defaultdict(float))
        snapshots = [self._snapshot()]
        if self.directory is not None:
            own = f"{os.getpid()}.json"
            for path in self.directory.glob("*.json"):
                if path.name == own:
                    continue
                try:
                    snapshots.append(json.loads(path.read_text()))
                except (OSError, ValueError):
                    continue
        for snapshot in snapshots:
            for name, series in snapshot.items():
                for labels, value in series:
                    totals[name][tuple(sorted(labels.items()))] += value
        return totals

    def totals(self, name: str) -> list[tuple[dict[str, str], float]]:
        """Every labelled value of `name`, summed over the processes (what the status page shows)."""
        return [(dict(labels), value) for labels, value in sorted(self._totals().get(name, {}).items())]

    def render(self) -> str:
        """The Prometheus text exposition format (version 0.0.4)."""
        lines = []
        totals = self._totals()
        for name, (kind, text) in sorted(HELP.items()):
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            series = [f"{name}_sum", f"{name}_count"] if kind == "summary" else [name]
            for each in series:
                for labels, value in sorted(totals.get(each, {}).items()):
                    shown = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                    lines.append(f"{each}{{{shown}}} {value:g}" if shown else f"{each} {value:g}")
        return "\n".join(lines) + "\n"
