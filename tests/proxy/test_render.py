"""`render_json` writes exactly the bytes `json.dumps` (compact, UTF-8) writes for the page it describes."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from typing import Any

import pytest

from gate.proxy.pypi_render import Urls, render_json
from gate.sources.pypi import ProjectPage, SimpleFile


def _metadata(file: SimpleFile) -> bool | dict[str, str]:
    value = file.core_metadata
    return {"sha256": value["sha256"]} if isinstance(value, dict) and value.get("sha256") else False


def reference(page: ProjectPage, files: list[SimpleFile], urls: Urls, versions: list[str]) -> bytes:
    """`render_json` as it was: a dict per row, then one `json.dumps`."""
    rows = []
    for file in files:
        row: dict[str, Any] = {
            "filename": file.filename,
            "url": urls.file(file.filename),
            "hashes": file.hashes,
            "requires-python": file.requires_python,
            "yanked": file.yanked,
            "core-metadata": _metadata(file),
            "data-dist-info-metadata": _metadata(file),
            "provenance": urls.provenance(file.filename) if file.provenance else None,
        }
        if file.size is not None:
            row["size"] = file.size
        if file.upload_time is not None:
            row["upload-time"] = file.upload_time.astimezone(dt.UTC).replace(tzinfo=None).isoformat() + "Z"
        rows.append(row)
    meta: dict[str, Any] = {"api-version": page.api_version}
    if page.last_serial is not None:
        meta["_last-serial"] = page.last_serial
    out: dict[str, Any] = {"meta": meta, "name": page.name}
    if page.project_status is not None:
        out["project-status"] = page.project_status
    listed = dict.fromkeys(versions)
    out["versions"] = list(listed) if page.versions is None else [v for v in page.versions if v in listed]
    out["files"] = rows
    return json.dumps(out, separators=(",", ":"), ensure_ascii=False).encode()


UTC_TIME = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
FILES = [
    SimpleFile(filename, url, hashes, requires_python, yanked, upload_time, size, core_metadata, provenance)
    for filename, url, hashes, requires_python, yanked, upload_time, size, core_metadata, provenance, _ in zip(
        itertools.cycle(["demo-1.0-py3-none-any.whl", "d\u00e9mo \"x\"-1.0.tar.gz", "demo-1.0+a/b.zip",
                         "\U0001f600.whl"]),
        itertools.cycle(["https://u/f", "https://u/\u00e9"]),
        itertools.cycle([{"sha256": "ab" * 32}, {}, {"md5": "x", "sha256": "\u00e9\n"}, {"blake2b": "00"}]),
        itertools.cycle([None, ">=3.8", "<4,>=3.\u00e9\"", ""]),
        itertools.cycle([False, True, "broken \"badly\" \u2603", "x"]),
        itertools.cycle([None, UTC_TIME, UTC_TIME.replace(microsecond=7),
                         UTC_TIME.astimezone(dt.timezone(dt.timedelta(hours=-5, minutes=-30)))]),
        itertools.cycle([None, 0, 123456789012, 7, True]),
        itertools.cycle([False, True, {"sha256": "cd" * 32}, {"md5": "1"}, {"sha256": ""}, {"sha256": "\u00e9"}]),
        itertools.cycle([None, "https://u/p", None]),
        range(60),
        strict=False,
    )
]


@pytest.mark.parametrize(
    ("versions", "status", "serial"),
    [(None, None, None), (("1.0", "2.0", "\u00e9"), {"status": "quarantined", "reason": "\u2603", "n": 1.5}, 12),
     ((), {}, "s")],
)
def test_render_json_is_json_dumps(versions: tuple[str, ...] | None, status: dict[str, Any] | None,
                                   serial: int | str | None) -> None:
    page = ProjectPage(name="demo", files=tuple(FILES), api_version="1.4", versions=versions,
                       project_status=status, last_serial=serial)
    urls = Urls("http://127.0.0.1:8080/", "demo")
    for files in (FILES, FILES[:1], []):
        listed = ["2.0", "1.0", "3.0", "1.0"][: len(files)]
        body = render_json(page, files, urls, listed)
        assert body == reference(page, files, urls, listed)
        json.loads(body)

