"""`segment_problem` (one regex search per row of every page) says what the character-by-character
definition says, for every character class that matters."""

from __future__ import annotations

import random

from gate.sources.segments import segment_problem


def reference(name: str) -> str | None:
    """The definition: the first of `?#/\\%` or a C0/C1 control character, scanning left to right."""
    if name in ("", ".", ".."):
        return "an empty, '.' or '..' path segment"
    for char in name:
        if char in "?#/\\%":
            return f"a name containing {char!r}"
        if ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F:
            return f"a name containing the control character {char!r}"
    return None


def test_segment_problem_is_the_definition() -> None:
    alphabet = [chr(c) for c in range(0, 0xA2)] + ["\u2028", "\ufeff", "\U0001f600", "é"]
    rng = random.Random(7)
    names = ["", ".", "..", "...", "a", "demo-1.0-py3-none-any.whl"]
    names += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6))) for _ in range(20_000)]
    for name in names:
        assert segment_problem(name) == reference(name), repr(name)
