"""Age from signed time (issue 15 part 2): behind an index without upload times, `minimumAge` with
`timeSources: [index, transparencyLog]` measures a file's age from the earliest verified signed time of its own
verified evidence (sampleproject 4.0.0's real provenance: Rekor, 2024-11-06); a file without such evidence is
still unknown (hidden). An upload time earlier than the signed time is backdating."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from gate.facts import Facts
from gate.gather.ports import Uncached
from gate.gather.pypi import PypiFacts, every_file
from gate.policytest.cases import load_case_file
from gate.policytest.runner import case_facts
from gate.sources.pypi import SimpleClient
from gate.verify.api import BundleVerifier
from tests.continuity.conftest import NOW, OLD_SDIST, SAMPLE_SDIST, SAMPLE_WHEEL, AppFactory, listed
from tests.support.pypi_model import UpstreamIndex
from tests.support.pypi_upstream import RunningUpstream

AGE = """
apiVersion: gate/v1
kind: Policy
metadata: {{name: age}}
spec:
  match: {{ecosystems: [pypi]}}
  minimumAge: {minimum}
"""
SIGNED = "{age: 7d, timeSources: [index, transparencyLog]}"


def _no_upload_times(index: UpstreamIndex) -> None:
    """As pypiserver, devpi and many mirrors serve pages: no `upload-time` at all."""
    for project in index.projects():
        for file in index.files(project):
            index.add(dataclasses.replace(file, upload_time=None))


def test_attested_files_are_allowed_by_their_signed_time_and_unattested_ones_hidden(
    gate: AppFactory, upstream: RunningUpstream
) -> None:
    _no_upload_times(upstream.index)
    upstream.index.add_wheel("demo", "1.0")
    assert listed(gate(AGE.format(minimum="7d"))) == []  # the index alone: every time unknown, every file hidden
    client = gate(AGE.format(minimum=SIGNED))
    assert listed(client) == [SAMPLE_WHEEL, SAMPLE_SDIST]  # 3.0.0 has no provenance: still unknown
    assert listed(client, "demo") == []
    response = client.get(f"/files/sampleproject/{OLD_SDIST}")
    assert response.status_code == 403
    assert ("upload time unknown: the index gives none, and no verified evidence has a signed time "
            "(timeSources: index, transparencyLog; whenUnknown: deny)") in response.text


def test_a_young_signed_time_says_where_it_came_from(gate: AppFactory, upstream: RunningUpstream) -> None:
    _no_upload_times(upstream.index)
    client = gate(AGE.format(minimum=SIGNED), clock=lambda: dt.datetime(2024, 11, 8, tzinfo=dt.UTC))
    response = client.get(f"/files/sampleproject/{SAMPLE_WHEEL}")
    assert response.status_code == 403
    assert ("signed 2024-11-06T22:37:08Z (signedFrom: transparency-log; the index gives no upload time); "
            "allowed from 2024-11-13T22:37:08Z (minimum age 7d)") in response.text


def test_the_facts_carry_the_signed_time(upstream: RunningUpstream) -> None:
    client = SimpleClient(upstream.url)
    service = PypiFacts(client.base_url, client.fetch_provenance, Uncached(BundleVerifier()), every_file)
    page = client.project("sampleproject").page
    assert page is not None
    row = page.file(SAMPLE_WHEEL)
    assert row is not None
    facts = service.row(page, row, NOW).facts
    assert isinstance(facts, Facts)
    file = facts.file
    assert file.signedTime == dt.datetime(2024, 11, 6, 22, 37, 8, tzinfo=dt.UTC)
    assert file.signedFrom == "transparency-log" and file.uploadedFrom == "upload-time"


def test_an_upload_time_earlier_than_the_signed_time_is_backdating(gate: AppFactory, upstream: RunningUpstream) -> None:
    """A mirror says sampleproject 4.0.0's wheel was uploaded in January 2024, ten months before its
    provenance was signed: it would pass any minimum age; the backdating rule denies it."""
    wheel = upstream.index.get_file(SAMPLE_WHEEL)
    assert wheel is not None
    upstream.index.add(dataclasses.replace(wheel, upload_time=dt.datetime(2024, 1, 1, tzinfo=dt.UTC)))
    client = gate(AGE.format(minimum="{age: 7d, backdating: 1h}"))
    assert listed(client) == [OLD_SDIST, SAMPLE_SDIST]
    response = client.get(f"/files/sampleproject/{SAMPLE_WHEEL}")
    assert response.status_code == 403 and "minimumAge.backdating" in response.text
    assert ("the index says it was uploaded 2024-01-01T00:00:00Z, but its evidence was signed 2024-11-06T22:37:08Z "
            "(transparency-log)") in response.text


def test_a_policy_test_case_derives_the_signed_time_as_gatherers_do(tmp_path: Path) -> None:
    """`gate test` gives a case's file the `signedTime` the proxy and `gate check` derive from its verified
    evidence: a custom rule that reads `file.signedTime` is tested against what it will see."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "signed.yaml").write_text(
        "apiVersion: gate/v1\nkind: Policy\nmetadata: {name: signed}\nspec:\n  rules:\n    - name: signed\n"
        "      expression: file.signedTime != null\n      message: no signed time\n", encoding="utf-8")
    cases = tmp_path / "tests" / "signed.gate-test.yaml"
    cases.write_text(
        "now: 2026-11-22T00:00:00Z\ncases:\n  - name: signed\n    file: {name: demo, version: '1.0'}\n"
        "    attestations:\n      - {verified: true, signedTime: 2026-01-02T00:00:00Z}\n"
        "      - {verified: false, signedTime: 2025-01-01T00:00:00Z}\n"
        "    expect: {verdict: allow}\n", encoding="utf-8")
    (case,) = load_case_file(cases).cases
    file = case_facts(case, BundleVerifier).file
    assert file.signedTime == dt.datetime(2026, 1, 2, tzinfo=dt.UTC)  # the verified evidence's, never the other's
    assert file.signedFrom == "timestamp-authority"
