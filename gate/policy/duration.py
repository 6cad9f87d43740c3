"""Durations as policies write them: `36h`, `7d`, `2w`, `90m`, `30s`, or ISO 8601 (`P7D`, `PT36H`, `P1W`)."""

from __future__ import annotations

import datetime as dt
import re

_SHORT = re.compile(r"^(\d+)([smhdw])$")
_ISO = re.compile(r"^P(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+)S)?)?$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


MAX_DURATION = dt.timedelta(days=36525)  # 100 years: longer is a typo, and overflows dates and CEL durations
_ISO_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> dt.timedelta:
    """Parse a duration of at most `MAX_DURATION`; raise ValueError saying which forms are accepted."""
    value = text.strip()
    seconds: int | None = None
    if short := _SHORT.match(value):
        seconds = int(short.group(1)) * _UNIT_SECONDS[short.group(2)]
    elif (iso := _ISO.match(value.upper())) and value.upper() not in ("P", "PT") and not value.upper().endswith("T"):
        seconds = sum(int(v) * _ISO_UNIT_SECONDS[k] for k, v in iso.groupdict().items() if v)
    if seconds is None:
        raise ValueError(
            f"invalid duration {text!r}: expected a number with a unit s/m/h/d/w (36h, 7d, 2w) or ISO 8601 (P7D, PT36H)"
        )
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"invalid duration {text[:40]!r}: longer than {format_duration(MAX_DURATION)} (100 years)")
    return dt.timedelta(seconds=seconds)


def format_duration(value: dt.timedelta) -> str:
    """The shortest exact short form (`7d`, `36h`)."""
    seconds = int(value.total_seconds())
    for unit in ("d", "h", "m"):
        if seconds and seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds // _UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"
