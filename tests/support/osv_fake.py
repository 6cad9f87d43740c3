"""FAKE (until `gate.sources.osv.OsvDatabase.load` exists): an `OsvDatabase`-shaped lookup built from the real
fixture records as ../shared/fixtures/osv/MANIFEST.json describes them (which records apply to which wheel,
the MAL records' versions, severities and scores, the `fixed` events of the ranges). Tests of the policy side
and of the front ends use it; the end-to-end tests against the real loader are marked to run once it exists."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import Version

from gate.facts import Ecosystem, Vulnerability, parse_time
from gate.sources.osv import OsvError

OSV = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "osv"
MANIFEST: dict[str, Any] = json.loads((OSV / "MANIFEST.json").read_text())


def _record(entry: dict[str, Any]) -> Vulnerability:
    v3, v4 = entry.get("cvss_v3") or {}, entry.get("cvss_v4") or {}
    score = v4.get("base_score", v3.get("base_score"))
    fixed = tuple(m for a in entry["affected"] for m in re.findall(r"fixed ([^,/ ]+)", a["ranges"]))
    return Vulnerability(
        id=entry["id"], aliases=tuple(entry["aliases"]), summary=f"{entry['id']} (fixture)",
        severity=None if score is None else float(score), severityLabel=entry.get("database_specific_severity"),
        fixed=fixed, malicious=entry["kind"] == "malicious", modified=parse_time(entry["modified"]),
    )


class FakeOsvDatabase:
    """FAKE `OsvDatabase`: `lookup` answers from the MANIFEST (the wheels' `applies`, the MAL records' versions);
    `by_id` are the non-withdrawn records by id, `records` their count (as the real one counts them)."""

    def __init__(self, only: set[str] | None = None, sources: tuple[Path, ...] = (OSV / "PyPI-all.zip",)) -> None:
        self.by_id = {r["id"]: _record(r) for r in MANIFEST["records"]
                        if r["withdrawn"] is None and (only is None or r["id"] in only)}
        self.records = len(self.by_id)
        self.sources = sources
        self.loaded = dt.datetime.now(dt.UTC)
        self.newest = max((r.modified for r in self.by_id.values() if r.modified is not None), default=None)
        self._wheels = {(w["project"], Version(w["version"])): tuple(w["applies"]) for w in MANIFEST["wheels"]}

    @classmethod
    def from_directories(cls, paths: list[Path]) -> FakeOsvDatabase:
        """The records whose `<ID>.json` is in one of the directories `paths`; a file that is not JSON is an
        OsvError naming it (as the real loader reports a record it cannot parse)."""
        ids, problems = set(), []
        for path in paths:
            for file in sorted(path.glob("*.json")):
                try:
                    json.loads(file.read_bytes())
                except ValueError:
                    problems.append(f"{file}: not JSON")
                ids.add(file.stem)
        if problems:
            raise OsvError(problems)
        return cls(ids, tuple(paths))

    def lookup(self, ecosystem: Ecosystem, name: str, version: str) -> tuple[Vulnerability, ...]:
        if ecosystem is not Ecosystem.PYPI:
            return ()
        name, parsed = canonicalize_name(name), Version(version)
        ids = list(self._wheels.get((name, parsed), ()))
        for entry in MANIFEST["records"]:
            if entry["kind"] != "malicious" or entry["id"] not in self.by_id:
                continue
            packages, versions = entry["malicious_package"], entry["affected_versions"]
            if name in packages and (isinstance(versions, str) or any(Version(v) == parsed for v in versions)):
                ids.append(entry["id"])
        return tuple(self.by_id[i] for i in ids if i in self.by_id)
