"""`spec.continuity` against an attacker with a stolen upload token (new files and releases, any version string,
no trusted-publishing workflow): each way found to get a release without provenance allowed, as a test on the
real fixtures (sampleproject 4.0.0's real provenance) through the proxy, and on the history itself."""

from __future__ import annotations

import dataclasses
import datetime as dt

import msgspec
import pytest

from gate.gather.history import Attested
from gate.sources.pypi import SimpleFile
from tests.continuity.conftest import OLD_SDIST, RECENT, SAMPLE_SDIST, SAMPLE_WHEEL, AppFactory, listed, policy, wheel
from tests.continuity.test_history import NOW, TRUSTED, _continuity, _history, _lookup, _row
from tests.support.pypi_model import UpstreamIndex
from tests.support.pypi_upstream import RunningUpstream

# --------------------------------------------------------------------------------------------------
# A line the attacker starts with two releases: the second must not find "history without provenance"


@pytest.mark.parametrize(("within", "first", "second"), [
    ("major", "5.0.0", "5.0.1"), ("minor", "5.0.0", "5.0.1"), ("major", "1!0.1", "1!0.2"), ("minor", "4.1.0", "4.1.1"),
])
def test_a_line_an_attacker_starts_is_held_to_the_projects_bar_from_its_second_release(
    gate: AppFactory, upstream: RunningUpstream, within: str, first: str, second: str
) -> None:
    """`5.0.0` alone is held to the project's bar (a new line); `5.0.1` uploaded after it found a line with
    history and no provenance, so no bar at all: the token's second upload was allowed (pip's newest)."""
    upstream.index.add_wheel("sampleproject", first, upload_time=RECENT)
    upstream.index.add_wheel("sampleproject", second, upload_time=RECENT + dt.timedelta(minutes=5))
    client = gate(policy(f"{{noDowngrade: true, within: {within}}}"))
    assert listed(client) == [OLD_SDIST, SAMPLE_WHEEL, SAMPLE_SDIST]
    response = client.get(f"/files/sampleproject/{wheel('sampleproject', second)}")
    assert response.status_code == 403
    assert (f"{second} has no provenance; 4.0.0 (2024-11-06) was published by GitHub pypa/sampleproject "
            "release.yml") in response.text


def test_an_old_line_begun_before_the_project_had_provenance_still_takes_backports(
    gate: AppFactory, upstream: RunningUpstream
) -> None:
    """No false positive from the fix above: 3.x began in 2022, before 4.0.0 had provenance; a second 3.x
    backport (3.0.1, then 3.0.2) is held to 3.x's history, which had none."""
    upstream.index.add_wheel("sampleproject", "3.0.1", upload_time=RECENT)
    upstream.index.add_wheel("sampleproject", "3.0.2", upload_time=RECENT + dt.timedelta(minutes=5))
    shown = listed(gate(policy()))
    assert wheel("sampleproject", "3.0.1") in shown and wheel("sampleproject", "3.0.2") in shown


def test_a_line_started_without_provenance_after_the_project_had_some_keeps_its_bar() -> None:
    """The same on the history: by upload time, and by version when the index gives no upload times."""
    by_time = [_row("1.0", day=0), _row("4.0", attested=True, day=10), _row("5.0", day=20), _row("5.1", day=21),
               _row("1.1", day=22)]
    found = _continuity(by_time, "5.1")
    assert found.major is not None and found.major.version == "4.0" and found.minor == found.major
    assert _continuity(by_time, "1.1").major is None  # 1.x began before 4.0 had provenance: a backport
    by_version = [_row("1.0"), _row("4.0", attested=True), _row("5.0"), _row("5.1"), _row("1.1")]
    assert _continuity(by_version, "5.1").major is not None and _continuity(by_version, "1.1").major is None
    prereleases = [_row("4.0", attested=True, day=0), _row("5.0a1", day=1), _row("5.0a2", day=2)]
    assert _continuity(prereleases, "5.0a2").major is not None


# --------------------------------------------------------------------------------------------------
# A file added to an attested release, behind an index without upload times


def test_without_upload_times_a_file_is_held_to_its_releases_other_attested_files() -> None:
    """The order of a release's files is unknown without upload times: an sdist added to an attested release
    was compared with nothing of its release (and with no other release when it is the first attested one)."""
    rows = [_row("1.0"), _row("2.0", attested=True),
            SimpleFile(filename="p-2.0.tar.gz", url="https://f.example/s", hashes={"sha256": "0" * 64})]
    history, facts = _history(*rows)
    found = history.continuity(facts["p-2.0.tar.gz"], _lookup, NOW)[0]
    assert found.known and found.release is not None and found.release.publishers == (TRUSTED,)
    # an attested file is held to its release's other files, not to itself
    alone = history.continuity(facts["p-2.0-py3-none-any.whl"], _lookup, NOW)[0]
    assert alone.release is None


def test_without_upload_times_each_attested_file_is_held_to_the_others_not_itself() -> None:
    other = msgspec.structs.replace(TRUSTED, repository="else/where")
    rows = [_row("2.0", attested=True),
            SimpleFile(filename="p-2.0.tar.gz", url="https://f.example/s", hashes={"sha256": "0" * 64},
                       provenance="https://p.example/s")]
    history, facts = _history(*rows)

    def lookup(row: SimpleFile, file: object, now: dt.datetime) -> Attested:
        return Attested((other if row.filename.endswith(".tar.gz") else TRUSTED,), None)

    wheel_bar = history.continuity(facts["p-2.0-py3-none-any.whl"], lookup, NOW)[0].release
    sdist_bar = history.continuity(facts["p-2.0.tar.gz"], lookup, NOW)[0].release
    assert wheel_bar is not None and wheel_bar.publishers == (other,)
    assert sdist_bar is not None and sdist_bar.publishers == (TRUSTED,)


def _no_upload_times(index: UpstreamIndex) -> None:
    for project in index.projects():
        for file in index.files(project):
            index.add(dataclasses.replace(file, upload_time=None))


def test_a_wheel_added_to_the_first_attested_release_without_upload_times_is_refused(
    gate: AppFactory, upstream: RunningUpstream
) -> None:
    """Behind an index without upload times, a token's new wheel of 4.0.0 (sampleproject's first attested
    release: no earlier release sets a bar) is held to 4.0.0's attested wheel and sdist."""
    added = upstream.index.add_wheel("sampleproject", "4.0.0.0")  # version 4.0.0 again, a filename of its own
    _no_upload_times(upstream.index)
    client = gate(policy())
    assert listed(client) == [OLD_SDIST, SAMPLE_WHEEL, SAMPLE_SDIST]
    response = client.get(f"/files/sampleproject/{added.filename}")
    assert response.status_code == 403 and "4.0.0.0 has no provenance" in response.text
    assert client.get(f"/files/sampleproject/{SAMPLE_WHEEL}").status_code == 200
