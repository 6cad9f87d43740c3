"""The proxy's fast paths give exactly what the plain implementations give.

`python_filename` is memoized by filename piece and must agree with packaging's `parse_wheel_filename` and
`parse_sdist_filename` for every filename, whatever the memo holds; `file_facts` builds its `FileFacts` in
one go and must equal `python_file_facts` + `replace`; `iso_z` has a shortcut for UTC times.
"""

from __future__ import annotations

import codecs
import datetime as dt
import itertools
import json
import random
from collections.abc import Iterator

import pytest
from msgspec.structs import replace
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from gate.facts import Ecosystem, FileFacts, FileKind, Unidentified, iso_z
from gate.gather.pypi import row_facts
from gate.sources import filenames as local
from gate.sources.failure import Failure, UpstreamError
from gate.sources.filenames import python_file_facts
from gate.sources.pypi import ProjectPage, SimpleFile, parse_json


def file_facts(page: ProjectPage, row: SimpleFile, index: str) -> FileFacts | None:
    """`row_facts`, None for a row it cannot judge."""
    found = row_facts(page, row, index)
    return None if isinstance(found, Unidentified) else found

NAMES = ["demo", "Demo", "demo_pkg", "demo.pkg", "Demo_.Pkg", "demo-pkg", "demo__pkg", "", "_demo", "1demo",
         "d\u00e9mo", "demo pkg", "demo+x", "a", "DEMO"]
VERSIONS = ["1.0", "1.0.0", "01.02.000", "1.0rc1", "1.0.RC1", "1.0.dev3", "1.0.post1", "1!2.0", "1.0+local.1",
            "v1.0", "2.0b2.post3.dev4", "1.0_1", "", "1..0", "1.0-1", " 1.0", "1.0.0.0.0", "\u0661.0", "1.0a",
            "not a version", "1.0.0-rc1"]
BUILDS = [None, "1", "12abc", "abc", "", "1_x", "0"]
TAGS = ["py3-none-any", "py2.py3-none-any", "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64",
        "3py-none-any", "py3--any", "py3-none-", "py3.-none-any", "py3-none-any-extra", "py3-none", "py3"]
SDIST_SUFFIXES = [".tar.gz", ".zip"]
OTHER_SUFFIXES = [".tar.bz2", ".WHL", ".egg", "", ".tar", ".whl.zip", ".gz"]


def reference(filename: str, sha256: str, size: int | None = None) -> FileFacts | None:
    """`python_file_facts` as it was before the memo: packaging for every filename."""
    try:
        if filename.endswith(".whl"):
            name, version, _, _ = parse_wheel_filename(filename)
            kind = FileKind.WHEEL
        elif filename.endswith((".tar.gz", ".zip")):
            name, version = parse_sdist_filename(filename)
            kind = FileKind.SDIST
        else:
            return None
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    return FileFacts(
        ecosystem=Ecosystem.PYPI, name=canonicalize_name(name), version=str(version), filename=filename,
        kind=kind, sha256=sha256, size=size, prerelease=version.is_prerelease,
    )


def filenames() -> Iterator[str]:
    for name, version, build, tags in itertools.product(NAMES, VERSIONS, BUILDS, TAGS):
        yield "-".join(p for p in (name, version, build, tags) if p is not None) + ".whl"
    for name, version, suffix in itertools.product(NAMES, VERSIONS, SDIST_SUFFIXES + OTHER_SUFFIXES):
        yield f"{name}-{version}{suffix}"
        yield f"{name}{version}{suffix}"  # no dash at all
    suffixes = SDIST_SUFFIXES + OTHER_SUFFIXES
    for name, version, tags, suffix in itertools.product(NAMES[:5], VERSIONS[:6], TAGS, suffixes):
        yield f"{name}-{version}-{tags}{suffix}"  # a wheel's shape with another suffix
    yield from [".whl", "-.whl", "----.whl", "-----.whl", "a-1-b-c-d.whl", "a-1-2-b-c-d.whl", "-1.0.tar.gz", ".zip",
                "demo-1.0.tar.gz.whl", "demo-1.0-py3-none-any.whl.tar.gz"]


def clear_memo() -> None:
    for memo in (local._WHEEL_NAMES, local._WHEEL_BUILDS, local._WHEEL_TAGS, local._SDIST_NAMES, local._VERSIONS):
        memo.clear()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_python_file_facts_is_packaging_whatever_the_memo_holds(seed: int) -> None:
    names = list(filenames())
    assert len(names) > 20_000
    expected = {f: reference(f, "ab" * 32, 7) for f in names}
    assert sum(v is not None for v in expected.values()) > 2500  # many parse, many do not
    random.Random(seed).shuffle(names)
    clear_memo()
    for _ in range(2):  # a cold memo, then a warm one
        for filename in names:
            assert python_file_facts(filename, "ab" * 32, 7) == expected[filename], filename
        names.reverse()


def test_memo_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    for memo in (local._WHEEL_NAMES, local._WHEEL_BUILDS, local._WHEEL_TAGS, local._SDIST_NAMES, local._VERSIONS):
        monkeypatch.setattr(memo, "limit", 5)
    clear_memo()
    for i in range(50):
        filename = f"demo{i}-1.{i}-{i}x-py3-none-any.whl"
        assert python_file_facts(filename, "ab") == reference(filename, "ab")
    assert all(len(m) <= 5 for m in (local._WHEEL_NAMES, local._WHEEL_BUILDS, local._VERSIONS))
    clear_memo()


def test_file_facts_equals_python_file_facts_with_the_index_fields() -> None:
    page = ProjectPage(name="demo-pkg", files=())
    moment = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    rows = [
        SimpleFile("demo_pkg-1.0-py3-none-any.whl", "u", {"sha256": "AB" * 32}, size=3, upload_time=moment),
        SimpleFile("Demo.Pkg-2.0rc1.tar.gz", "u", {"sha256": "cd" * 32}, yanked="broken"),
        SimpleFile("demo_pkg-3.0.zip", "u", {"sha256": "ef" * 32}, yanked=True, size=None, upload_time=moment),
        SimpleFile("other-1.0.tar.gz", "u", {"sha256": "ab" * 32}),  # another project
        SimpleFile("demo_pkg-1.0-py3-none-any.whl", "u", {"md5": "00"}),  # no sha256
        SimpleFile("demo_pkg-1.0.exe", "u", {"sha256": "ab" * 32}),  # neither a wheel nor an sdist
    ]
    for row in rows:
        base = reference(row.filename, row.sha256 or "", row.size)
        expected = None
        if base is not None and row.sha256 is not None and base.name == page.name:
            expected = replace(base, index="https://x/", uploaded=row.upload_time,
                               uploadedFrom="upload-time" if row.upload_time else None, yanked=row.yanked is not False)
        assert file_facts(page, row, "https://x/") == expected, row.filename


@pytest.mark.parametrize(
    "moment",
    [
        dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        dt.datetime(2025, 1, 2, 3, 4, 5, 120, tzinfo=dt.UTC),
        dt.datetime.fromisoformat("2025-01-02T03:04:05.000001+00:00"),
        dt.datetime.fromisoformat("2025-01-02T03:04:05+02:00"),
        dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=-5, minutes=-30))),
        dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(0))),
    ],
)
def test_iso_z(moment: dt.datetime) -> None:
    assert iso_z(moment) == moment.astimezone(dt.UTC).replace(tzinfo=None).isoformat() + "Z"


def test_parsed_rows_equal_constructed_ones() -> None:
    row = {"filename": "demo-1.0.tar.gz", "url": "../f/demo-1.0.tar.gz", "hashes": {"sha256": "AB"}, "size": 3,
           "requires-python": ">=3.9", "yanked": "bad", "upload-time": "2025-01-02T03:04:05Z",
           "data-dist-info-metadata": {"sha256": "cd"}, "provenance": "/p"}
    page = parse_json(json.dumps({"meta": {"api-version": "1.1"}, "name": "Demo", "files": [row]}).encode(),
                      "https://x/simple/demo/", "demo")
    expected = SimpleFile("demo-1.0.tar.gz", "https://x/simple/f/demo-1.0.tar.gz", {"sha256": "AB"}, ">=3.9", "bad",
                          dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC), 3, {"sha256": "cd"}, "https://x/p")
    assert page.files == (expected,) and repr(page.files[0]) == repr(expected)
    facts = file_facts(page, page.files[0], "https://x/simple/")
    assert facts is not None and hash(facts) == hash(replace(facts)) and facts == replace(facts)


def _page(files: object, **top: object) -> bytes:
    return json.dumps({"meta": {"api-version": "1.1"}, "name": "demo", "files": files, **top}).encode()


ROW = {"filename": "demo-1.0.tar.gz", "url": "https://x/demo-1.0.tar.gz", "hashes": {"sha256": "ab"}}


@pytest.mark.parametrize(
    ("body", "wanted"),
    [
        (b"{", "not valid JSON"),
        (b"[]", "not a PEP 691 project page"),
        (_page("nope"), "$.files"),
        (_page([{"url": "u"}]), "filename"),
        (_page([{**ROW, "size": "3"}]), "$.files[0].size"),
        (_page([{**ROW, "hashes": ["ab"]}]), "$.files[0].hashes"),
        (_page([ROW, {**ROW, "yanked": 1}]), "$.files[1].yanked"),
        (_page([{**ROW, "upload-time": 5}]), "upload-time"),
        (_page([{**ROW, "upload-time": "yesterday"}]), "invalid upload-time"),
        (_page([ROW], meta={"api-version": "2.0"}), "gate understands 1.x"),
        (_page([ROW], versions="1.0"), "$.versions"),
        (b'{"files":[{"filename":"a\xff","url":"u"}]}', "not valid JSON"),  # invalid UTF-8
        (b'{"files":[], "x":' + b"[" * 5000 + b"]" * 5000 + b"}", "not valid JSON"),  # nested too deep
        (_page([{**ROW, "upload-time": "0001-01-01T00:00:00+01:00"}]), "invalid upload-time"),  # before year 1
        (_page([{**ROW, "upload-time": "9999-12-31T23:59:59-01:00"}]), "invalid upload-time"),  # after 9999
    ],
)
def test_malformed_pages_are_upstream_errors_naming_the_field(body: bytes, wanted: str) -> None:
    with pytest.raises(UpstreamError) as raised:
        parse_json(body, "https://x/simple/demo/", "demo")
    assert wanted in str(raised.value) and raised.value.failure is Failure.BAD_ANSWER


def test_row_defaults_metadata_precedence_and_utc_times() -> None:
    rows = [
        ROW,
        {**ROW, "core-metadata": False, "data-dist-info-metadata": {"sha256": "cd"}},  # PEP 714: core-metadata wins
        {**ROW, "data-dist-info-metadata": True, "yanked": "", "requires-python": ""},
        {**ROW, "core-metadata": None, "yanked": None, "upload-time": "2025-01-02T03:04:05"},  # naive: UTC
        {**ROW, "upload-time": "2025-01-02T05:04:05+02:00", "unknown-key": [1]},
    ]
    files = parse_json(_page(rows), "https://x/simple/demo/", "demo").files
    moment = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert [(f.core_metadata, f.yanked, f.requires_python, f.upload_time) for f in files] == [
        (False, False, None, None),
        (False, False, None, None),
        (True, True, None, None),  # "yanked": "" is yanked (as pip reads it), not a way to hide a yank
        (False, False, None, moment),
        (False, False, None, moment),
    ]
    assert all(f.upload_time is None or f.upload_time.tzinfo is dt.UTC for f in files)


def test_lenient_where_nothing_is_decided() -> None:
    """Keys gate only passes on, or that a newer key overrides, do not make a page unusable."""
    row = {**ROW, "core-metadata": {"sha256": "cd"}, "data-dist-info-metadata": "junk"}
    body = json.dumps({"meta": None, "files": [row], "project-status": "active"}).encode()
    page = parse_json(codecs.BOM_UTF8 + body, "https://x/simple/demo/", "demo")
    assert (page.api_version, page.project_status, page.last_serial) == ("1.0", None, None)
    assert page.files[0].core_metadata == {"sha256": "cd"}
    legacy = parse_json(_page([{**ROW, "data-dist-info-metadata": {"sha256": 5}}], meta={"_last-serial": 1.5}),
                        "https://x/simple/demo/", "demo")
    assert legacy.files[0].core_metadata == {"sha256": "5"} and legacy.last_serial is None
    serial = parse_json(_page([ROW], meta={"api-version": "1.1", "_last-serial": 7}), "https://x/", "demo")
    assert serial.last_serial == 7
