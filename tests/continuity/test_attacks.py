"""`spec.continuity` against an attacker with a stolen upload token (new files and releases, any version string,
no trusted-publishing workflow): each way found to get a release without provenance allowed, as a test on the
real fixtures (sampleproject 4.0.0's real provenance) through the proxy, and on the history itself."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from gate.cli import main
from gate.decision import Verdict
from gate.evaluate import Evaluator
from gate.gather.history import Attested
from gate.policy.compile import load_policy_text
from gate.sources.local import LocalOptions, local_facts
from gate.sources.pip_report import pip_environment
from gate.sources.pypi import SimpleFile
from tests.continuity.conftest import NOW as AT
from tests.continuity.conftest import OLD_SDIST, RECENT, SAMPLE_SDIST, SAMPLE_WHEEL, AppFactory, listed, policy, wheel
from tests.continuity.test_history import NOW, TRUSTED, _continuity, _history, _lookup, _row
from tests.support.conda_channel import FIXTURE_CHANNEL
from tests.support.conda_policies import SIGNED, channel_copy
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


# --------------------------------------------------------------------------------------------------
# Age: an index time earlier than the file's verified signed time, with the transparency log among the sources

SIGNED_AGE = """
apiVersion: gate/v1
kind: Policy
metadata: {name: age}
spec:
  match: {ecosystems: [pypi, conda]}
  minimumAge: {age: 7d, timeSources: [index, transparencyLog]}
"""
SIGNED_AT = dt.datetime(2024, 11, 6, 22, 37, 8, tzinfo=dt.UTC)  # sampleproject 4.0.0's wheel, Rekor


def test_a_backdated_upload_time_does_not_age_a_file_past_its_signed_time(
    gate: AppFactory, upstream: RunningUpstream
) -> None:
    """A mirror says the wheel was uploaded in January 2024; its provenance was signed 2024-11-06. Two days
    after signing, `[index, transparencyLog]` took the index's time (ten months old: allowed) without the
    optional backdating rule: a file is never older than its verified evidence."""
    file = upstream.index.get_file(SAMPLE_WHEEL)
    assert file is not None
    upstream.index.add(dataclasses.replace(file, upload_time=dt.datetime(2024, 1, 1, tzinfo=dt.UTC)))
    client = gate(SIGNED_AGE, clock=lambda: SIGNED_AT + dt.timedelta(days=2))
    response = client.get(f"/files/sampleproject/{SAMPLE_WHEEL}")
    assert response.status_code == 403
    assert ("signed 2024-11-06T22:37:08Z (signedFrom: transparency-log; the index's 2024-01-01T00:00:00Z is "
            "earlier, but a file is not uploaded before it is signed); allowed from 2024-11-13T22:37:08Z"
            ) in response.text
    later = gate(SIGNED_AGE, clock=lambda: SIGNED_AT + dt.timedelta(days=8))
    assert later.get(f"/files/sampleproject/{SAMPLE_WHEEL}").status_code == 200


def test_a_conda_builders_timestamp_does_not_age_a_package_past_its_sidecar(tmp_path: Path) -> None:
    """Repodata with only the builder-controlled `timestamp` (set to 2020 by whoever built the package) and the
    real signed package's verified `.sigs` sidecar: the package is as old as its signature, not as 2020."""
    package = channel_copy(FIXTURE_CHANNEL / "linux-64", SIGNED, tmp_path / "channel")
    repodata = json.loads((package.parent / "repodata.json").read_text())
    record = repodata["packages.conda"][SIGNED]
    record.pop("indexed_timestamp", None)
    record["timestamp"] = 1577836800000  # 2020-01-01
    (package.parent / "repodata.json").write_text(json.dumps(repodata))
    facts = local_facts(package, LocalOptions())
    assert facts.file.uploadedFrom == "timestamp" and facts.file.signedTime is not None
    signed = facts.file.signedTime
    assert signed > dt.datetime(2020, 1, 2, tzinfo=dt.UTC)
    (policy,) = load_policy_text(SIGNED_AGE)
    evaluator = Evaluator([policy])
    assert evaluator.judge(facts, signed + dt.timedelta(days=2)).decision.verdict is Verdict.DENY
    assert evaluator.judge(facts, signed + dt.timedelta(days=8)).decision.verdict is Verdict.ALLOW


@pytest.mark.slow
def test_gate_check_of_a_pip_report_refuses_the_second_release_of_a_line_a_token_started(
    tmp_path: Path, upstream: RunningUpstream, capsys: pytest.CaptureFixture[str]
) -> None:
    """pip picks the token's 5.0.1 (the newest); `gate check` of its report judges it with the index's history."""
    upstream.index.add_wheel("sampleproject", "5.0.0", upload_time=RECENT)
    upstream.index.add_wheel("sampleproject", "5.0.1", upload_time=RECENT + dt.timedelta(minutes=5))
    report = tmp_path / "report.json"
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps", "--quiet",
               "--report", str(report), "--index-url", upstream.url, "sampleproject"]
    result = subprocess.run(command, env=pip_environment(), capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 0, result.stderr
    assert [i["metadata"]["version"] for i in json.loads(report.read_text())["install"]] == ["5.0.1"]
    path = tmp_path / "policy.yaml"
    path.write_text(policy(), encoding="utf-8")
    code = main(["check", "-p", str(path), "--now", AT.isoformat(), "--pip-report", str(report),
                 "--index-url", upstream.url])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "5.0.1 has no provenance; 4.0.0 (2024-11-06) was published by GitHub pypa/sampleproject" in out
