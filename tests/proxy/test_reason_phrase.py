"""The 403 reason phrase (gate.proxy.decide.reason_phrase): one line of printable ASCII, bounded, whatever
the violation's message holds (messages can carry upstream data such as a filename)."""

from __future__ import annotations

import pytest

from gate.decision import Decision, Violation
from gate.proxy.decide import REASON_LIMIT, reason_phrase
from tests.factories import facts


def _denied(message: str) -> Decision:
    return Decision(facts=facts(), violations=(Violation(policy="p", rule="r", message=message),), policies=("p",))


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("published less than 7d ago", "Denied by gate policy p/r: published less than 7d ago"),
        ("evil\r\nSet-Cookie: a=b", "Denied by gate policy p/r: evil Set-Cookie: a=b"),
        ("caf\u00e9 \u202e\x00x", "Denied by gate policy p/r: caf? ??x"),
    ],
)
def test_reason_is_one_printable_ascii_line(message: str, expected: str) -> None:
    assert reason_phrase(_denied(message)) == expected


def test_reason_is_bounded() -> None:
    reason = reason_phrase(_denied("x" * 10_000))
    assert len(reason) == REASON_LIMIT and reason.endswith("...")
