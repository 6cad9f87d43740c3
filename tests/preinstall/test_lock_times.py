"""A lock's `upload-time` is a claim: only the index's own upload time is `file.uploaded`. When the index
cannot confirm it (unreachable, not listed, no time given, a direct or local install), the age is unknown,
the policy's `whenUnknown` decides, and the report says why."""

from __future__ import annotations

import dataclasses
import json
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gate.cli import main
from gate.preinstall.gather import base_facts
from gate.sources.planned import PlannedFile
from tests.preinstall.conftest import AGE_POLICY, NOW
from tests.support.pypi_model import UpstreamIndex
from tests.support.pypi_upstream import serve

OLD_CLAIM = "2020-01-01T00:00:00Z"  # what a pull request editing the lock would write


def _lock(tmp_path: Path, filename: str, sha256: str, *, source: str = "") -> Path:
    path = tmp_path / "pylock.toml"
    path.write_text(textwrap.dedent(f"""\
        lock-version = "1.0"
        created-by = "gate-tests"

        [[packages]]
        name = "{filename.split("-", maxsplit=1)[0]}"
        version = "1.0"

        [[packages.wheels]]
        name = "{filename}"
        upload-time = {OLD_CLAIM}
        hashes = {{sha256 = "{sha256}"}}
        {source}
        """), encoding="utf-8")
    return path


def _policy(tmp_path: Path, when_unknown: str | None = None) -> Path:
    path = tmp_path / "age.yaml"
    text = AGE_POLICY if when_unknown is None else AGE_POLICY.replace(
        "minimumAge: 7d", f"minimumAge: {{age: 7d, whenUnknown: {when_unknown}}}"
    )
    path.write_text(text, encoding="utf-8")
    return path


def _report(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["check", *args, "--now", NOW, "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def test_the_index_time_wins_over_an_older_lock_claim(
    index: UpstreamIndex, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = index.get_file("peppercorn-0.6-py3-none-any.whl")  # uploaded two days before NOW
    assert wheel is not None
    lock = _lock(tmp_path, wheel.filename, wheel.sha256)
    with serve(index) as running:
        code, report = _report(capsys, str(lock), "-p", str(_policy(tmp_path)), "--index-url", running.url)
    (result,) = report["results"]
    assert code == 1 and [v["rule"] for v in result["violations"]] == ["minimumAge"]
    assert result["facts"]["uploaded"] == "2026-11-20T00:00:00Z" and result["facts"]["uploadedFrom"] == "upload-time"


@pytest.mark.parametrize("where", ["unreachable", "unlisted", "no-time", "direct"])
def test_an_unconfirmed_lock_time_is_unknown(
    where: str, index: UpstreamIndex, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = index.get_file("gate_demo-1.0-py3-none-any.whl")
    assert wheel is not None
    filename, source = wheel.filename, ""
    if where == "unlisted":
        filename = "gate_demo-1.0-py2-none-any.whl"
    if where == "no-time":
        index.add(dataclasses.replace(wheel, upload_time=None))
    if where == "direct":
        source = f'path = "{filename}"'
    lock = _lock(tmp_path, filename, wheel.sha256, source=source)
    with serve(index) as running:
        url = "http://127.0.0.1:9/simple/" if where == "unreachable" else running.url
        code, report = _report(capsys, str(lock), "-p", str(_policy(tmp_path)), "--index-url", url)
        allowed, allowed_report = _report(
            capsys, str(lock), "-p", str(_policy(tmp_path, "allow")), "--index-url", url
        )
    (result,) = report["results"]
    assert code == 1, result
    assert result["facts"]["uploaded"] is None
    assert [v["rule"] for v in result["violations"]] == ["minimumAge"]
    (note,) = [n for n in result["notes"] if n.startswith("upload time unknown")]
    assert f"the lock's upload-time {OLD_CLAIM} is only a claim" in note
    # `whenUnknown: allow` is the policy's own choice, and it is honoured
    assert allowed == 0, allowed_report


def test_text_report_gives_the_reason(index: UpstreamIndex, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wheel = index.get_file("gate_demo-1.0-py3-none-any.whl")
    assert wheel is not None
    lock = _lock(tmp_path, wheel.filename, wheel.sha256)
    code = main(["check", str(lock), "-p", str(_policy(tmp_path)), "--now", NOW, "--index-url",
                 "http://127.0.0.1:9/simple/"])
    out = capsys.readouterr().out
    assert code == 1 and "uploaded: unknown" in out
    assert "is only a claim" in out
    code = main(["check", str(lock), "-p", str(_policy(tmp_path)), "--now", NOW, "--index-url",
                 "http://127.0.0.1:9/simple/", "--format", "sarif"])
    (result,) = json.loads(capsys.readouterr().out)["runs"][0]["results"]
    assert code == 1 and "is only a claim" in result["message"]["text"]


def test_lock_time_is_never_read_as_uploaded() -> None:
    """Unit level: the facts a lock alone gives carry no upload time (nor size)."""
    planned = PlannedFile(
        name="x", version="1.0", filename="x-1.0-py3-none-any.whl", sha256="ab" * 32, source="pylock.toml",
        uploaded=datetime(2020, 1, 1, tzinfo=UTC), size=1,
    )
    facts = base_facts(planned, "https://pypi.org/simple/")
    assert facts.uploaded is None and facts.uploadedFrom is None
    assert facts.size is None  # the lock's size is a claim too


def test_the_lock_does_not_choose_the_index_that_vouches_for_it(
    index: UpstreamIndex, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A lock naming a server of its own choosing (here one that says the file is old) gets no facts from
    it: facts come from the index gate was told to trust (`--index-url`), unreachable here."""
    wheel = index.get_file("gate_demo-1.0-py3-none-any.whl")  # the named server says: uploaded 2025-01-02
    assert wheel is not None
    with serve(index) as chosen:
        lock = _lock(tmp_path, wheel.filename, wheel.sha256, source="")
        text = lock.read_text().replace('\nversion = "1.0"\n', f'\nversion = "1.0"\nindex = "{chosen.url}"\n', 1)
        lock.write_text(text)
        code, report = _report(capsys, str(lock), "-p", str(_policy(tmp_path)), "--index-url",
                               "http://127.0.0.1:9/simple/")
        assert not chosen.request_log
    (result,) = report["results"]
    assert code == 1 and result["facts"]["uploaded"] is None
    assert any(n.endswith("names index " + chosen.url + "; facts come from http://127.0.0.1:9/simple/ (--index-url)")
               for n in result["notes"])


def test_a_lock_time_no_utc_time_can_hold_is_not_a_crash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A TOML datetime past year 9999 once in UTC never reaches a comparison or a note as a datetime."""
    lock = _lock(tmp_path, "gate_demo-1.0-py3-none-any.whl", "0" * 64)
    lock.write_text(lock.read_text().replace(OLD_CLAIM, "9999-12-31T23:00:00-14:00"), encoding="utf-8")
    code, report = _report(capsys, str(lock), "-p", str(_policy(tmp_path)), "--index-url", "http://127.0.0.1:9/simple/")
    (result,) = report["results"]
    assert code == 1 and [v["rule"] for v in result["violations"]] == ["minimumAge"]
