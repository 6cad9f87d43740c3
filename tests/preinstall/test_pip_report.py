"""`gate check --pip-report`: the files pip would install, judged with facts from their index."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gate.cli import main
from gate.errors import UsageError
from gate.sources.pip_report import planned_from_report
from tests.conftest import FIXTURES
from tests.policy.lint.test_formats import validate_sarif
from tests.preinstall.conftest import EXAMPLE_POLICY, NOW, SAMPLE_SHA256, SAMPLE_WHEEL
from tests.support.pypi_upstream import RunningUpstream

REPORTS = FIXTURES / "index" / "pip-report"


@pytest.mark.parametrize("name", ["pip-26.3-install-report.json", "pip-23.2.1-install-report.json"])
def test_real_reports_parse(name: str) -> None:
    planned = planned_from_report(json.loads((REPORTS / name).read_text()), name)
    assert [(p.name, p.version, p.filename) for p in planned] == [
        ("sampleproject", "4.0.0", SAMPLE_WHEEL),
        ("rfc8785", "0.1.2", "rfc8785-0.1.2-py3-none-any.whl"),
        ("peppercorn", "0.6", "peppercorn-0.6-py3-none-any.whl"),
    ]
    assert planned[0].sha256 == SAMPLE_SHA256
    assert not planned[0].direct


@pytest.mark.parametrize(
    ("report", "message"),
    [
        ([], "not a pip installation report (no `install` list)"),
        ({"version": "2", "install": []}, "pip report version '2'; gate reads version 1"),
    ],
)
def test_invalid_reports(report: Any, message: str) -> None:
    with pytest.raises(UsageError, match="r.json: " + message.replace("(", r"\(").replace(")", r"\)")):
        planned_from_report(report, "r.json")


def test_direct_install_is_judged_without_index_facts() -> None:
    item = {"download_info": {"url": "file:///src/proj", "dir_info": {}}, "is_direct": True,
            "metadata": {"name": "proj", "version": "1.0"}}
    [planned] = planned_from_report({"version": "1", "install": [item]}, "r.json")
    assert planned.direct and planned.sha256 is None


def test_report_checked_against_local_index(upstream: RunningUpstream, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "-p", str(EXAMPLE_POLICY), "--now", NOW, "--index-url", upstream.url,
                 "--pip-report", str(REPORTS / "pip-26.3-install-report.json")])
    out = capsys.readouterr().out
    assert code == 1
    assert f"ALLOW {SAMPLE_WHEEL}" in out
    assert "verified: https://docs.pypi.org/attestations/publish/v1" in out
    assert "uploaded: 2024-11-06" in out
    assert "DENY  rfc8785-0.1.2-py3-none-any.whl" in out
    assert "example/minimumAge: upload time unknown: the index gives none (whenUnknown: deny)" in out
    table = out.split("\n\n")[-1].splitlines()
    assert table[0].split() == ["VERDICT", "PACKAGE", "VERSION", "UPLOADED", "EVIDENCE", "REASON"]
    assert table[1].split()[:5] == ["ALLOW", "sampleproject", "4.0.0", "2024-11-06", "1/1"]
    assert table[2].startswith("DENY") and "(index: no project 'rfc8785' on the upstream index)" in table[2]
    assert table[3].startswith("DENY") and "the index lists sha256" in table[3]  # our peppercorn is a rebuild
    assert "/integrity/sampleproject/4.0.0/" + SAMPLE_WHEEL + "/provenance" in " ".join(upstream.request_log)
    assert all("pypi.org" not in path for path in upstream.request_log)


def test_report_as_sarif(upstream: RunningUpstream, capsys: pytest.CaptureFixture[str]) -> None:
    report = str(REPORTS / "pip-26.3-install-report.json")
    code = main(["check", "-p", str(EXAMPLE_POLICY), "--now", NOW, "--index-url", upstream.url,
                 "--pip-report", report, "--format", "sarif"])
    assert code == 1
    document = json.loads(capsys.readouterr().out)
    validate_sarif(document)
    results = document["runs"][0]["results"]
    assert {r["ruleId"] for r in results} >= {"example/minimumAge", "example/attestations.required"}
    assert not any(r["message"]["text"].startswith(SAMPLE_WHEEL) for r in results)
    assert results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].endswith(
        "pip-26.3-install-report.json"
    )


def test_unreachable_index_is_an_unknown_fact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing listens on the port: the file is judged without index facts, and denied."""
    code = main(["check", "-p", str(EXAMPLE_POLICY), "--now", NOW, "--index-url", "http://127.0.0.1:9/simple/",
                 "--pip-report", str(REPORTS / "pip-26.3-install-report.json")])
    out = capsys.readouterr().out
    assert code == 1
    assert "index: upstream http://127.0.0.1:9/simple/sampleproject/ is unreachable" in out


@pytest.mark.parametrize(
    "item",
    [
        1,
        {"download_info": {"url": 5}, "metadata": "x"},
        {"download_info": {"url": "https://x/a-1.0-py3-none-any.whl", "archive_info": {"hashes": "sha256"}}},
    ],
)
def test_a_malformed_item_is_a_usage_error(
    item: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A value of the wrong type in a report was an internal error (exit 3); it is bad input (exit 2)."""
    report = tmp_path / "r.json"
    report.write_text(json.dumps({"version": "1", "install": [item]}), encoding="utf-8")
    code = main(["check", "-p", str(EXAMPLE_POLICY), "--pip-report", str(report), "--index-url", "http://127.0.0.1:9/"])
    assert code == 2
    assert "not a pip installation report (an `install` item is malformed" in capsys.readouterr().err
