"""PEP 440 versions parsed once: the same version strings recur across a project's files and a channel's
records, and `packaging.version.Version` is slow enough to show when thousands are judged."""

from __future__ import annotations

from packaging.version import InvalidVersion, Version

MEMO_LIMIT = 20_000
VERSIONS: dict[str, tuple[str, bool] | None] = {}  # version text -> (str(Version), is_prerelease); None: invalid


def parse_version(text: str) -> tuple[str, bool] | None:
    """`Version(text)` as (normalized string, is_prerelease), None when invalid; memoized."""
    try:
        return VERSIONS[text]
    except KeyError:
        pass
    try:
        version = Version(text)
    except InvalidVersion:
        found = None
    else:
        found = (str(version), version.is_prerelease)
    if len(VERSIONS) >= MEMO_LIMIT:
        VERSIONS.clear()
    VERSIONS[text] = found
    return found
