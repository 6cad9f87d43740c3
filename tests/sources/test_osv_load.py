"""Loading OSV data that is broken, hostile or unusual: every problem reported with its file and field,
bounded reads of zips and trees, the range algorithm's less common events, and which copy of an id wins."""

from __future__ import annotations

import copy
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gate.facts import Ecosystem
from gate.sources.osv import OsvDatabase, OsvError
from gate.sources.osv_files import Limits
from tests.conftest import FIXTURES

OSV = FIXTURES / "osv"
REQUESTS = OSV / "github-advisory-database/advisories/github-reviewed/2024/05/GHSA-9wx4-h78v-vm56" / (
    "GHSA-9wx4-h78v-vm56.json")
REAL: dict[str, Any] = json.loads(REQUESTS.read_text())


def record(id: str = "GHSA-test-0001", events: list[dict[str, str]] | None = None, **fields: Any) -> dict[str, Any]:
    """A minimal record for `demo` (PyPI) with one ECOSYSTEM range of `events`."""
    base: dict[str, Any] = {
        "schema_version": "1.4.0",
        "id": id,
        "modified": "2025-01-01T00:00:00Z",
        "affected": [{
            "package": {"ecosystem": "PyPI", "name": "Demo"},
            "ranges": [{"type": "ECOSYSTEM", "events": events or [{"introduced": "0"}, {"fixed": "2.0"}]}],
        }],
    }
    base.update(fields)
    return base


def write(root: Path, *documents: dict[str, Any] | bytes) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i, document in enumerate(documents):
        data = document if isinstance(document, bytes) else json.dumps(document).encode()
        (root / f"record-{i}.json").write_bytes(data)
    return root


def mutate(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    data = copy.deepcopy(REAL)
    change(data)
    return data


def problems(paths: list[Path], **kwargs: Any) -> list[str]:
    with pytest.raises(OsvError) as caught:
        OsvDatabase.load(paths, **kwargs)
    return caught.value.problems


def applies(database: OsvDatabase, version: str, name: str = "demo") -> list[str]:
    return [v.id for v in database.lookup(Ecosystem.PYPI, name, version)]


BROKEN: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("id not a string", lambda r: r.update(id=7), "Expected `str`, got `int` - at `$.id`"),
    ("no id", lambda r: r.pop("id"), "missing required field `id`"),
    ("no modified", lambda r: r.pop("modified"), "missing required field `modified`"),
    ("modified not a time", lambda r: r.update(modified="last tuesday"), "at `$.modified`"),
    ("withdrawn not a time", lambda r: r.update(withdrawn=True), "at `$.withdrawn`"),
    ("package without a name", lambda r: r["affected"][0]["package"].pop("name"),
     "missing required field `name` - at `$.affected[0].package`"),
    ("versions not strings", lambda r: r["affected"][0].update(versions=[2, 3]), "at `$.affected[0].versions[0]`"),
    ("events not a list", lambda r: r["affected"][0]["ranges"][0].update(events={"introduced": "0"}),
     "at `$.affected[0].ranges[0].events`"),
    ("event with two keys", lambda r: r["affected"][0]["ranges"][0]["events"].__setitem__(
        1, {"introduced": "1.0", "fixed": "2.32.0"}),
     "$.affected[0].ranges[0].events[1]: exactly one of introduced, fixed, last_affected, limit "
     "(has introduced, fixed)"),
    ("event with no key", lambda r: r["affected"][0]["ranges"][0]["events"].append({}),
     "$.affected[0].ranges[0].events[2]: exactly one of"),
    ("no introduced", lambda r: r["affected"][0]["ranges"][0]["events"].pop(0),
     "$.affected[0].ranges[0].events: no `introduced` event"),
    ("fixed and last_affected", lambda r: r["affected"][0]["ranges"][0]["events"].append({"last_affected": "3.0"}),
     "$.affected[0].ranges[0].events: both `fixed` and `last_affected`"),
    ("unknown range type", lambda r: r["affected"][0]["ranges"][0].update(type="CALVER"),
     "$.affected[0].ranges[0].type: 'CALVER' is not one of ECOSYSTEM, SEMVER, GIT"),
    ("GIT range without repo", lambda r: r["affected"][0]["ranges"][0].update(type="GIT"),
     "$.affected[0].ranges[0].repo: required for a GIT range"),
    ("severity without score", lambda r: r["severity"][0].pop("score"), "at `$.severity[0]`"),
    ("database_specific not an object", lambda r: r.update(database_specific="HIGH"),
     "got `str` - at `$.database_specific`"),
    ("ecosystem_specific not an object", lambda r: r["affected"][0].update(ecosystem_specific=[1]),
     "at `$.affected[0].ecosystem_specific`"),
]


@pytest.mark.parametrize(("change", "expected"), [(c, e) for _, c, e in BROKEN], ids=[n for n, _, _ in BROKEN])
def test_a_record_that_breaks_the_schema_is_reported_with_file_and_field(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], expected: str,
) -> None:
    root = write(tmp_path / "osv", mutate(change))
    (problem,) = problems([root])
    assert problem.startswith(f"{root / 'record-0.json'}: ")
    assert expected in problem


def test_every_problem_of_a_load_is_listed_and_nothing_is_loaded(tmp_path: Path) -> None:
    root = write(tmp_path / "osv", REAL, b"{not json", mutate(lambda r: r.update(id=None)), record())
    found = problems([root, tmp_path / "missing.zip"])
    assert [p.split(": ")[0] for p in found] == [
        str(root / "record-1.json"), str(root / "record-2.json"), str(tmp_path / "missing.zip")]
    assert "JSON is malformed" in found[0]
    assert "cannot read" in found[2]


def test_no_paths_is_an_error() -> None:
    assert problems([]) == ["no OSV data given"]


def test_a_file_that_is_no_osv_data_is_an_error(tmp_path: Path) -> None:
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    assert problems([other]) == [f"{other}: neither a zip of OSV records, a directory of them, nor a .json record"]


def test_a_zip_member_that_breaks_the_schema_names_archive_and_member(tmp_path: Path) -> None:
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("GHSA-9wx4-h78v-vm56.json", json.dumps(mutate(lambda r: r.update(aliases="CVE-1"))))
    (problem,) = problems([archive])
    assert problem.startswith(f"{archive}!GHSA-9wx4-h78v-vm56.json: ")
    assert "at `$.aliases`" in problem


# --- bounded reads -----------------------------------------------------------------------------------


def test_a_zip_bomb_member_is_refused_unread(tmp_path: Path) -> None:
    """17 MiB of zeros packs into a few KiB; its declared size is over the cap, so it is never unpacked."""
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("BOMB.json", b"0" * (17 * 1024 * 1024))
        out.writestr("GHSA-9wx4-h78v-vm56.json", REQUESTS.read_bytes())
    assert archive.stat().st_size < 100_000
    (problem,) = problems([archive])
    assert problem.startswith(f"{archive}!BOMB.json: larger than {16 * 1024 * 1024} bytes")


def test_a_zip_whose_header_understates_a_member_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as out:
        out.writestr("GHSA-9wx4-h78v-vm56.json", REQUESTS.read_bytes())
    data = bytearray(archive.read_bytes())
    size = len(REQUESTS.read_bytes()).to_bytes(4, "little")
    smaller = (100).to_bytes(4, "little")
    data[:] = data.replace(size + size, smaller + smaller)  # the uncompressed size, in both headers
    archive.write_bytes(bytes(data))
    (problem,) = problems([archive])
    assert problem.startswith(f"{archive}!GHSA-9wx4-h78v-vm56.json: ")


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_a_damaged_member_is_refused(tmp_path: Path, method: int) -> None:
    """A flipped byte in a member (its CRC no longer matches, or it no longer inflates) is a problem."""
    archive = tmp_path / "all.zip"
    body = REQUESTS.read_bytes()
    with zipfile.ZipFile(archive, "w", method) as out:
        out.writestr("GHSA-9wx4-h78v-vm56.json", body)
    data = bytearray(archive.read_bytes())
    info = zipfile.ZipFile(archive).infolist()[0]
    data[info.header_offset + 30 + len(info.filename) + info.compress_size // 2] ^= 0x20
    archive.write_bytes(bytes(data))
    (problem,) = problems([archive])
    assert problem.startswith(f"{archive}!GHSA-9wx4-h78v-vm56.json: ")


def test_limits_on_total_bytes_and_records(tmp_path: Path) -> None:
    zipped = OSV / "PyPI-all.zip"
    assert problems([zipped], limits=Limits(records=5)) == [
        f"{zipped}: declares 12 entries, more than 5 records"]
    found = problems([zipped], limits=Limits(total_bytes=20_000))
    assert len(found) == 1 and "the data passes 20000 bytes in all" in found[0]
    tree = OSV / "malicious-packages"
    found = problems([tree], limits=Limits(records=2))
    assert len(found) == 2 and all("more than 2 records in all" in p for p in found)
    found = problems([tree], limits=Limits(member_bytes=3000))
    assert any(p.startswith(str(tree)) and "larger than 3000 bytes" in p for p in found)


def test_trees_skip_hidden_directories_and_other_files_and_report_links(tmp_path: Path) -> None:
    root = write(tmp_path / "osv", record())
    write(root / ".git", b"{broken")
    (root / "README.md").write_text("not a record")
    os.symlink(REQUESTS, root / "link.json")
    found = problems([root])
    assert found == [f"{root / 'link.json'}: a symbolic link (not followed)"]
    (root / "link.json").unlink()
    assert OsvDatabase.load([root]).records == 1


# --- the range algorithm and the data's odd corners ----------------------------------------------------


def load(tmp_path: Path, *documents: dict[str, Any]) -> OsvDatabase:
    return OsvDatabase.load([write(tmp_path / "osv", *documents)])


def test_limit_events(tmp_path: Path) -> None:
    database = load(
        tmp_path,
        record("LIMIT-1", [{"introduced": "1.0"}, {"limit": "2.0"}]),
        record("LIMIT-2", [{"introduced": "0"}, {"limit": "*"}]),
        record("LIMIT-3", [{"introduced": "0"}, {"limit": "1.0"}, {"limit": "3.0"}, {"fixed": "2.5"}]),
    )
    assert applies(database, "0.5") == ["LIMIT-2", "LIMIT-3"]
    assert applies(database, "1.5") == ["LIMIT-1", "LIMIT-2", "LIMIT-3"]
    assert applies(database, "2.0") == ["LIMIT-2", "LIMIT-3"]
    assert applies(database, "2.5") == ["LIMIT-2"]


def test_several_introduced_and_fixed_in_one_range_in_any_order(tmp_path: Path) -> None:
    events = [{"fixed": "3.2.5"}, {"introduced": "3.0.0"}, {"fixed": "1.0.2"}, {"introduced": "1.0.0"}]
    database = load(tmp_path, record("MULTI-1", events))
    assert [v for v in ["0.9", "1.0.0", "1.0.1", "1.0.2", "2.0", "3.0.0", "3.2.4", "3.2.5"]
            if applies(database, v)] == ["1.0.0", "1.0.1", "3.0.0", "3.2.4"]
    (fact,) = database.lookup(Ecosystem.PYPI, "demo", "1.0.1")
    assert fact.fixed == ("1.0.2", "3.2.5")  # every fix above the release, in version order
    (fact,) = database.lookup(Ecosystem.PYPI, "demo", "3.0.0")
    assert fact.fixed == ("3.2.5",)


def test_versions_lists_are_compared_as_pep_440(tmp_path: Path) -> None:
    listed = record("LIST-1", versions=None)
    listed["affected"][0].pop("ranges")
    listed["affected"][0]["versions"] = ["1.0.0", "2024.07.04", "1.0-weird-legacy"]
    database = load(tmp_path, listed)
    assert applies(database, "1.0") == ["LIST-1"]
    assert applies(database, "2024.7.4") == ["LIST-1"]
    assert applies(database, "1!1.0") == []  # another epoch
    assert applies(database, "1.0-weird-legacy") == ["LIST-1"]  # not PEP 440: exact text
    assert applies(database, "1.0.1") == []
    (fact,) = database.lookup(Ecosystem.PYPI, "demo", "1.0")
    assert fact.fixed == ()


def test_semver_and_git_ranges_and_other_ecosystems_are_not_used_for_pypi(tmp_path: Path) -> None:
    semver = record("SEMVER-1")
    semver["affected"][0]["ranges"][0]["type"] = "SEMVER"
    git = record("GIT-1", [{"introduced": "a" * 40}, {"fixed": "b" * 40}])
    git["affected"][0]["ranges"][0].update(type="GIT", repo="https://example.invalid/demo.git")
    npm = record("NPM-1")
    npm["affected"][0]["package"]["ecosystem"] = "npm"
    database = load(tmp_path, semver, git, npm)
    assert applies(database, "1.0") == []
    assert (database.records, database.skipped) == (3, 1)


def test_a_range_version_that_is_not_pep_440_warns_and_widens(tmp_path: Path) -> None:
    database = load(
        tmp_path,
        record("ODD-1", [{"introduced": "1.0"}, {"fixed": "2.0-final-final"}]),
        record("ODD-2", [{"introduced": "one"}, {"fixed": "2.0"}]),
        record("ODD-3", [{"introduced": "0"}, {"limit": "next"}]),
    )
    assert applies(database, "0.5") == ["ODD-2", "ODD-3"]  # introduced "one" counts from the start
    assert applies(database, "5.0") == ["ODD-1", "ODD-3"]  # an unreadable fix does not end the range
    assert len(database.warnings) == 3
    assert "$.affected[0].ranges[0].events[1].fixed: '2.0-final-final' is not a PEP 440 version" in database.warnings[0]
    assert database.warnings[0].startswith(str(tmp_path / "osv" / "record-0.json"))


def test_a_vector_gate_cannot_score_warns_and_gives_no_score(tmp_path: Path) -> None:
    database = load(tmp_path, record(severity=[{"type": "CVSS_V3", "score": "CVSS:3.1/AV:X"},
                                              {"type": "Ubuntu", "score": "high"}]))
    (fact,) = database.lookup(Ecosystem.PYPI, "demo", "1.0")
    assert fact.severity is None
    (warning,) = database.warnings
    assert "$.severity[0].score: 'CVSS:3.1/AV:X' is not a CVSS_V3 vector" in warning


def test_package_level_severity_counts_for_that_package(tmp_path: Path) -> None:
    data = record()
    data["affected"][0]["severity"] = [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]
    (fact,) = load(tmp_path, data).lookup(Ecosystem.PYPI, "demo", "1.0")
    assert fact.severity == 9.8


def test_a_record_without_a_grade_takes_the_worst_of_the_records_sharing_an_id(tmp_path: Path) -> None:
    """PyPA's PYSEC copy of a GitHub advisory has no severity: graded as the advisory it names (or that names
    it), never `unknown` when the same flaw is graded; a record with no graded relative stays ungraded."""
    low = "CVSS:3.1/AV:N/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N"
    database = load(
        tmp_path,
        record("PYSEC-2024-1", aliases=["CVE-2024-1", "GHSA-aaaa-0001"]),
        record("GHSA-aaaa-0001", aliases=["CVE-2024-1"], severity=[{"type": "CVSS_V3", "score": low}],
               database_specific={"severity": "LOW"}),
        record("GHSA-bbbb-0001", aliases=["CVE-2024-2"], database_specific={"severity": "HIGH"}),
        record("PYSEC-2024-2", aliases=["CVE-2024-2"]),
        record("PYSEC-2024-3", aliases=["CVE-2024-3"]),
    )
    facts = {v.id: v for v in database.lookup(Ecosystem.PYPI, "demo", "1.0")}
    advisory = facts["GHSA-aaaa-0001"]
    assert (facts["PYSEC-2024-1"].severity, facts["PYSEC-2024-1"].severityLabel) == (advisory.severity, "LOW")
    assert advisory.severity is not None and advisory.severity < 4.0
    assert (facts["PYSEC-2024-2"].severity, facts["PYSEC-2024-2"].severityLabel) == (None, "HIGH")  # by the CVE
    assert (facts["PYSEC-2024-3"].severity, facts["PYSEC-2024-3"].severityLabel) == (None, None)


def test_malicious_by_alias_or_database_marker(tmp_path: Path) -> None:
    database = load(
        tmp_path,
        record("PYSEC-1", aliases=["MAL-2025-1"]),
        record("GHSA-mark-0001", database_specific={"malicious-packages-origins": [{"source": "x"}]}),
        record("GHSA-none-0001", database_specific={"severity": {"not": "a label"}}),
    )
    facts = {v.id: v for v in database.lookup(Ecosystem.PYPI, "demo", "1.0")}
    assert facts["PYSEC-1"].malicious and facts["GHSA-mark-0001"].malicious
    assert not facts["GHSA-none-0001"].malicious and facts["GHSA-none-0001"].severityLabel is None


def test_the_later_copy_of_an_id_wins_and_a_tie_keeps_the_live_one(tmp_path: Path) -> None:
    old = record("DUP-1")
    later_withdrawn = record("DUP-1", modified="2025-02-01T00:00:00Z", withdrawn="2025-02-01T00:00:00Z")
    assert applies(OsvDatabase.load([write(tmp_path / "a", old), write(tmp_path / "b", later_withdrawn)]), "1.0") == []
    tie_withdrawn = record("DUP-1", withdrawn="2025-01-01T00:00:00Z")
    for order in ((old, tie_withdrawn), (tie_withdrawn, old)):
        roots = [write(tmp_path / f"t{i}-{id(order)}", doc) for i, doc in enumerate(order)]
        assert applies(OsvDatabase.load(roots), "1.0") == ["DUP-1"]
    later_fix = record("DUP-1", [{"introduced": "0"}, {"fixed": "1.0"}], modified="2025-03-01T00:00:00Z")
    database = OsvDatabase.load([write(tmp_path / "c", later_fix), write(tmp_path / "d", old)])
    assert applies(database, "1.0") == []
    assert database.records == 1


def test_digest_follows_the_data(tmp_path: Path) -> None:
    first = load(tmp_path, record())
    again = OsvDatabase.load([tmp_path / "osv"])
    changed = load(tmp_path, record(modified="2025-06-01T00:00:00Z"))
    assert first.digest == again.digest != changed.digest
    assert changed.newest is not None and changed.newest.isoformat() == "2025-06-01T00:00:00+00:00"


def reference(version: str, events: list[dict[str, str]]) -> bool:
    """The schema's pseudocode, word for word, over `packaging` versions (the oracle for the placed form)."""
    from packaging.version import Version  # noqa: PLC0415 (only the oracle needs it)

    v = Version(version)
    limits = [e["limit"] for e in events if "limit" in e]
    if limits and not any(limit == "*" or v < Version(limit) for limit in limits):
        return False

    def order(event: dict[str, str]) -> tuple[int, Version]:
        (text,) = event.values()
        return (0, Version("0")) if event.get("introduced") == "0" else (1, Version(text))

    vulnerable = False
    for event in sorted(events, key=order):
        if "introduced" in event and (event["introduced"] == "0" or v >= Version(event["introduced"])):
            vulnerable = True
        elif "fixed" in event and v >= Version(event["fixed"]):  # noqa: SIM114 (as the pseudocode has it)
            vulnerable = False
        elif "last_affected" in event and v > Version(event["last_affected"]):
            vulnerable = False
    return vulnerable


def test_lookups_agree_with_the_schemas_pseudocode_on_random_ranges(tmp_path: Path) -> None:
    import random  # noqa: PLC0415

    rng = random.Random(16)
    pool = ["0.1", "0.9", "1.0", "1.0.0.post1", "1.0.1", "1.1rc1", "1.1", "2.0.dev0", "2.0", "2.0.1", "3", "10.0"]
    probes = [*pool, "0.0.1", "1.0.0", "1.0.0.1", "1.1a1", "1.5", "2", "2.0.0", "4.0", "11"]
    documents, ranges = [], {}
    for i in range(60):
        events: list[dict[str, str]] = [{"introduced": rng.choice(["0", *pool])}]
        closing = rng.choice(["fixed", "last_affected"])
        for _ in range(rng.randint(0, 4)):
            kind = rng.choice(["introduced", closing, closing, "limit"])
            events.append({kind: rng.choice(pool + (["*"] if kind == "limit" else []))})
        rng.shuffle(events)
        documents.append(record(f"RAND-{i:02d}", events))
        ranges[f"RAND-{i:02d}"] = events
    database = load(tmp_path, *documents)
    for probe in probes:
        expected = sorted(rid for rid, events in ranges.items() if reference(probe, events))
        assert applies(database, probe) == expected, probe


def test_a_load_leaves_garbage_collection_as_it_found_it(tmp_path: Path) -> None:
    import gc  # noqa: PLC0415

    assert gc.isenabled()
    load(tmp_path, record())
    assert gc.isenabled()
    problems([write(tmp_path / "bad", b"[]")])
    assert gc.isenabled()


# --- found in review: data that is silently absent, a clock from the future, grades from elsewhere --------


def test_a_load_that_reads_no_record_is_an_error(tmp_path: Path) -> None:
    """An empty directory or a zip without records is never "no known vulnerabilities"."""
    (tmp_path / "empty").mkdir()
    assert problems([tmp_path / "empty"]) == [f"no OSV record in {tmp_path / 'empty'}"]
    archive = tmp_path / "none.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("README.txt", "nothing here")
    assert problems([archive]) == [f"no OSV record in {archive}"]


def test_a_record_from_the_future_does_not_make_old_data_fresh(tmp_path: Path) -> None:
    database = load(tmp_path, record("OLD-1", modified="2020-01-01T00:00:00Z"),
                    record("FUTURE-1", modified="2999-01-01T00:00:00Z"))
    assert database.newest is not None and database.newest.year == 2020
    assert any("FUTURE" not in w and "in the future" in w for w in database.warnings)


def test_grades_come_from_the_same_package_and_by_band(tmp_path: Path) -> None:
    """Another project's advisory naming the same CVE grades nothing; a CRITICAL label outranks a low score."""
    low = "CVSS:3.1/AV:N/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N"
    other = record("GHSA-decoy-0001", aliases=["CVE-2026-1"], severity=[{"type": "CVSS_V3", "score": low}])
    other["affected"][0]["package"]["name"] = "unrelated"
    critical = record("GHSA-crit-0001", aliases=["CVE-2026-2"], database_specific={"severity": "CRITICAL"})
    scored_low = record("GHSA-lowx-0001", aliases=["CVE-2026-2"], severity=[{"type": "CVSS_V3", "score": low}])
    database = load(tmp_path, other, record("PYSEC-2026-1", aliases=["CVE-2026-1"]), critical, scored_low,
                    record("PYSEC-2026-2", aliases=["CVE-2026-2"]))
    facts = {v.id: v for v in database.lookup(Ecosystem.PYPI, "demo", "1.0")}
    assert (facts["PYSEC-2026-1"].severity, facts["PYSEC-2026-1"].severityLabel) == (None, None)  # unknown
    assert facts["PYSEC-2026-2"].severityLabel == "CRITICAL" and facts["PYSEC-2026-2"].severity is None


def test_zip_entries_sharing_one_stream_are_refused(tmp_path: Path) -> None:
    """Central-directory entries pointing at one local header would each be unpacked again."""
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("A.json", REQUESTS.read_bytes())
        out.writestr("B.json", REQUESTS.read_bytes())
    data = bytearray(archive.read_bytes())
    infos = zipfile.ZipFile(archive).infolist()
    second = infos[1].header_offset.to_bytes(4, "little")
    directory = data.rindex(b"PK\x01\x02")  # the second central entry; its local header offset is at +42
    assert data[directory + 42 : directory + 46] == second
    data[directory + 42 : directory + 46] = infos[0].header_offset.to_bytes(4, "little")
    archive.write_bytes(bytes(data))
    found = problems([archive])
    assert any("shares its data with another entry" in p for p in found), found


def test_a_fifo_is_refused_without_waiting(tmp_path: Path) -> None:
    root = tmp_path / "osv"
    root.mkdir()
    os.mkfifo(root / "GHSA-fifo.json")
    os.mkfifo(tmp_path / "all.zip")
    assert problems([root]) == [f"{root / 'GHSA-fifo.json'}: not a regular file"]
    (refused,) = problems([tmp_path / "all.zip"])  # refused, whatever it is taken for: never waited on
    assert refused.startswith(f"{tmp_path / 'all.zip'}: ")
