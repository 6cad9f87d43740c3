from __future__ import annotations

import datetime as dt

import pytest

from gate.policy.duration import MAX_DURATION, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("36h", dt.timedelta(hours=36)),
        ("7d", dt.timedelta(days=7)),
        ("2w", dt.timedelta(weeks=2)),
        ("90m", dt.timedelta(minutes=90)),
        ("30s", dt.timedelta(seconds=30)),
        ("P7D", dt.timedelta(days=7)),
        ("PT36H", dt.timedelta(hours=36)),
        ("P1W", dt.timedelta(weeks=1)),
        ("P1DT12H", dt.timedelta(days=1, hours=12)),
        ("p2d", dt.timedelta(days=2)),
    ],
)
def test_parse(text: str, expected: dt.timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "7", "d", "7 days", "P", "PT", "1y", "-3d", "P1DT"])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_format_round_trips() -> None:
    for text in ("7d", "36h", "90m", "45s"):
        assert format_duration(parse_duration(text)) == text


@pytest.mark.parametrize("text", ["99999999999d", "P99999999999D", "36526d", "PT999999999999999999999S", "P5300W"])
def test_parse_rejects_durations_longer_than_the_limit(text: str) -> None:
    """Not an OverflowError (a traceback in check and lint), nor a CEL duration out of range at run time."""
    with pytest.raises(ValueError, match=r"longer than 36525d \(100 years\)"):
        parse_duration(text)
    assert parse_duration(format_duration(MAX_DURATION)) == MAX_DURATION


def test_a_count_of_many_digits_is_too_long_not_a_conversion_error() -> None:
    with pytest.raises(ValueError, match=r"^invalid duration '9{40}'\.\.\.: longer than 36525d"):
        parse_duration("9" * 10_000 + "d")


@pytest.mark.parametrize("text", ["\u09ead", "\u0667d", "\uff17d", "P\u09eaD", "PT\u0661\u0662H", "PT1\u017f"])
def test_only_ascii_digits(text: str) -> None:
    """Python's `\\d` takes any Unicode digit: Bengali four (U+09EA) reads as 8 to a reviewer and was 4 days."""
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)
