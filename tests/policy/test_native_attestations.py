"""The native forms of the attestation rules (`attestations.signers`, `.predicateTypes`, `.targetChannel`)
judge exactly as their CEL, the specification: a differential test over generated policies (every kind of
signer, pattern, predicate type and target channel) and a large generated corpus of facts with edge values
(null fields, no publisher, case and trailing-newline near misses, non-ASCII and lone surrogates, empty
strings, evidence beyond the budget), in both directions of every condition."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
from collections.abc import Callable
from typing import Any

import pytest

from gate.evaluate import Evaluator
from gate.facts import AttestationFact, Ecosystem, Facts, FileKind, Publisher
from gate.policy import native
from gate.policy.activation import to_activation
from gate.policy.cel_types import MAX_ATTESTATIONS, MAX_CLAIMS
from gate.policy.compile import CompiledPolicy, CompiledRule, load_policy_text
from gate.policy.model import PublisherSigner
from gate.policy.patterns import glob
from tests import factories as f
from tests.policy.reference import cel_decision

ATTESTATION_RULES = ("attestations.signers", "attestations.predicateTypes", "attestations.targetChannel")
OTHER = "https://example.com/predicate/v1"
CHANNEL = "https://prefix.dev/forge"
REPO = "pypa/sampleproject"
IDENTITY = "https://github.com/pypa/sampleproject/.github/workflows/release.yml@refs/tags/v1.2.3"

# Signers as a policy writes them: literals, globs and regexes over each field, and near misses of each
SIGNERS: list[dict[str, Any]] = [
    {"publisher": {"kind": "GitHub", "repository": REPO}},
    {"publisher": {"kind": "GitHub", "repository": "pypa/*", "workflow": "release.yml"}},
    {"publisher": {"kind": "GitHub", "repository": {"regex": "pypa/[a-z]+"}, "environment": "pypi"}},
    {"publisher": {"kind": "GitLab", "repository": "group/*"}},
    {"publisher": {"kind": "Google", "email": "*@developer.gserviceaccount.com"}},
    {"publisher": {"kind": "GitLab", "repository": "*", "workflowFilepath": ".github/workflows/*.yml"}},
    {"publisher": {"kind": "GitHub", "repository": "*"}},
    {"issuer": f.GITHUB, "identity": IDENTITY},
    {"issuer": f.GITHUB, "identity": "https://github.com/pypa/*"},
    {"issuer": "https://*.example.com", "identity": {"regex": r"https://github\.com/pypa/[^/]+/.*@refs/tags/v.*"}},
    {"issuer": {"regex": "https://(oidc|token)\\..*"}, "identity": "*"},
    {"issuer": f.GITHUB, "identity": "ü*"},
]

VALUES = [  # strings an attestation field may hold, from the certificate or from whoever made the bundle
    None, "", REPO, "pypa/other", "PYPA/sampleproject", REPO + "\n", "pypa/", "evil/pypa/x", "group/sub/project",
    "release.yml", "publish.yml", "pypi", "testpypi", ".github/workflows/release.yml",
    "x@developer.gserviceaccount.com",
    f.GITHUB, f.GITHUB + "/", "https://oidc.circleci.com", "https://a.example.com", IDENTITY, IDENTITY + "\n",
    IDENTITY.replace("v1.2.3", "1.2.3"), "https://github.com/pypa/sampleproject", "üniçode", "ü", "\ud800",
    "a\ud800b", "*", "https://github.com/pypa/*", "GitHub", "github",
]
KINDS = ["GitHub", "GitLab", "Google", "", "github", "ActiveState"]


def _policy(rng: random.Random, number: int) -> CompiledPolicy:
    spec: dict[str, Any] = {"required": rng.random() < 0.6}
    if rng.random() < 0.8:
        spec["signers"] = rng.sample(SIGNERS, rng.randint(1, 4))
    if rng.random() < 0.6:
        spec["predicateTypes"] = rng.sample([f.PUBLISH, OTHER], rng.randint(1, 2))
    if rng.random() < 0.5:
        spec["targetChannel"] = rng.choice(["match", CHANNEL])
    document = {"apiVersion": "gate/v1", "kind": "Policy", "metadata": {"name": f"p{number}"},
                "spec": {"match": {"ecosystems": ["pypi", "conda"]}, "attestations": spec}}
    (policy,) = load_policy_text(json.dumps(document))  # JSON is YAML
    return policy


def _value(rng: random.Random) -> str | None:
    return rng.choice(VALUES)


def _publisher(rng: random.Random) -> Publisher | None:
    if rng.random() < 0.15:
        return None
    return Publisher(kind=rng.choice(KINDS), repository=_value(rng), workflow=_value(rng),
                     environment=_value(rng), workflowFilepath=_value(rng), email=_value(rng))


def _attestation(rng: random.Random, index: str | None) -> AttestationFact:
    claims = {f"c{i}": "v" for i in range(rng.choice([0, 0, 1, MAX_CLAIMS, MAX_CLAIMS + 1]))}
    return AttestationFact(
        verified=rng.random() < 0.8, source=f"s{rng.randint(0, 2)}", error=rng.choice([None, "bad"]),
        predicateType=rng.choice([f.PUBLISH, f.PUBLISH, OTHER, None, "", f.PUBLISH + "/"]),
        issuer=rng.choice([f.GITHUB, f.GITHUB, *VALUES]), identity=rng.choice([IDENTITY, IDENTITY, *VALUES]),
        publisher=_publisher(rng), claims=claims,
        integratedTime=f.NOW - dt.timedelta(seconds=rng.randint(0, 10**8)),
        targetChannel=rng.choice([None, CHANNEL, CHANNEL + "/", index, ""]),
    )


def corpus(count: int, seed: int) -> list[Facts]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        conda = rng.random() < 0.4
        index = rng.choice([None, CHANNEL, "https://conda.anaconda.org/conda-forge"])
        how_many = rng.choice([0, 1, 1, 1, 2, 2, 3, MAX_ATTESTATIONS, MAX_ATTESTATIONS + 1])
        file = f.file(index=index, **({"ecosystem": Ecosystem.CONDA, "kind": FileKind.CONDA} if conda else {}))
        out.append(Facts(file=file, attestations=tuple(_attestation(rng, index) for _ in range(how_many))))
    return out


def _one_signer(signer: dict[str, Any], number: int) -> CompiledPolicy:
    spec = {"signers": [signer], "predicateTypes": [f.PUBLISH], "targetChannel": "match", "required": True}
    document = {"apiVersion": "gate/v1", "kind": "Policy", "metadata": {"name": f"s{number}"},
                "spec": {"match": {"ecosystems": ["pypi", "conda"]}, "attestations": spec}}
    (policy,) = load_policy_text(json.dumps(document))
    return policy


# each signer alone (its every near miss decides), then mixes of signers, types, channels and `required`
POLICIES = [_one_signer(s, n) for n, s in enumerate(SIGNERS)] + [_policy(random.Random(n), n) for n in range(8)]
FACTS = corpus(450, seed=14)


def _native_rules(policies: list[CompiledPolicy]) -> list[CompiledRule]:
    return [r for p in policies for r in p.rules if r.name in ATTESTATION_RULES and r.native is not None]


def test_the_corpus_reaches_every_outcome() -> None:
    """Guards the generator: each rule passes and fails natively many times, and CEL is left a few files."""
    outcomes: dict[tuple[str, bool | None], int] = {}
    for rule in _native_rules(POLICIES):
        assert rule.native is not None
        for facts in FACTS[:200]:
            judged = rule.native(facts, f.NOW)
            key = (rule.name, None if judged is None else judged[0])
            outcomes[key] = outcomes.get(key, 0) + 1
    for name in ATTESTATION_RULES:
        assert outcomes.get((name, True), 0) > 100 and outcomes.get((name, False), 0) > 100, outcomes
    assert sum(n for (_, judged), n in outcomes.items() if judged is None) > 5  # lone surrogates: CEL's


def disagreements(facts_list: list[Facts], *, first: bool = False) -> tuple[int, list[str]]:
    """(how many native outcomes were compared with their CEL's, the disagreements); `first`: stop at one."""
    compared, found = 0, []
    for facts in facts_list:
        activation = to_activation(facts, f.NOW)
        for rule in _native_rules(POLICIES):
            assert rule.native is not None
            judged = rule.native(facts, f.NOW)
            if judged is None:
                continue
            compared += 1
            expected = rule.evaluate(activation)
            if judged[:2] != expected or judged[2] is not None:  # evidence does not change with time
                found.append(f"{rule.name} {rule.expression}: native {judged}, CEL {expected} for {facts}")
                if first:
                    return compared, found
    return compared, found


def test_native_attestation_checks_agree_with_their_cel() -> None:
    rules = _native_rules(POLICIES)
    assert {r.name for r in rules} == set(ATTESTATION_RULES) and len(rules) > 25
    compared, found = disagreements(FACTS)
    assert found == [] and compared > 10_000


def test_the_engines_decisions_equal_plain_cels() -> None:
    """Whole decisions (messages, waivers, order) through the engine equal the reference, file by file."""
    evaluator = Evaluator(POLICIES[:6])
    for facts in FACTS[:200]:
        assert evaluator.judge(facts, f.NOW).decision == cel_decision(POLICIES[:6], facts, f.NOW)


def test_a_signer_on_a_field_the_document_lacks_has_no_native_form() -> None:
    """A native form exists only where it is exact (the schema allows no such key today)."""
    assert native.exact_signers((PublisherSigner(kind="GitHub", fields=(("repository", glob(REPO)),)),))
    assert not native.exact_signers((PublisherSigner(kind="GitHub", fields=(("unknown", glob(REPO)),)),))


Drift = Callable[..., Any]


@pytest.mark.parametrize("drift", [
    # a literal compared case-insensitively
    lambda original: lambda value, pattern: (
        value is not None and value.lower() == pattern.source.lower() if pattern.is_literal
        else original(value, pattern)
    ),
    # a regex searched without its anchors (matches inside a longer value)
    lambda original: lambda value, pattern: (
        original(value, pattern) if pattern.is_literal or value is None
        else original(value, dataclasses.replace(pattern, regex=pattern.regex.strip("^$")))
    ),
    # a null field taken as the empty string
    lambda original: lambda value, pattern: original("" if value is None else value, pattern),
])
def test_a_drifting_native_check_is_caught(monkeypatch: pytest.MonkeyPatch, drift: Drift) -> None:
    monkeypatch.setattr(native, "_matches", drift(native._matches))
    native._search.cache_clear()
    assert disagreements(FACTS, first=True)[1]


def test_a_drifting_target_channel_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """`file.index != null` dropped: a null targetChannel would equal a null index."""

    def drifted(self: native.TrustedAttestations, a: AttestationFact, facts: Facts) -> bool:
        if self.signers and not any(native._signed_by(a, s) for s in self.signers):
            return False
        if self.channel == "match":
            return a.targetChannel == facts.file.index
        return self.channel is None or a.targetChannel == self.channel

    monkeypatch.setattr(native.TrustedAttestations, "_trusted", drifted)
    assert disagreements(FACTS, first=True)[1]
