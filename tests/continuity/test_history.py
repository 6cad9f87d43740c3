"""The release history one file is judged by (`gate.gather.history`), over version strings an attacker chose:
PEP 440 order when the index gives no upload times, epochs, local, post and dev releases, yanked rows, rows
gate cannot parse, and an earlier file whose provenance cannot be fetched. The provenance lookup here is a
table (what the index's provenance would establish); tests/continuity/test_proxy.py fetches real provenance."""

from __future__ import annotations

import datetime as dt

import pytest

from gate.facts import Continuity, FileFacts, LineRelease, Publisher
from gate.gather.history import RELEASE_FILES, Attested, PageHistory
from gate.sources.failure import UpstreamError
from gate.sources.filenames import python_file_facts
from gate.sources.pypi import SimpleFile

NOW = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
TRUSTED = Publisher(kind="GitHub", repository="o/p", workflow="release.yml")


def _row(version: str, *, attested: bool = False, day: int | None = None, yanked: bool = False) -> SimpleFile:
    filename = f"p-{version}-py3-none-any.whl"
    uploaded = None if day is None else dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=day)
    provenance = f"https://p.example/{filename}" if attested else None
    return SimpleFile(filename=filename, url=f"https://files.example/{filename}", hashes={"sha256": "0" * 64},
                      upload_time=uploaded, yanked=yanked, provenance=provenance)


def _history(*rows: SimpleFile) -> tuple[PageHistory, dict[str, FileFacts]]:
    facts = {}
    for row in rows:
        found = python_file_facts(row.filename, "0" * 64, uploaded=row.upload_time, yanked=row.yanked is not False)
        if found is not None:
            facts[row.filename] = found
    return PageHistory([(row, facts[row.filename]) for row in rows if row.filename in facts]), facts


def _lookup(row: SimpleFile, file: FileFacts, now: dt.datetime) -> Attested:
    return Attested((TRUSTED,) if row.provenance else (), None)


def _continuity(rows: list[SimpleFile], candidate: str) -> Continuity:
    history, facts = _history(*rows)
    return history.continuity(facts[f"p-{candidate}-py3-none-any.whl"], _lookup, NOW)[0]


def _bar(version: str) -> LineRelease:
    return LineRelease(version=version, uploaded=None, publishers=(TRUSTED,))


def test_without_upload_times_earlier_means_a_lower_version() -> None:
    rows = [_row("1.0", attested=True), _row("1.1"), _row("1.2"), _row("0.9", attested=True)]
    found = _continuity(rows, "1.2")
    assert found.known and found.major == _bar("1.0") and found.project == _bar("1.0")
    assert _continuity(rows, "0.9").project is None  # nothing lower was attested


@pytest.mark.parametrize(("candidate", "bar"), [
    ("1.0.post1", "1.0"),  # a post release is a final of the same line
    ("1.0+local", "1.0"),  # a local version sorts after 1.0: 1.0 is earlier, and another version
    ("1.0.0.0.1", "1.0"),
])
def test_odd_versions_are_held_to_their_line(candidate: str, bar: str) -> None:
    found = _continuity([_row("1.0", attested=True), _row(candidate)], candidate)
    assert found.major == _bar(bar) and found.minor == _bar(bar)


def test_a_new_epoch_or_major_line_is_held_to_the_projects_bar() -> None:
    rows = [_row("1.0", attested=True), _row("1!0.1"), _row("99.0")]
    assert _continuity(rows, "1!0.1").major == _bar("1.0")
    assert _continuity(rows, "99.0").major == _bar("1.0")


def test_prereleases_set_no_bar_for_finals_but_do_for_prereleases() -> None:
    rows = [_row("2.0.dev1", attested=True), _row("2.0rc1", attested=True), _row("2.0"), _row("2.1a1")]
    assert _continuity(rows, "2.0").project is None
    assert _continuity(rows, "2.1a1").major == _bar("2.0rc1")


def test_yanked_and_unparseable_rows_set_no_bar() -> None:
    rows = [_row("1.0", attested=True, yanked=True), _row("1.1")]
    rows.append(SimpleFile(filename="p-9.9.9-junk.whl", url="https://f.example/x", hashes={"sha256": "0" * 64},
                           provenance="https://p.example/x"))
    found = _continuity(rows, "1.1")
    assert found.known and found.project is None


def test_with_upload_times_earlier_means_uploaded_before() -> None:
    """A backport uploaded after 2.0 comes after it within the project, not within its major line."""
    rows = [_row("1.0", day=0), _row("2.0", attested=True, day=10), _row("1.1", day=20)]
    found = _continuity(rows, "1.1")
    assert found.project is not None and found.project.version == "2.0"
    assert found.major is None


def test_an_earlier_file_whose_provenance_cannot_be_fetched_makes_the_history_unknown() -> None:
    history, facts = _history(_row("1.0", attested=True), _row("1.1"))

    def failing(row: SimpleFile, file: FileFacts, now: dt.datetime) -> Attested:
        raise UpstreamError("503 from the index")

    found, recheck = history.continuity(facts["p-1.1-py3-none-any.whl"], failing, NOW)
    assert not found.known and found.reason is not None and "could not be fetched: 503 from the index" in found.reason
    assert recheck is not None and recheck > NOW


def test_a_release_of_hundreds_of_attested_files_is_judged_with_few_lookups() -> None:
    """300 attested wheels of one release (platform wheels), then a file added to it: the history stays known
    and looks at most RELEASE_FILES of them, and skipping the release's own files is constant work per file."""
    rows = [_row("1.0", attested=True, day=0)]
    base = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
    for i in range(300):
        filename = f"p-2.0-cp312-cp312-manylinux_2_17_x86_64.manylinux{i}.whl"
        rows.append(SimpleFile(filename=filename.replace(f".manylinux{i}", f"_{i}"), url=f"https://f.example/{i}",
                               hashes={"sha256": "0" * 64}, upload_time=base + dt.timedelta(minutes=i),
                               provenance=f"https://p.example/{i}"))
    rows.append(_row("2.0", day=60))  # added later, without provenance
    history, facts = _history(*rows)
    asked: list[str] = []

    def lookup(row: SimpleFile, file: FileFacts, now: dt.datetime) -> Attested:
        asked.append(row.filename)
        return _lookup(row, file, now)

    found = history.continuity(facts["p-2.0-py3-none-any.whl"], lookup, NOW)[0]
    assert found.known and found.release is not None and found.release.publishers == (TRUSTED,)
    assert found.major is not None and found.major.version == "1.0"
    assert len(set(asked)) <= RELEASE_FILES + 1
