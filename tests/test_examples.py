"""The bundled examples: none is a copy of a shared fixture, and each verifies offline and is allowed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from gate.cli import main
from tests.conftest import FIXTURES, REPO

EXAMPLES = REPO / "examples"
PYPI = EXAMPLES / "pypi"
CONDA = EXAMPLES / "conda" / "noarch"


def _digests(root: Path) -> dict[str, Path]:
    return {hashlib.sha256(p.read_bytes()).hexdigest(): p for p in sorted(root.rglob("*")) if p.is_file()}


def test_no_example_is_a_copy_of_a_shared_fixture() -> None:
    shared = _digests(FIXTURES)
    copies = {str(p.relative_to(REPO)): str(shared[d]) for d, p in _digests(EXAMPLES).items() if d in shared}
    assert copies == {}


@pytest.mark.parametrize(
    ("artifact", "policy", "uploaded"),
    [
        (PYPI / "gcb_attestation_test-0.0.0.tar.gz", "example.yaml", "2025-04-23T18:29:31Z"),
        (PYPI / "circleci_sign_publish_example-0.0.1.dev137-py3-none-any.whl", "example.yaml", "2026-02-05T22:59:42Z"),
        (CONDA / "agent-skill-conda-forge-0.0.21-h4616a5c_0.conda", "conda-signed.yaml", None),  # from repodata.json
    ],
    ids=lambda value: value.name if isinstance(value, Path) else None,
)
def test_example_verifies_offline_and_is_allowed(
    artifact: Path, policy: str, uploaded: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["check", str(artifact), "-p", str(REPO / "policies" / policy), "--format", "json"]
    code = main(args + (["--uploaded", uploaded] if uploaded else []))
    (result,) = json.loads(capsys.readouterr().out)["results"]
    assert (code, result["verdict"], result["policies"]) == (0, "allow", [policy.removesuffix(".yaml")])
    assert result["attestations"] and all(a["verified"] for a in result["attestations"])
