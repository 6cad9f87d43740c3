"""OSV data against the real records of ../shared/fixtures/osv: what `lookup` gives for every wheel of the
MANIFEST, from the bulk-export zip and from the advisory trees alike, and the README's edge cases."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from gate.facts import Ecosystem, Vulnerability
from gate.sources.osv import OsvDatabase
from tests.conftest import FIXTURES

OSV = FIXTURES / "osv"
ZIP = OSV / "PyPI-all.zip"
TREES = (OSV / "github-advisory-database", OSV / "malicious-packages")
MANIFEST: dict[str, Any] = json.loads((OSV / "MANIFEST.json").read_text())
RECORDS = {record["id"]: record for record in MANIFEST["records"]}
WHEELS = MANIFEST["wheels"]
RANK = {"LOW": 1, "MODERATE": 2, "HIGH": 3, "CRITICAL": 4}
# releases of the MAL records' projects (no file of them is here, on purpose): (name, version, ids)
MALICIOUS = [
    ("num2words", "0.5.15", ["MAL-2025-6794"]),
    ("num2words", "0.5.16", ["MAL-2025-6794"]),
    ("num2words", "0.5.14", []),
    ("fabrice", "0.0.1", ["MAL-2024-10573"]),
    ("fabrice", "99.0", ["MAL-2024-10573"]),
    ("0requests", "0.0.1", ["MAL-2026-15859"]),
    ("0requests", "0.0.2", []),
    ("fastapi", "0.136.3", []),  # MAL-2026-4750 is withdrawn
]


@pytest.fixture(scope="module")
def from_zip() -> OsvDatabase:
    return OsvDatabase.load([ZIP])


@pytest.fixture(scope="module")
def from_trees() -> OsvDatabase:
    return OsvDatabase.load(list(TREES))


def ids(found: tuple[Vulnerability, ...]) -> list[str]:
    return [v.id for v in found]


def scores(record: dict[str, Any]) -> list[float]:
    return [record[key]["base_score"] for key in ("cvss_v3", "cvss_v4") if record.get(key)]


@pytest.mark.parametrize("layout", ["zip", "trees"])
@pytest.mark.parametrize("wheel", WHEELS, ids=[Path(w["file"]).name for w in WHEELS])
def test_manifest_wheels(wheel: dict[str, Any], layout: str, from_zip: OsvDatabase, from_trees: OsvDatabase) -> None:
    database = from_zip if layout == "zip" else from_trees
    found = database.lookup(Ecosystem.PYPI, wheel["project"], wheel["version"])
    assert ids(found) == sorted(wheel["applies"])
    for fact in found:
        record = RECORDS[fact.id]
        assert fact.severityLabel == record["database_specific_severity"]
        assert fact.severity == (max(scores(record)) if scores(record) else None)  # the worse of v3 and v4
        assert fact.aliases == tuple(record["aliases"])
        assert not fact.malicious
        assert fact.modified is not None and fact.modified.isoformat().replace("+00:00", "Z") == record["modified"]
    highest = wheel["highest_severity"]
    if highest is None:
        assert found == ()
    else:  # the manifest's ranking: label first, ties by CVSS v3 score
        v3 = {v.id: (RECORDS[v.id].get("cvss_v3") or {}).get("base_score", 0.0) for v in found}
        top = max(found, key=lambda v: (RANK[v.severityLabel or ""], v3[v.id]))
        assert top.id == highest["record"]
        assert top.severityLabel == highest["database_specific_severity"]
        if "cvss_v3_base_score" in highest:
            assert RECORDS[top.id]["cvss_v3"]["base_score"] == highest["cvss_v3_base_score"]


def test_zip_and_trees_agree(from_zip: OsvDatabase, from_trees: OsvDatabase) -> None:
    releases = [(w["project"], w["version"]) for w in WHEELS] + [(n, v) for n, v, _ in MALICIOUS]
    for name, version in releases:
        assert from_zip.lookup(Ecosystem.PYPI, name, version) == from_trees.lookup(Ecosystem.PYPI, name, version)
    for database in (from_zip, from_trees):
        assert (database.records, database.withdrawn, database.skipped, database.warnings) == (12, 1, 0, ())
        assert database.newest is not None and database.newest.isoformat() == "2026-09-04T00:47:46.156673+00:00"


def test_both_layouts_at_once_count_each_record_once(from_zip: OsvDatabase) -> None:
    both = OsvDatabase.load([ZIP, *TREES])
    assert both.records == 12
    for wheel in WHEELS:
        assert both.lookup(Ecosystem.PYPI, wheel["project"], wheel["version"]) == from_zip.lookup(
            Ecosystem.PYPI, wheel["project"], wheel["version"])


@pytest.mark.parametrize(("name", "version", "expected"), MALICIOUS)
def test_malicious_reports(name: str, version: str, expected: list[str], from_trees: OsvDatabase) -> None:
    found = from_trees.lookup(Ecosystem.PYPI, name, version)
    assert ids(found) == expected
    assert all(fact.malicious and fact.severity is None for fact in found)


def test_num2words_report_keeps_its_aliases(from_zip: OsvDatabase) -> None:
    (fact,) = from_zip.lookup(Ecosystem.PYPI, "num2words", "0.5.16")
    assert set(fact.aliases) >= {"PYSEC-2025-72", "GHSA-jxr6-qrxx-2ph2"}
    assert fact.summary and fact.published is not None


def test_withdrawn_record_changes_nothing(tmp_path: Path, from_trees: OsvDatabase) -> None:
    """Loaded or not, the withdrawn MAL report on fastapi 0.136.3 (a real release) applies to nothing."""
    live_only = tmp_path / "malicious-packages"
    shutil.copytree(OSV / "malicious-packages", live_only)
    shutil.rmtree(live_only / "osv" / "withdrawn")
    without = OsvDatabase.load([TREES[0], live_only])
    assert from_trees.withdrawn == 1 and without.withdrawn == 0
    releases = [(w["project"], w["version"]) for w in WHEELS] + [(n, v) for n, v, _ in MALICIOUS]
    for name, version in releases:
        assert from_trees.lookup(Ecosystem.PYPI, name, version) == without.lookup(Ecosystem.PYPI, name, version)
    assert from_trees.lookup(Ecosystem.PYPI, "fastapi", "0.136.3") == ()


@pytest.mark.parametrize(
    ("name", "version", "expected", "fixed"),
    [
        # urllib3: two affected[] entries for one package; the fix named is the one of the entry that matched
        ("urllib3", "1.26.18", ["GHSA-34jh-p97f-mpxf"], ("1.26.19",)),
        ("urllib3", "1.26.19", [], ()),
        ("urllib3", "2.0.0", ["GHSA-34jh-p97f-mpxf"], ("2.2.2",)),
        ("urllib3", "2.2.1", ["GHSA-34jh-p97f-mpxf"], ("2.2.2",)),
        ("urllib3", "2.2.2", [], ()),
        # certifi: introduced 2021.05.30, fixed 2024.07.4 compared as PEP 440 versions, not as text
        ("certifi", "2021.5.29", [], ()),
        ("certifi", "2021.5.30", ["GHSA-248v-346w-9cwc"], ("2024.07.4",)),
        ("certifi", "2021.05.30", ["GHSA-248v-346w-9cwc"], ("2024.07.4",)),
        ("certifi", "2024.07.3", ["GHSA-248v-346w-9cwc"], ("2024.07.4",)),
        ("certifi", "2024.07.04", [], ()),
        # py: last_affected 1.11.0 is inclusive, and there is no fix
        ("py", "1.11.0", ["GHSA-w596-4wvx-j9j6"], ()),
        ("py", "1.11.0.post1", [], ()),
        ("py", "1.11.1", [], ()),
        ("py", "0.1", ["GHSA-w596-4wvx-j9j6"], ()),
        # Jinja2, looked up however the name is written
        ("jinja2", "3.1.3", ["GHSA-h75v-3vvj-5mfj"], ("3.1.4",)),
        ("JINJA2", "3.1.3", ["GHSA-h75v-3vvj-5mfj"], ("3.1.4",)),
        ("Jinja2", "3.1.4", [], ()),
        # requests: introduced 2.3.0 (not from the start)
        ("requests", "2.2.1", ["GHSA-9wx4-h78v-vm56"], ("2.32.0",)),
        ("requests", "2.3.0", ["GHSA-9wx4-h78v-vm56", "GHSA-j8r2-6x86-q33q"], None),
        ("requests", "2.32.0rc1", ["GHSA-9wx4-h78v-vm56"], ("2.32.0",)),  # a pre-release sorts before its release
        # idna and setuptools carry CVSS v3 and v4 vectors
        ("idna", "3.6", ["GHSA-jjg7-2v4v-x38h"], ("3.7",)),
        ("setuptools", "69.5.1", ["GHSA-cx63-2mw6-8hw5"], ("70.0.0",)),
        ("setuptools", "70.0", [], ()),
    ],
)
def test_readme_edge_cases(name: str, version: str, expected: list[str], fixed: tuple[str, ...] | None,
                           from_zip: OsvDatabase) -> None:
    found = from_zip.lookup(Ecosystem.PYPI, name, version)
    assert ids(found) == expected
    if fixed is not None and found:
        assert found[0].fixed == fixed


def test_scores_of_two_vectors_are_the_worse(from_zip: OsvDatabase) -> None:
    (idna,) = from_zip.lookup(Ecosystem.PYPI, "idna", "3.6")
    (setuptools,) = from_zip.lookup(Ecosystem.PYPI, "setuptools", "69.0")
    assert (idna.severity, setuptools.severity) == (6.9, 8.8)  # v4 6.9 > v3 6.2; v3 8.8 > v4 7.5
    (certifi,) = from_zip.lookup(Ecosystem.PYPI, "certifi", "2024.6.2")
    assert (certifi.severity, certifi.severityLabel) == (None, "LOW")  # "severity": [] : the label decides


def test_other_ecosystems_and_unknown_names_find_nothing(from_zip: OsvDatabase) -> None:
    assert from_zip.lookup(Ecosystem.CONDA, "requests", "2.30.0") == ()
    assert from_zip.lookup(Ecosystem.GENERIC, "requests", "2.30.0") == ()
    assert from_zip.lookup(Ecosystem.PYPI, "requests-toolbelt", "0.1") == ()


def test_a_release_version_that_is_not_pep_440_is_inside_every_range(from_zip: OsvDatabase) -> None:
    """gate cannot place `2.x-final` in PEP 440 order, so it cannot show it is outside a range: the
    records apply (with every fix they name), never "unaffected by default"."""
    found = from_zip.lookup(Ecosystem.PYPI, "requests", "2.x-final")
    assert ids(found) == ["GHSA-9wx4-h78v-vm56", "GHSA-j8r2-6x86-q33q"]
    assert [v.fixed for v in found] == [("2.32.0",), ("2.31.0",)]
    # a versions[] list is compared by exact text: num2words lists 0.5.15 and 0.5.16 only
    assert from_zip.lookup(Ecosystem.PYPI, "num2words", "0.5.15-evil") == ()
