"""Durations as policies write them: `36h`, `7d`, `2w`, `90m`, `30s`, or ISO 8601 (`P7D`, `PT36H`, `P1W`)."""

from __future__ import annotations

import datetime as dt
import re

_SHORT = re.compile(r"^(\d+)([smhdw])$")
_ISO = re.compile(r"^P(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+)S)?)?$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> dt.timedelta:
    """Parse a duration; raise ValueError saying which forms are accepted."""
    value = text.strip()
    if short := _SHORT.match(value):
        return dt.timedelta(seconds=int(short.group(1)) * _UNIT_SECONDS[short.group(2)])
    iso = _ISO.match(value.upper())
    if iso and value.upper() not in ("P", "PT") and not value.upper().endswith("T"):
        parts = {k: int(v) for k, v in iso.groupdict().items() if v}
        return dt.timedelta(
            weeks=parts.get("w", 0),
            days=parts.get("d", 0),
            hours=parts.get("h", 0),
            minutes=parts.get("m", 0),
            seconds=parts.get("s", 0),
        )
    raise ValueError(
        f"invalid duration {text!r}: expected a number with a unit s/m/h/d/w (36h, 7d, 2w) or ISO 8601 (P7D, PT36H)"
    )


def format_duration(value: dt.timedelta) -> str:
    """The shortest exact short form (`7d`, `36h`)."""
    seconds = int(value.total_seconds())
    for unit in ("d", "h", "m"):
        if seconds and seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds // _UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"
