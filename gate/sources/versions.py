"""PEP 440 versions parsed once: the same version strings recur across a project's files and a channel's
records, and `packaging.version.Version` is slow enough to show when thousands are judged."""

from __future__ import annotations

from packaging.version import Version

from gate.memo import Memo

MEMO_LIMIT = 20_000
# version text -> (str(Version), is_prerelease); None: invalid
VERSIONS: Memo[str, tuple[str, bool] | None] = Memo(MEMO_LIMIT)


def _parse(text: str) -> tuple[str, bool] | None:
    try:
        version = Version(text)
    except ValueError:  # InvalidVersion, or more digits than int() converts (an upstream's choice)
        return None
    return str(version), version.is_prerelease


def parse_version(text: str) -> tuple[str, bool] | None:
    """`Version(text)` as (normalized string, is_prerelease), None when invalid; memoized."""
    return VERSIONS.get_or_make(text, lambda: _parse(text))
