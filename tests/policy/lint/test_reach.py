"""Whether a regex can match anything starting with a prefix; "unsure" must answer yes."""

from __future__ import annotations

import pytest

from gate.policy.reach import can_start_with

GITHUB = "https://github.com/"


@pytest.mark.parametrize(
    ("regex", "expected"),
    [
        (r"^(?:https://github\.com/pallets/[^/]+/\.github/workflows/publish\.yml@refs/tags/.*)$", True),
        (r"^(?:github\.com/pallets/.*)$", False),
        (r"^(?:https://gitlab\.com/.*)$", False),
        (r"^(?:.*)$", True),
        (r"^(?:(https://github\.com/a|b).*)$", True),
        (r"^(?:\w+://github\.com/.+)$", True),
        (r"^(?:[a-z]{3,4}s?://gith.*)$", True),
        (r"^(?:https://github\.com)$", False),
        (r"^(?:(a|b)*)$", False),
        (r"^(?:[^h].*)$", False),
        (r"^(?:h(?=t).*)$", True),  # lookaround: not modelled, so "maybe"
        (r"(?i)^HTTPS://GITHUB\.COM/.*$", True),  # flags: not modelled, so "maybe"
    ],
)
def test_can_start_with(regex: str, expected: bool) -> None:
    assert can_start_with(regex, GITHUB) is expected
