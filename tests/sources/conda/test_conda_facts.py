"""Facts from conda filenames and repodata records: upload times in milliseconds or seconds, CEP 47 first."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from gate.facts import Ecosystem, FileKind
from gate.sources.conda import conda_file_facts, record_time, split_conda_filename, upload_time

MS = 1_756_728_837_293  # the real signed-package timestamp: 2025-09-01T12:13:57.293Z
WHEN = dt.datetime(2025, 9, 1, 12, 13, 57, 293000, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (MS, WHEN),
        (MS // 1000, WHEN.replace(microsecond=0)),  # old records in seconds
        (1_544_155_153_559, dt.datetime(2018, 12, 7, 3, 59, 13, 559000, tzinfo=dt.UTC)),  # pytorch excerpt
        (0, None),
        (-5, None),
        ("1756728837293", None),
        (True, None),
        (None, None),
    ],
)
def test_record_time_reads_milliseconds_and_seconds(value: Any, expected: dt.datetime | None) -> None:
    assert record_time(value) == expected


@pytest.mark.parametrize(
    ("record", "expected", "source"),
    [
        ({"timestamp": MS, "indexed_timestamp": MS + 86_400_000}, WHEN + dt.timedelta(days=1), "indexed_timestamp"),
        ({"timestamp": MS}, WHEN, "timestamp"),
        ({"timestamp": MS, "indexed_timestamp": None}, WHEN, "timestamp"),
        ({"indexed_timestamp": MS // 1000}, WHEN.replace(microsecond=0), "indexed_timestamp"),
        ({}, None, None),
    ],
)
def test_upload_time_prefers_cep47_indexed_timestamp(
    record: dict[str, Any], expected: dt.datetime | None, source: str | None
) -> None:
    assert upload_time(record) == (expected, source)


def test_facts_from_record_record_which_time_was_used() -> None:
    record = {
        "name": "Demo", "version": "2.0rc1", "build": "h1_0", "subdir": "linux-64", "size": 12,
        "timestamp": MS, "indexed_timestamp": MS + 1000,
    }
    facts = conda_file_facts("demo-2.0rc1-h1_0.tar.bz2", "ab" * 32, record=record, channel="https://x/ch/")
    assert (facts.ecosystem, facts.kind) == (Ecosystem.CONDA, FileKind.CONDA)
    assert (facts.name, facts.version) == ("demo", "2.0rc1")
    assert (facts.build, facts.subdir, facts.size, facts.index) == ("h1_0", "linux-64", 12, "https://x/ch")
    assert facts.uploadedFrom == "indexed_timestamp" and facts.uploaded == WHEN + dt.timedelta(seconds=1)
    assert facts.prerelease


@pytest.mark.parametrize("filename", ["demo.conda", "demo-1.0.conda", "demo-1.0-0.whl", "-1.0-0.conda"])
def test_split_rejects_non_conda_filenames(filename: str) -> None:
    with pytest.raises(ValueError, match="not a conda package filename"):
        split_conda_filename(filename)
