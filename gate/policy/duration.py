"""Durations as policies write them: `36h`, `7d`, `2w`, `90m`, `30s`, or ISO 8601 (`P7D`, `PT36H`, `P1W`)."""

from __future__ import annotations

import datetime as dt
import re

_SHORT = re.compile(r"^(\d+)([smhdw])$")
_ISO = re.compile(r"^P(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+)S)?)?$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_DURATION = dt.timedelta(days=36525)  # 100 years: longer is a typo, and overflows dates and CEL durations


def _seconds(count: str, unit: str) -> int:
    """`count` units in seconds; a count of more digits than any valid duration has is simply too long
    (Python refuses to convert over 4300 digits, and there is no need to try)."""
    return int(count) * _UNIT_SECONDS[unit] if len(count) <= 20 else 10**20


def parse_duration(text: str) -> dt.timedelta:
    """Parse a duration of at most `MAX_DURATION`; raise ValueError saying which forms are accepted."""
    value = text.strip()
    shown = repr(text) if len(text) <= 40 else repr(text[:40]) + "..."
    seconds: int | None = None
    if not value.isascii():  # `\d` takes any script's digits (Bengali 4, U+09EA, reads as 8) and upper() of
        pass  # U+017F is S: what a reviewer reads must be what counts
    elif short := _SHORT.match(value):
        seconds = _seconds(short.group(1), short.group(2))
    elif (iso := _ISO.match(value.upper())) and value.upper() not in ("P", "PT") and not value.upper().endswith("T"):
        seconds = sum(_seconds(count, unit.lower()) for unit, count in iso.groupdict().items() if count)
    if seconds is None:
        raise ValueError(
            f"invalid duration {shown}: expected a number with a unit s/m/h/d/w (36h, 7d, 2w) or ISO 8601 (P7D, PT36H)"
        )
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"invalid duration {shown}: longer than {format_duration(MAX_DURATION)} (100 years)")
    return dt.timedelta(seconds=seconds)


def format_duration(value: dt.timedelta) -> str:
    """The shortest exact short form (`7d`, `36h`)."""
    seconds = int(value.total_seconds())
    for unit in ("d", "h", "m"):
        if seconds and seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds // _UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"
