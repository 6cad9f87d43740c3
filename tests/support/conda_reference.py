"""The straightforward conda repodata filter gate served before it indexed repodata record by record
(`gate.proxy.conda_repodata`): `json.loads`, one dict per record, `json.dumps`. Kept in the tests only, as the
reference the scaled path is held to (tests/proxy/conda/test_repodata_scale.py) and whose semantics
tests/proxy/conda/test_channel_filter.py pins."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from gate.decision import Verdict
from gate.evaluate import Evaluator, unidentified
from gate.facts import Ecosystem, Facts, FileFacts, Unidentified
from gate.gather.conda import record_sha256
from gate.policy.compile import load_policies
from gate.sources.conda import conda_file_facts, split_conda_filename
from gate.sources.conda_channel import KNOWN_KEYS, SECTIONS, Record, duplicate_problem, parse_repodata
from gate.sources.segments import segment_problem


def encode(repodata: Mapping[str, Any]) -> bytes:
    return json.dumps(repodata, separators=(",", ":")).encode()


def iter_records(repodata: Mapping[str, Any]) -> Iterator[tuple[str, Record]]:
    """(filename, record) for every `.tar.bz2` and `.conda` record."""
    for section in SECTIONS:
        records = repodata.get(section)
        if isinstance(records, dict):
            for filename, record in records.items():
                if isinstance(record, dict):
                    yield filename, record


def unique_records(repodata: Mapping[str, Any]) -> tuple[list[tuple[str, Record]], dict[str, str]]:
    """One (filename, record) per filename in `iter_records` order (identical duplicates collapse to the
    first), and the filenames listed with records that differ, each with `duplicate_problem`'s reason."""
    listed: dict[str, list[Record]] = {}
    for filename, record in iter_records(repodata):
        listed.setdefault(filename, []).append(record)
    problems = {name: p for name, records in listed.items() if (p := duplicate_problem(records)) is not None}
    return [(name, records[0]) for name, records in listed.items()], problems


def _unknown_records(key: str, value: Any) -> bool:
    """Whether a top-level key gate does not filter may hold package records: a map whose values are maps
    (a future section like `packages.conda` would otherwise reach clients unfiltered)."""
    return key not in KNOWN_KEYS and isinstance(value, dict) and any(isinstance(v, dict) for v in value.values())


def filter_repodata(repodata: Mapping[str, Any], keep: Callable[[str, Record], bool]) -> dict[str, Any]:
    """A copy of `repodata` holding only the records `keep` accepts.

    Unknown top-level maps of maps are dropped (fail closed: they could be records gate does not know to
    judge); other unknown keys pass. A filename already kept from an earlier section is not kept again.
    """
    out = {key: value for key, value in repodata.items() if not _unknown_records(key, value)}
    kept: set[str] = set()  # a filename listed again in a later section is dropped: one record per filename
    for section in SECTIONS:
        records = repodata.get(section)
        if isinstance(records, dict):
            out[section] = {
                name: record
                for name, record in records.items()
                if isinstance(record, dict) and name not in kept and keep(name, record)
            }
            kept.update(out[section])
    return out


def served_repodata(repodata: Mapping[str, Any], keep: Callable[[str, Record], bool]) -> dict[str, Any]:
    """`filter_repodata` (only the records `keep` accepts) without `info.base_url` (repodata v2), so that
    clients resolve package URLs against gate's own subdir URL instead of downloading from the upstream
    (or wherever `base_url` points) directly. `repodata` is not changed."""
    out = filter_repodata(repodata, keep)
    info = out.get("info")
    if isinstance(info, dict) and "base_url" in info:
        out["info"] = {k: v for k, v in info.items() if k != "base_url"}
    return out


def reference_facts(
    filename: str, record: Mapping[str, Any], channel: str | None, problem: str | None = None
) -> FileFacts | Unidentified:
    """`gate.gather.conda.record_facts` as it was written before it read common records in fewer steps
    (`common_record`): each check on its own, in order."""

    def denied(reason: str) -> Unidentified:
        sha256 = record.get("sha256")
        try:
            name = split_conda_filename(filename)[0]
        except ValueError:
            name = filename
        return Unidentified(Ecosystem.CONDA, name, filename, sha256 if isinstance(sha256, str) else None, reason)

    if problem is None and (bad := segment_problem(filename)) is not None:
        problem = f"its filename is {bad}"
    sha256 = record_sha256(record)
    if problem is None and sha256 is None:
        problem = "its repodata record has no valid sha256, so gate could not check its download"
    size = record.get("size")
    if problem is None and not (size is None or (isinstance(size, int) and not isinstance(size, bool) and size >= 0)):
        problem = "its repodata record's size is not a byte count, so gate could not check its download"
    if problem is not None or sha256 is None:
        return denied(problem or "")
    try:
        return conda_file_facts(filename, sha256, record=record, channel=channel)
    except ValueError as err:
        return denied(str(err))


def reference_filter(
    body: bytes, policies: Path, channel: str, now: dt.datetime
) -> tuple[dict[str, Any], dict[str, tuple[str, ...]]]:
    """What the straightforward path serves of the repodata `body` under the policies in `policies` at `now`
    (json.loads, each record's facts from its dict by `reference_facts`, every record judged on its own,
    json.dumps), and each judged filename's violated rules."""
    repodata = parse_repodata(body)
    records, conflicts = unique_records(repodata)
    evaluator = Evaluator(load_policies([policies]))
    allowed, rules = set(), {}
    for name, record in records:
        file = reference_facts(name, record, channel, conflicts.get(name))
        decision = unidentified(file) if isinstance(file, Unidentified) else evaluator.judge(Facts(file), now).decision
        rules[name] = tuple(sorted(v.rule for v in decision.violations))
        if not decision.violations or decision.verdict is Verdict.ALLOW:
            allowed.add(name)
    return json.loads(encode(served_repodata(repodata, lambda name, _: name in allowed))), rules
