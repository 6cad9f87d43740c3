"""The rules gate makes of `spec.vulnerabilities`: each as CEL and as its native check, from the same model
(`gate.policy.model.Vulnerabilities`), and the per-file message that names the records, their severity and
the versions that fix them.

`vulnerabilities.malicious`: no malicious-package report applies (unless ignored). `vulnerabilities.maxSeverity`:
no known vulnerability above the band (unless ignored); a record's band is `gate.facts.severity_band`
(CVSS score, else the database's label, `unknown` without either: above every band but `critical`). With
`malicious: deny` the maxSeverity rule leaves malicious reports to the malicious rule (one violation each);
with `malicious: allow` they count as `critical`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gate.facts import SEVERITY_BANDS, Facts, Vulnerability, describe_vulnerability, iso_z, severity_band
from gate.policy.cel_types import MAX_RECORD_LIST, MAX_VULNERABILITIES
from gate.policy.model import Vulnerabilities, VulnerabilityIgnore

# A structured rule's per-file message at `now`: what the file showed and what would change it.
DescribeAt = Callable[[Facts, dt.datetime], str]
RuleOutcome = tuple[bool, str | None, dt.datetime | None]  # gate.policy.native.RuleResult

MALICIOUS_RULE = "vulnerabilities.malicious"
SEVERITY_RULE = "vulnerabilities.maxSeverity"


def allowed_bands(max_severity: str) -> tuple[str, ...]:
    """The bands at or below `max_severity` (`none`: no band)."""
    return () if max_severity == "none" else SEVERITY_BANDS[: SEVERITY_BANDS.index(max_severity) + 1]


def records_beyond_budget(records: Sequence[Any], lists: Callable[[Any], Sequence[int]]) -> str | None:
    """Why a file's `vulnerabilities` are more than a rule is evaluated over (`lists(record)`: the lengths of
    its aliases and fixed versions), or None: a rule that reads them then fails without being run."""
    if len(records) > MAX_VULNERABILITIES:
        most = MAX_VULNERABILITIES
        return f"the file has {len(records)} known vulnerabilities; rules are evaluated over at most {most}"
    for record in records:
        if any(n > MAX_RECORD_LIST for n in lists(record)):
            return f"an OSV record lists more than {MAX_RECORD_LIST} aliases or fixed versions"
    return None


def facts_beyond_budget(facts: Facts) -> str | None:
    return records_beyond_budget(facts.vulnerabilities, lambda v: (len(v.aliases), len(v.fixed)))


def _ignored_cel(ignored: Ignored) -> str:
    """CEL: record `v` is covered by an unexpired ignore entry: its id or an alias names one whose end is after
    `now` (each name with the last end of the entries naming it; `false` without entries)."""
    if not ignored.ends:
        return "false"
    ends = ", ".join(f"{json.dumps(name)}: timestamp({json.dumps(iso_z(max(e)))})"
                     for name, e in sorted(ignored.ends.items()))
    return f"[{{{ends}}}].exists(m, ([v.id] + v.aliases).exists(n, n in m && now < m[n]))"


class Ignored:
    """The ignore entries by record id: when each entry naming it ends (a dict, so a long list costs a lookup per
    name of a record, not a scan)."""

    def __init__(self, ignore: tuple[VulnerabilityIgnore, ...]) -> None:
        self.ends: dict[str, list[dt.datetime]] = {}
        for entry in ignore:
            for name in entry.ids:
                self.ends.setdefault(name, []).append(entry.expires)

    def covered_until(self, record: Vulnerability, now: dt.datetime) -> dt.datetime | None:
        """When the last unexpired entry covering `record` (by its id or an alias) ends (None: none covers it)."""
        ends = [end for name in (record.id, *record.aliases) for end in self.ends.get(name, ()) if now < end]
        return max(ends) if ends else None


@dataclass(frozen=True)
class NoRecords:
    """The native check of both rules: every record that `counts` must be covered by an ignore entry. Passing
    thanks to an entry holds until the entry ends (the evaluator re-judges then)."""

    ignored: Ignored
    counts: Callable[[Vulnerability], bool]

    def offending(self, facts: Facts, now: dt.datetime) -> list[Vulnerability]:
        return [v for v in facts.vulnerabilities if self.counts(v) and self.ignored.covered_until(v, now) is None]

    def __call__(self, facts: Facts, now: dt.datetime) -> RuleOutcome:
        if (beyond := facts_beyond_budget(facts)) is not None:
            return False, f"rule not evaluated: {beyond}", None
        until: dt.datetime | None = None
        for record in facts.vulnerabilities:
            if not self.counts(record):
                continue
            covered = self.ignored.covered_until(record, now)
            if covered is None:
                return False, None, None
            until = covered if until is None or covered < until else until
        return True, None, until


def _is_malicious(record: Vulnerability) -> bool:
    return record.malicious


@dataclass(frozen=True)
class AboveBand:
    """Whether a record counts against `maxSeverity`: its band is not allowed (malicious reports left to the
    malicious rule when `skip_malicious`)."""

    allowed: tuple[str, ...]
    skip_malicious: bool

    def __call__(self, record: Vulnerability) -> bool:
        if self.skip_malicious and record.malicious:
            return False
        return severity_band(record) not in self.allowed


@dataclass(frozen=True)
class RecordsDescription:
    """The message of a violation: `what` and every offending record (`describe_vulnerability`), then what would
    change it."""

    check: NoRecords
    what: str

    def __call__(self, facts: Facts, now: dt.datetime) -> str:
        records = self.check.offending(facts, now) or list(facts.vulnerabilities)
        listed = "; ".join(describe_vulnerability(r) for r in records)
        return (f"{self.what}: {listed}; install a fixed version, or accept the ids in "
                "spec.vulnerabilities.ignore (reason, owner, expires)")


@dataclass(frozen=True)
class VulnerabilityRule:
    """One rule of `spec.vulnerabilities`: its name, CEL, summary message, native check and per-file message."""

    name: str
    expression: str
    message: str
    native: NoRecords
    describe: RecordsDescription


def vulnerability_rules(model: Vulnerabilities) -> list[VulnerabilityRule]:
    """The rules of `spec.vulnerabilities`, malicious first."""
    index = Ignored(model.ignore)
    ignored = _ignored_cel(index)
    rules = []
    if model.deny_malicious:
        check = NoRecords(index, _is_malicious)
        what = "reported as a malicious package"
        rules.append(VulnerabilityRule(
            MALICIOUS_RULE, f"vulnerabilities.all(v, !v.malicious || {ignored})",
            "a malicious-package report applies to this release", check, RecordsDescription(check, what),
        ))
    if model.max_severity is not None and model.max_severity != "critical":
        allowed = allowed_bands(model.max_severity)
        condition = f"v.band in [{', '.join(json.dumps(b) for b in allowed)}]" if allowed else "false"
        if model.deny_malicious:
            condition = f"v.malicious || {condition}"
        above = "any severity" if model.max_severity == "none" else f"above {model.max_severity} severity"
        check = NoRecords(index, AboveBand(allowed, model.deny_malicious))
        rules.append(VulnerabilityRule(
            SEVERITY_RULE, f"vulnerabilities.all(v, {condition} || {ignored})",
            f"a known vulnerability {above} applies to this release", check,
            RecordsDescription(check, f"known vulnerabilities {above}"),
        ))
    return rules
