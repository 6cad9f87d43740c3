"""PEP 751 `pylock.toml` as planned files: every wheel and sdist it lists, with upload time, hashes and
attestation identities as the lock gives them."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from gate.errors import UsageError
from gate.facts import aware
from gate.sources.localfile import read_regular
from gate.sources.planned import PlannedFile


def _time(value: Any) -> dt.datetime | None:
    """A TOML datetime as an aware one; None for anything else, or one no UTC time can hold (a claim the
    report notes anyway, never a crash)."""
    try:
        return aware(value) if isinstance(value, dt.datetime) else None
    except ValueError:
        return None


def _sha256(entry: dict[str, Any]) -> str | None:
    hashes = entry.get("hashes") or {}
    return str(hashes["sha256"]).lower() if "sha256" in hashes else None


def _line_of(text: str, filename: str) -> int | None:
    """The line that names `filename` (for annotations); None when it is not written out literally."""
    found = re.search(rf"""name\s*=\s*["']{re.escape(filename)}["']""", text)
    return text.count("\n", 0, found.start()) + 1 if found else None


def _file(package: dict[str, Any], entry: dict[str, Any], source: str, text: str) -> PlannedFile:
    url = entry.get("url") or entry.get("path") or ""
    filename = entry.get("name") or str(url).rsplit("/", 1)[-1]
    identities = tuple(
        {str(k): str(v) for k, v in identity.items()} for identity in package.get("attestation-identities", [])
    )
    return PlannedFile(
        name=str(package.get("name", "")),
        version=str(package.get("version", "")),
        filename=str(filename),
        sha256=_sha256(entry),
        source=source,
        line=_line_of(text, str(filename)),
        index=None if package.get("index") is None else str(package["index"]),
        uploaded=_time(entry.get("upload-time")),
        size=entry.get("size"),
        identities=identities,
        direct="path" in entry and "url" not in entry,
    )


def read_pylock(path: Path) -> list[PlannedFile]:
    """Every file of every package; VCS, directory and archive sources are direct installs."""
    from tomllib import TOMLDecodeError, loads  # noqa: PLC0415 (a TOML parser only for a lock file)

    try:
        text = read_regular(path).decode("utf-8")
        data = loads(text)
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror}") from err
    except (TOMLDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"{path}: not TOML: {err}") from err
    if str(data.get("lock-version", "")).split(".")[0] != "1":
        raise UsageError(f"{path}: lock-version {data.get('lock-version')!r}; gate reads pylock 1.x")
    try:
        return _planned(data, path, text)
    except (AttributeError, TypeError) as err:  # a value of the wrong type where PEP 751 has a table or array
        raise UsageError(f"{path}: not a valid pylock.toml ({err})") from None


def _planned(data: dict[str, Any], path: Path, text: str) -> list[PlannedFile]:
    """Every planned file of a parsed lock; AttributeError or TypeError for a value of the wrong type."""
    planned = []
    for package in data.get("packages", []):
        entries = list(package.get("wheels", []))
        if "sdist" in package:
            entries.append(package["sdist"])
        for entry in entries:
            planned.append(_file(package, entry, str(path), text))
        for kind in ("vcs", "directory", "archive"):
            if kind in package:
                entry = package[kind]
                where = entry.get("url") or entry.get("path") or kind
                planned.append(
                    PlannedFile(
                        name=str(package.get("name", "")), version=str(package.get("version", "")),
                        filename=str(where), sha256=_sha256(entry), source=str(path),
                        direct=True,
                    )
                )
    return planned


def is_pylock(path: Path) -> bool:
    """`pylock.toml` or `pylock.<name>.toml` (PEP 751 file names)."""
    return re.fullmatch(r"pylock(\.[^.]+)?\.toml", path.name) is not None
