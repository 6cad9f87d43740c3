"""`pip install --dry-run --report` output as planned files, and running pip's resolver to get one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from gate.errors import UsageError
from gate.sources.localfile import read_regular
from gate.sources.planned import PlannedFile
from gate.sources.requirements import safe_requirements

REPORT_VERSION = "1"


def _sha256(archive: dict[str, Any]) -> str | None:
    hashes = archive.get("hashes") or {}
    if "sha256" in hashes:
        return str(hashes["sha256"]).lower()
    algorithm, _, value = str(archive.get("hash", "")).partition("=")
    return value.lower() if algorithm == "sha256" and value else None


def planned_from_report(data: Any, source: str, index: str | None = None) -> list[PlannedFile]:
    """One planned file per `install` item; raises UsageError for what is not a pip report."""
    if not isinstance(data, dict) or not isinstance(data.get("install"), list):
        raise UsageError(f"{source}: not a pip installation report (no `install` list)")
    if str(data.get("version")) != REPORT_VERSION:
        raise UsageError(f"{source}: pip report version {data.get('version')!r}; gate reads version {REPORT_VERSION}")
    try:
        return [_planned(item, source, index) for item in data["install"]]
    except (AttributeError, TypeError) as err:  # a value of the wrong type where the report format has a table
        raise UsageError(f"{source}: not a pip installation report (an `install` item is malformed: {err})") from None


def _planned(item: Any, source: str, index: str | None) -> PlannedFile:
    """The planned file of one `install` item; AttributeError or TypeError for a value of the wrong type."""
    info = item.get("download_info") or {}
    metadata = item.get("metadata") or {}
    url = str(info.get("url", ""))
    archive = info.get("archive_info")
    filename = unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or str(metadata.get("name", "?"))
    return PlannedFile(
        name=str(metadata.get("name", "")),
        version=str(metadata.get("version", "")),
        filename=filename,
        sha256=_sha256(archive) if isinstance(archive, dict) else None,
        source=source,
        index=index,
        direct=bool(item.get("is_direct")) or not isinstance(archive, dict),
    )


def read_report(path: Path, index: str | None = None) -> list[PlannedFile]:
    try:
        data = json.loads(read_regular(path).decode("utf-8"))
    except OSError as err:
        raise UsageError(f"cannot read pip report {path}: {err.strerror}") from err
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError is a ValueError; RecursionError: nesting
        raise UsageError(f"{path}: not JSON: {err}") from None
    return planned_from_report(data, str(path), index)


def pip_environment() -> dict[str, str]:
    """pip reads only what the command line says: no config files, no extra indexes or local wheel dirs."""
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_CACHE_DIR="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def resolve_requirements(requirements: Path, index_url: str | None, python: str = sys.executable) -> dict[str, Any]:
    """Run pip's own resolver (`pip install --dry-run --ignore-installed --report`) and return the report."""
    if not requirements.is_file():
        raise UsageError(f"no such requirements file: {requirements}")
    try:
        text = read_regular(requirements).decode("utf-8")
    except OSError as err:
        raise UsageError(f"cannot read {requirements}: {err.strerror}") from err
    except UnicodeDecodeError:
        raise UsageError(f"{requirements}: not UTF-8") from None
    with tempfile.TemporaryDirectory(prefix="gate-pip-") as tmp:
        report, safe = Path(tmp) / "report.json", Path(tmp) / "requirements.txt"
        safe.write_text(safe_requirements(requirements, text), encoding="utf-8")
        command = [python, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--no-input",
                   "--only-binary", ":all:", "--report", str(report), "-r", str(safe)]
        if index_url:
            command += ["--index-url", index_url]
        result = subprocess.run(command, env=pip_environment(), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise UsageError(f"pip could not resolve {requirements}:\n{result.stderr.strip()}")
        data: dict[str, Any] = json.loads(report.read_text(encoding="utf-8"))
        return data
