"""The policies shipped in policies/ all validate and compile, and decide the bundled example as documented."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from gate.decision import Verdict
from gate.evaluate import evaluate
from gate.policy.compile import load_policies
from gate.sources.local import LocalOptions, local_facts
from tests.conftest import REPO

SHIPPED = sorted((REPO / "policies").glob("*.yaml"))
WHEEL = REPO / "examples" / "sampleproject-4.0.0-py3-none-any.whl"
UPLOADED = dt.datetime(2024, 11, 6, 22, 37, 9, tzinfo=dt.UTC)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_policy_compiles(path: Path) -> None:
    compiled = load_policies([path])
    assert compiled and all(p.rules for p in compiled)


def test_shipped_policies_load_together() -> None:
    """The directory as `gate serve --policy policies/` reads it: every shipped policy, once."""
    assert sorted(p.name for p in load_policies([REPO / "policies"])) == ["conda-signed", "example"]


@pytest.mark.parametrize(
    ("now", "attested", "verdict", "rules"),
    [
        (dt.datetime(2026, 11, 22, tzinfo=dt.UTC), True, Verdict.ALLOW, []),
        (dt.datetime(2024, 11, 8, tzinfo=dt.UTC), True, Verdict.DENY, ["minimumAge"]),
        (
            dt.datetime(2026, 11, 22, tzinfo=dt.UTC),
            False,
            Verdict.DENY,
            ["attestations.required", "attestations.signers", "attestations.predicateTypes"],
        ),
    ],
)
def test_example_policy_on_real_wheel(
    now: dt.datetime, attested: bool, verdict: Verdict, rules: list[str], tmp_path: Path
) -> None:
    wheel = WHEEL
    if not attested:
        wheel = tmp_path / WHEEL.name
        wheel.write_bytes(WHEEL.read_bytes())
    facts = local_facts(wheel, LocalOptions(uploaded=UPLOADED))
    decision = evaluate(load_policies([REPO / "policies" / "example.yaml"]), facts, now)
    assert decision.verdict is verdict
    assert [v.rule for v in decision.violations] == rules
