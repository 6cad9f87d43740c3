"""Path segments of upstream URLs: checked, then percent-encoded, so a name can never add a query, a
fragment or another path level to the URL gate asks upstream for.

Names reach gate already percent-decoded (gunicorn and werkzeug decode `%23`, `%3F` and `%2F` in the
path), so a name is judged as it is, and every upstream URL built from names goes through `join`.
"""

from __future__ import annotations

import re
from urllib.parse import quote

# After decoding, none of these can be part of a file or project name: `?`/`#` would start a query or a
# fragment, `/` and `\` another path level, `%` a second round of decoding somewhere down the line; nor a
# C0 or C1 control character. One search finds the first (it runs for every row of every page).
_FORBIDDEN = frozenset("?#/\\%")
_BAD = re.compile(r"[?#/\\%\x00-\x1f\x7f-\x9f]")
_SAFE = "+!"  # kept as they are (besides letters, digits and `-._~`): wheel and conda filenames use them


def segment_problem(name: str) -> str | None:
    """Why `name` cannot be one path segment of an upstream URL (None: it can)."""
    if name in ("", ".", ".."):
        return "an empty, '.' or '..' path segment"
    found = _BAD.search(name)
    if found is None:
        return None
    char = found.group()
    if char in _FORBIDDEN:
        return f"a name containing {char!r}"
    return f"a name containing the control character {char!r}"


def quote_segment(name: str) -> str:
    """`name` percent-encoded as one path segment; raise ValueError when it cannot be one."""
    problem = segment_problem(name)
    if problem is not None:
        raise ValueError(f"{name!r} is not a path segment: {problem}")
    return quote(name, safe=_SAFE)


def join(base: str, *segments: str) -> str:
    """`base` (a URL ending in `/` or not) followed by `segments`, each checked and percent-encoded."""
    return "/".join([base.rstrip("/"), *(quote_segment(s) for s in segments)])
