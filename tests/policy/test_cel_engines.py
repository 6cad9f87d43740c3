"""gate runs CEL with cel-python's CompiledRunner; it must decide exactly as cel-python's interpreter.

Every rule of the policies below is evaluated by both runners against a corpus of facts (real verified
attestations of the fixtures and edge cases: unknown upload time, no attestations, unverified ones,
missing claims), and the outcomes (value, or error) must be identical.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import celpy
import pytest

from gate.facts import AttestationFact, Ecosystem, Facts, FileKind, Publisher
from gate.policy import cel
from gate.policy.activation import to_activation
from gate.policy.compile import load_policies, load_policy_text
from gate.sources.local import LocalOptions, local_facts
from tests import factories as f
from tests.conftest import ATTESTATIONS, REPO

CUSTOM = """apiVersion: gate/v1
kind: Policy
metadata: {name: corpus}
spec:
  minimumAge: {age: 36h, whenUnknown: allow}
  attestations:
    required: false
    predicateTypes: [https://docs.pypi.org/attestations/publish/v1, https://slsa.dev/provenance/v1]
    signers:
      - {identity: {regex: 'https://github\\.com/[^/]+/[^/]+/\\.github/workflows/.*'}, issuer: 'https://token.*'}
      - publisher: {kind: GitLab, repository: 'facutuesca/*', workflowFilepath: .gitlab-ci.yml}
      - publisher: {kind: Google, email: '*@developer.gserviceaccount.com'}
    targetChannel: match
  rules:
    - {name: hosted, expression: 'attestations.all(a, a.claims.runnerEnvironment == "github-hosted")', message: m}
    - {name: first, expression: 'attestations[0].identity != ""', message: m}
    - {name: size, expression: 'file.size < 100000 && file.name.startsWith("s")', message: m}
    - {name: recent, expression: 'attestations.exists(a, now - a.integratedTime < duration("87600h"))', message: m}
"""


def _corpus() -> list[Facts]:
    real = [
        local_facts(
            ATTESTATIONS / "dists" / dist,
            LocalOptions(attestations=(ATTESTATIONS / evidence,), uploaded=f.NOW - dt.timedelta(days=2)),
        )
        for dist, evidence in [
            ("sampleproject-4.0.0-py3-none-any.whl", "pep740/sampleproject-4.0.0-py3-none-any.whl.publish.attestation"),
            ("pypi_attestations-0.0.19.tar.gz", "pep740/pypi_attestations-0.0.19.tar.gz.provenance"),
            ("gitlab_oidc_project-0.0.3.tar.gz", "pep740/gitlab_oidc_project-0.0.3.tar.gz.publish.attestation"),
            ("sampleproject-3.0.0.tar.gz", "pep740/sampleproject-3.0.0.tar.gz.publish.attestation"),
            ("rfc8785-0.0.2-py3-none-any.whl", "bundles/rfc8785-0.1.2-py3-none-any.whl.sigstore"),
        ]
    ]
    bad = AttestationFact(verified=False, source="x", error="sigstore: nope")
    conda = f.attestation(
        targetChannel="https://c.example/ch", publisher=Publisher(kind="GitHub", repository="o/r", environment="e")
    )
    return [
        *real,
        f.facts(),
        f.facts(uploaded=None),
        f.facts(bad),
        f.facts(bad, f.attestation()),
        f.facts(f.attestation(claims={"runnerEnvironment": "self-hosted"})),
        f.facts(conda, ecosystem=Ecosystem.CONDA, kind=FileKind.CONDA, index="https://c.example/ch"),
        f.facts(conda, ecosystem=Ecosystem.CONDA, kind=FileKind.CONDA, index=None),
    ]


def _outcome(runner: Any, activation: dict[str, Any]) -> str:
    result = cel.outcome(runner, activation)
    return "error" if result.error is not None else repr(result.value)


@pytest.mark.parametrize("now", [f.NOW, f.NOW - dt.timedelta(days=1)])
def test_compiled_runner_matches_interpreter(now: dt.datetime) -> None:
    policies = load_policies([REPO / "policies"]) + load_policy_text(CUSTOM)
    seen: set[str] = set()
    for facts in _corpus():
        activation = to_activation(facts, now)
        for policy in policies:
            for rule in policy.rules:
                ast = cel.parse(rule.expression)
                interpreted = celpy.InterpretedRunner(cel._env(), ast)
                outcome = _outcome(rule.compiled(), activation)
                assert outcome == _outcome(interpreted, activation), rule.expression
                seen.add(outcome)
    assert {"error", "BoolType(True)", "BoolType(False)"} <= seen  # the corpus exercises every outcome
