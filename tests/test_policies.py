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
SDIST = REPO / "examples" / "pypi" / "gcb_attestation_test-0.0.0.tar.gz"
UPLOADED = dt.datetime(2025, 4, 23, 18, 29, 31, tzinfo=dt.UTC)  # as PyPI lists it


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
        (dt.datetime(2025, 4, 25, tzinfo=dt.UTC), True, Verdict.DENY, ["minimumAge"]),
        (
            dt.datetime(2026, 11, 22, tzinfo=dt.UTC),
            False,
            Verdict.DENY,
            ["attestations.required", "attestations.signers", "attestations.predicateTypes"],
        ),
    ],
)
def test_example_policy_on_real_sdist(
    now: dt.datetime, attested: bool, verdict: Verdict, rules: list[str], tmp_path: Path
) -> None:
    sdist = SDIST
    if not attested:  # the same bytes without the provenance beside them
        sdist = tmp_path / SDIST.name
        sdist.write_bytes(SDIST.read_bytes())
    facts = local_facts(sdist, LocalOptions(uploaded=UPLOADED))
    decision = evaluate(load_policies([REPO / "policies" / "example.yaml"]), facts, now)
    assert decision.verdict is verdict
    assert [v.rule for v in decision.violations] == rules
