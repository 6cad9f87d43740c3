"""Decisions as the front ends report them, reduced to what must agree: the verdict and the rules that deny
(`gate check --format json`, `gate explain --format json`, the proxy's 200 or 403 body)."""

from __future__ import annotations

from typing import Any

Outcome = tuple[str, tuple[str, ...]]  # (verdict, the refs of the rules that deny)


def refused(body: str) -> tuple[str, ...]:
    """The `policy/rule` of every denying rule a 403 body lists (`  - policy/rule: message`)."""
    return tuple(sorted(line[4:].split(": ", 1)[0] for line in body.splitlines() if line.startswith("  - ")))


def proxy_outcome(status: int, body: bytes) -> Outcome:
    assert status in (200, 403), body
    return ("allow", ()) if status == 200 else ("deny", refused(body.decode()))


def outcome(verdict: str, violations: list[dict[str, Any]]) -> Outcome:
    """The verdict and the refs of the violations that deny (not audit-only, not waived)."""
    denying = [v for v in violations if not v.get("audit") and not v.get("waived")]
    return verdict, tuple(sorted(f"{v['policy']}/{v['rule']}" for v in denying))


def check_outcomes(report: dict[str, Any]) -> dict[str, Outcome]:
    return {r["facts"]["filename"]: outcome(r["verdict"], r["violations"]) for r in report["results"]}
