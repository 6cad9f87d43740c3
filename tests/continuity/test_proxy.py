"""`spec.continuity` in the proxy: a release with weaker provenance than its line had is hidden on the page
and refused on download, with what the earlier release had; no false positive across major lines, for
prereleases, for yanked releases or after `ignoreAfter`; a publisher change; fail closed and bounded."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from gate.gather.history import MAX_HISTORY_FILES
from tests.conftest import ATTESTATIONS
from tests.continuity.conftest import (
    GOOGLE_ACCOUNT,
    NOW,
    OLD_SDIST,
    RECENT,
    SAMPLE_SDIST,
    SAMPLE_WHEEL,
    AppFactory,
    google_attested_3_0_0,
    listed,
    policy,
    provenance_of,
    wheel,
)
from tests.support.pypi_upstream import RunningUpstream

DOWNGRADE = "4.0.1 has no provenance; 4.0.0 (2024-11-06) was published by GitHub pypa/sampleproject release.yml"


def test_a_downgrade_is_hidden_on_the_page_and_refused_on_download(gate: AppFactory, upstream: RunningUpstream) -> None:
    upstream.index.add_wheel("sampleproject", "4.0.1", upload_time=RECENT)  # an upload token's release
    client = gate(policy())
    assert listed(client) == [OLD_SDIST, SAMPLE_WHEEL, SAMPLE_SDIST]
    response = client.get(f"/files/sampleproject/{wheel('sampleproject', '4.0.1')}")
    assert response.status_code == 403
    assert DOWNGRADE in response.text and "continuity" in response.text
    assert "or add an exception that waives continuity" in response.text
    assert client.get(f"/files/sampleproject/{SAMPLE_WHEEL}").status_code == 200


def test_a_new_file_added_to_an_attested_release_is_a_downgrade(gate: AppFactory, upstream: RunningUpstream) -> None:
    """PyPI lets a token add files to an existing release: 4.0.0's own attested files, uploaded before it,
    set the bar for a wheel added to 4.0.0 later."""
    added = upstream.index.add_wheel("sampleproject", "4.0.0.0", upload_time=RECENT)  # version 4.0.0 again
    client = gate(policy())
    assert added.filename not in listed(client)
    response = client.get(f"/files/sampleproject/{added.filename}")
    earlier = "4.0.0's files uploaded before it (2024-11-06) were published by GitHub pypa/sampleproject release.yml"
    assert response.status_code == 403 and f"4.0.0.0 has no provenance; {earlier}" in response.text


def test_no_false_positive_across_major_lines(gate: AppFactory, upstream: RunningUpstream) -> None:
    """pnpm#10202: a 3.x backport published after 4.0.0 had provenance is held to 3.x, which had none."""
    upstream.index.add_wheel("sampleproject", "3.0.1", upload_time=RECENT)
    client = gate(policy())
    assert wheel("sampleproject", "3.0.1") in listed(client)
    # within the whole project, the same backport comes after 4.0.0: it is a downgrade
    project = gate(policy("{noDowngrade: true, within: project}"))
    assert wheel("sampleproject", "3.0.1") not in listed(project)


def test_a_new_line_is_held_to_the_projects_bar(gate: AppFactory, upstream: RunningUpstream) -> None:
    """A new major line, or a new epoch (which sorts above every version), has no history of its own: it must
    not start weaker than the project was (an attacker's `99.0` or `1!0.1` is what pip would pick)."""
    for version in ("5.0.0", "1!0.1", "4.1.0"):
        upstream.index.add_wheel("sampleproject", version, upload_time=RECENT)
    shown = listed(gate(policy("{noDowngrade: true, within: minor}")))
    assert shown == [OLD_SDIST, SAMPLE_WHEEL, SAMPLE_SDIST]


def test_prereleases_never_set_the_bar_for_finals(gate: AppFactory, upstream: RunningUpstream, tmp_path: Path) -> None:
    """An attested prerelease (pypi-attestation-models 0.0.4a2, real provenance) does not bind the final
    0.0.4; a later prerelease without provenance is held to it."""

    attestation = ATTESTATIONS / "pep740" / "pypi_attestation_models-0.0.4a2.tar.gz.attestation"
    publisher = {"kind": "GitHub", "repository": "trailofbits/pypi-attestation-models", "workflow": "release.yml"}
    upstream.index.add_file(ATTESTATIONS / "dists" / "pypi_attestation_models-0.0.4a2.tar.gz",
                            upload_time=dt.datetime(2024, 6, 10, 19, 48, tzinfo=dt.UTC),
                            provenance=provenance_of(attestation, publisher, tmp_path))
    upstream.index.add_wheel("pypi-attestation-models", "0.0.4", upload_time=RECENT - dt.timedelta(days=1))
    upstream.index.add_wheel("pypi-attestation-models", "0.0.5a1", upload_time=RECENT)
    shown = listed(gate(policy("{noDowngrade: true, within: minor}")), "pypi-attestation-models")
    assert shown == ["pypi_attestation_models-0.0.4a2.tar.gz", wheel("pypi-attestation-models", "0.0.4")]


def test_an_earlier_release_stops_counting_after_ignore_after(gate: AppFactory, upstream: RunningUpstream) -> None:
    """4.0.0 was uploaded about two years before 4.0.1: with `ignoreAfter: 365d` it no longer sets the bar."""
    upstream.index.add_wheel("sampleproject", "4.0.1", upload_time=RECENT)
    assert wheel("sampleproject", "4.0.1") in listed(gate(policy("{noDowngrade: true, ignoreAfter: 365d}")))
    assert wheel("sampleproject", "4.0.1") not in listed(gate(policy("{noDowngrade: true, ignoreAfter: 1000d}")))


def test_yanked_releases_do_not_count(gate: AppFactory, upstream: RunningUpstream) -> None:
    upstream.index.add_wheel("sampleproject", "4.0.1", upload_time=RECENT)
    upstream.index.set_yanked("sampleproject", "4.0.0", "withdrawn")
    assert wheel("sampleproject", "4.0.1") in listed(gate(policy()))


def test_a_publisher_change_is_a_downgrade_unless_an_exception_names_it(
    gate: AppFactory, upstream: RunningUpstream, tmp_path: Path
) -> None:
    """3.0.0's sdist with its real attestation from a Google service account; 4.0.0 is published by GitHub
    pypa/sampleproject: within the project that is a change of publisher."""
    google_attested_3_0_0(upstream.index, tmp_path)
    client = gate(policy("{noDowngrade: true, within: project}"))
    assert listed(client) == [OLD_SDIST]
    response = client.get(f"/files/sampleproject/{SAMPLE_WHEEL}")
    assert response.status_code == 403
    assert (f"4.0.0 was published by GitHub pypa/sampleproject release.yml; 3.0.0 (2022-12-01) was published by "
            f"Google {GOOGLE_ACCOUNT}") in response.text
    waived = policy("{noDowngrade: true, within: project}", """  exceptions:
    - {packages: ["sampleproject==4.0.0"], waive: [continuity], reason: moved to trusted publishing,
       expires: 2027-06-30}
""")
    assert listed(gate(waived)) == [OLD_SDIST, SAMPLE_WHEEL, SAMPLE_SDIST]


def test_an_earlier_release_whose_provenance_cannot_be_fetched_fails_closed(
    gate: AppFactory, upstream: RunningUpstream
) -> None:
    upstream.index.add_wheel("sampleproject", "4.0.2", upload_time=RECENT)
    upstream.fail_provenance(SAMPLE_WHEEL, 503)
    upstream.fail_provenance(SAMPLE_SDIST, 503)
    clock = {"now": NOW}
    client = gate(policy(), clock=lambda: clock["now"])
    response = client.get(f"/files/sampleproject/{wheel('sampleproject', '4.0.2')}")
    assert response.status_code == 403
    assert f"the provenance of {SAMPLE_SDIST}, an earlier release, could not be fetched" in response.text
    upstream.clear_faults()
    clock["now"] = NOW + dt.timedelta(minutes=2)  # asked for again after FETCH_RETRY: now it is a downgrade
    again = client.get(f"/files/sampleproject/{wheel('sampleproject', '4.0.2')}")
    assert again.status_code == 403 and "4.0.2 has no provenance; 4.0.0 (2024-11-06)" in again.text


def test_provenance_the_page_lists_but_the_index_does_not_serve_fails_closed(
    gate: AppFactory, upstream: RunningUpstream
) -> None:
    """4.0.0's provenance goes missing (404): that must not make 4.0.0 a release without provenance."""
    upstream.index.add_wheel("sampleproject", "4.0.1", upload_time=RECENT)
    upstream.fail_provenance(SAMPLE_WHEEL, 404)
    upstream.fail_provenance(SAMPLE_SDIST, 404)
    response = gate(policy()).get(f"/files/sampleproject/{wheel('sampleproject', '4.0.1')}")
    assert response.status_code == 403
    assert f"the index lists provenance for {SAMPLE_SDIST} but serves none" in response.text


def test_history_is_bounded_per_file(gate: AppFactory, upstream: RunningUpstream, tmp_path: Path) -> None:
    """Seventy newer releases whose provenance never verifies: one file's history fetches at most
    MAX_HISTORY_FILES of them, then says so (denied), instead of walking the whole page."""
    junk = tmp_path / "junk.provenance"
    junk.write_text("{}")
    for patch in range(1, 71):
        upstream.index.add_wheel("sampleproject", f"4.0.{patch}", upload_time=RECENT + dt.timedelta(minutes=patch),
                                 provenance=junk)
    upstream.index.add_wheel("sampleproject", "4.0.71", upload_time=RECENT + dt.timedelta(hours=2))
    client = gate(policy())
    upstream.clear_log()
    response = client.get(f"/files/sampleproject/{wheel('sampleproject', '4.0.71')}")
    assert response.status_code == 403
    assert f"needs the provenance of more than {MAX_HISTORY_FILES} earlier files" in response.text
    fetched = [p for p in upstream.request_log if "/integrity/" in p]
    assert len(fetched) <= MAX_HISTORY_FILES + 1
