"""Records that share a judgement (`gate.proxy.conda_shared`, `Evaluator.sharing`): the served repodata, the
audited denials and the decisions counted are those of the straightforward path, which judges every record on
its own (tests/support/conda_reference.py), under policy sets that share, share in part, or cannot share; and
a planted drift (a class that ignores one of two minimum ages) is caught by that comparison."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import gate.evaluate
from gate.evaluate import Evaluator, Judgement, Sharing
from gate.facts import Ecosystem, FileFacts
from gate.gather.conda import common_record, record_facts
from gate.policy.compile import load_policies
from gate.proxy.conda import CondaChannels
from tests.support.conda_app import conda_app
from tests.support.conda_forge import forge_repodata
from tests.support.conda_policies import policy_document, write_policies
from tests.support.conda_reference import reference_facts, reference_filter
from tests.support.conda_server import ChannelServer

NOW = dt.datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=dt.UTC)
NOW_MS = int(NOW.timestamp() * 1000)
DAY_MS = 86_400_000
SHA = "ab" * 32
CHANNEL = "forge"


def _record(package: str, version: str, build: str = "0", **fields: Any) -> dict[str, Any]:
    return {"name": package, "version": version, "build": build, "sha256": SHA, "size": 10, "subdir": "noarch",
            "timestamp": NOW_MS - 300 * DAY_MS, **fields}


def _timed() -> dict[str, dict[str, Any]]:
    """Records of two names (`pyedge`, `libedge`) at and around each age's boundary, in every time form; each
    name's first record is old, so a class is first judged allowed."""
    out: dict[str, dict[str, Any]] = {}
    times: list[tuple[str, Any]] = [("old", NOW_MS - 300 * DAY_MS)]
    for days in (7, 30):
        edge = NOW_MS - days * DAY_MS
        times += [(f"at{days}", edge), (f"before{days}", edge - 1), (f"after{days}", edge + 1),
                  (f"sec{days}", edge // 1000), (f"float{days}", float(edge - 1)), (f"second{days}", edge + 999)]
    times += [("none", None), ("zero", 0), ("negative", -5), ("bool", True), ("string", "x"), ("huge", 10**30),
              ("latest", 10**14 - 1), ("past", 10**14), ("seconds11", 10**11), ("young", NOW_MS - DAY_MS)]
    for package in ("pyedge", "libedge"):
        for i, (label, value) in enumerate(times):
            record = _record(package, f"1.{i}")
            if value is None:
                del record["timestamp"]
            else:
                record["timestamp"] = value
            out[f"{package}-1.{i}-0.conda"] = record
            indexed = _record(package, f"2.{i}", indexed_timestamp=value, timestamp=NOW_MS - 300 * DAY_MS)
            out[f"{package}-2.{i}-0.conda"] = indexed
            out[f"{package}-3.{i}-{label}.tar.bz2"] = _record(package, f"3.{i}", label, timestamp=value)
    out["pyedge-4.0-0.conda"] = _record("PyEdge", "4.0")  # another case: judged on its own
    out["pyedge-4.1-0.conda"] = _record("pyedge", "4.1", size=-1)
    out["pyedge-4.2-0.conda"] = _record("pyedge", "4.2", sha256="AB" * 32)
    out["pyedge-4.3-0.conda"] = _record("pyedge", "4.3", size=None)
    out["pyedge-4.4-0.conda"] = _record("pyedge", "4.4", size=True)
    out["py%edge-4.5-0.conda"] = _record("py%edge", "4.5")
    out["nodashes.conda"] = _record("nodashes", "1")
    return out


def _body() -> bytes:
    repodata = forge_repodata(2000, subdir="noarch", seed=11, now=NOW, young=0.3)
    repodata["packages.conda"].update(_timed())
    return json.dumps(repodata, separators=(",", ":")).encode()


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    channel = tmp_path_factory.mktemp("shared")
    (channel / "noarch").mkdir()
    (channel / "noarch" / "repodata.json").write_bytes(_body())
    return channel


@pytest.fixture(scope="module")
def upstream(channel: Path) -> Iterator[ChannelServer]:
    with ChannelServer(channel) as server:
        yield server


AGE = policy_document("age", ecosystems=["conda"], minimumAge="7d")
LONGER = policy_document("longer", ecosystems=["conda"], packages=("py*",), minimumAge="30d")
UNKNOWN_OK = policy_document("unknown", ecosystems=["conda"], minimumAge={"age": "7d", "whenUnknown": "allow"})
NOW_RULE = policy_document("clock", ecosystems=["conda"], rules=[
    {"name": "after-2020", "expression": 'now > timestamp("2020-01-01T00:00:00Z")', "message": "clock"}])
VERSION_RULE = policy_document("version", ecosystems=["conda"], rules=[
    {"name": "no-1-3", "expression": 'file.version != "1.3"', "message": "1.3 is out"}])
SOME = policy_document("some", ecosystems=["conda"], packages=("py*", "lib*"), minimumAge="7d")
WAIVED = policy_document("waived", ecosystems=["conda"], minimumAge="7d", exceptions=[
    {"packages": ["libedge"], "waive": ["minimumAge"], "reason": "vendor", "expires": "2027-01-31"}])
AUDITED = policy_document("audited", ecosystems=["conda"], minimumAge="7d", mode="audit")

POLICY_SETS = {
    "age": (AGE,),
    "two-ages": (AGE, LONGER),
    "unknown-allowed": (UNKNOWN_OK,),
    "now-rule": (AGE, NOW_RULE),
    "version-rule": (AGE, VERSION_RULE),
    "unmatched": (SOME,),
    "exception": (WAIVED,),
    "audit-mode": (AUDITED,),
}


def _audited(tmp_path: Path) -> dict[str, tuple[str, ...]]:
    lines = [json.loads(line) for line in (tmp_path / "cache" / "audit.jsonl").read_text().splitlines()]
    return {r["file"]: tuple(sorted(v["rule"] for v in r["rules"])) for r in lines if r["event"] == "repodata"}


def _counted(metrics: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith("gate_decisions_total{") and 'event="repodata"' in line)


def _compare(tmp_path: Path, upstream: ChannelServer, channel: Path, policies: tuple[dict[str, Any], ...]) -> bool:
    """Whether gate serves, audits and counts what the straightforward path does (asserting that the channel
    has both outcomes)."""
    client = conda_app(tmp_path, {CHANNEL: upstream.url}, *policies, clock=lambda: NOW).test_client()
    response = client.get(f"/conda/{CHANNEL}/noarch/repodata.json")
    assert response.status_code == 200
    expected, rules = reference_filter((channel / "noarch" / "repodata.json").read_bytes(), tmp_path / "policies",
                                       upstream.url, NOW)
    assert any(rules.values()) and not all(rules.values())
    same = json.loads(response.data) == expected
    audited = _audited(tmp_path) == {name: r for name, r in rules.items() if r}
    counted = _counted(client.get("/-/metrics").get_data(as_text=True)) == len(rules)
    return same and audited and counted


@pytest.mark.parametrize("policies", POLICY_SETS.values(), ids=POLICY_SETS.keys())
def test_shared_judgements_serve_what_judging_each_record_serves(
    tmp_path: Path, upstream: ChannelServer, channel: Path, policies: tuple[dict[str, Any], ...],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alone: list[int] = []  # how many records were judged on their own
    real = CondaChannels.judge_all

    def judge_all(self: CondaChannels, *args: Any) -> list[Judgement]:
        alone.append(len(args[2]))
        return real(self, *args)

    monkeypatch.setattr(CondaChannels, "judge_all", judge_all)
    assert _compare(tmp_path, upstream, channel, policies)
    records = len(reference_filter((channel / "noarch" / "repodata.json").read_bytes(), tmp_path / "policies",
                                   upstream.url, NOW)[1])
    if policies == POLICY_SETS["version-rule"]:  # a rule reads the version: every record on its own
        assert sum(alone) == records
    elif policies == POLICY_SETS["unmatched"]:  # names no policy governs are denied, each on its own
        assert records / 2 < sum(alone) < records
    else:
        assert sum(alone) < records / 2


def test_a_class_that_ignores_one_of_two_ages_is_caught(
    tmp_path: Path, upstream: ChannelServer, channel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Planted drift: `Sharing` keeps only the first age of a plan (7d where `py*` needs 30d too): records of
    `py*` names between 7 and 30 days old then share an older record's allowance, and the comparison fails."""
    real = gate.evaluate._sharing

    def drifted(rules: Any) -> Sharing | None:
        found = real(rules)
        return None if found is None else found._replace(ages=found.ages[:1])

    monkeypatch.setattr(gate.evaluate, "_sharing", drifted)
    assert not _compare(tmp_path, upstream, channel, (AGE, LONGER))


def test_a_class_on_the_wrong_side_of_the_boundary_is_caught(
    tmp_path: Path, upstream: ChannelServer, channel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Planted drift: an age one millisecond shorter than the rule's (`uploaded < cut` for `<=`)."""
    real = gate.evaluate._sharing

    def drifted(rules: Any) -> Sharing | None:
        found = real(rules)
        if found is None:
            return None
        return found._replace(ages=tuple(age - dt.timedelta(milliseconds=1) for age in found.ages))

    monkeypatch.setattr(gate.evaluate, "_sharing", drifted)
    assert not _compare(tmp_path, upstream, channel, (AGE,))


def _evaluator(tmp_path: Path, *policies: dict[str, Any]) -> Evaluator:
    return Evaluator(load_policies([write_policies(tmp_path / "policies", *policies)]))


@pytest.mark.parametrize(
    ("policies", "expected"),
    [
        ((AGE,), Sharing(frozenset(), (dt.timedelta(days=7),))),
        ((AGE, LONGER), Sharing(frozenset(), (dt.timedelta(days=7), dt.timedelta(days=30)))),
        ((AGE, VERSION_RULE), Sharing(frozenset({"version"}), (dt.timedelta(days=7),))),
        ((NOW_RULE,), Sharing(frozenset(), ())),
        ((SOME,), Sharing(frozenset(), (dt.timedelta(days=7),))),
        ((policy_document("whole", rules=[{"name": "w", "expression": '"name" in file', "message": "m"}]),), None),
        ((policy_document("att", attestations={"required": True}),), None),
    ],
    ids=["age", "two-ages", "version", "now", "some", "whole-file", "attestations"],
)
def test_what_a_judgement_depends_on(tmp_path: Path, policies: tuple[dict[str, Any], ...],
                                     expected: Sharing | None) -> None:
    assert _evaluator(tmp_path, *policies).sharing(Ecosystem.CONDA, "pyedge") == expected


def test_a_name_no_policy_governs_shares_an_empty_plan(tmp_path: Path) -> None:
    """No rule: the outcome (unmatched) depends on the name alone; it is shared only when it is clean."""
    assert _evaluator(tmp_path, SOME).sharing(Ecosystem.CONDA, "other") == Sharing(frozenset(), ())


def test_common_records_give_the_facts_each_step_gives() -> None:
    """`record_facts` (common records in fewer steps) against the same checks taken one by one, over every
    edge record above and the generated ones."""
    records = {**forge_repodata(500, subdir="noarch", seed=3, now=NOW)["packages.conda"], **_timed()}
    common = 0
    for filename, record in records.items():
        common += common_record(filename, record) is not None
        for channel in ("https://x/ch/", None):
            fast, slow = record_facts(filename, record, channel), reference_facts(filename, record, channel)
            assert fast == slow, filename
            assert isinstance(fast, FileFacts) or fast.reason  # a denial says why
    assert 0 < common < len(records)
