"""The message of a violation of a structured rule says what the file showed and what the rule asks, in one
bounded, printable line, whatever the evidence holds; a custom rule keeps the message its policy wrote."""

from __future__ import annotations

import datetime as dt

import pytest

from gate.evaluate import Evaluator
from gate.facts import AttestationFact, Ecosystem, Facts, FileKind, Publisher
from gate.policy.cel_types import MAX_ATTESTATIONS
from gate.policy.compile import CompiledPolicy, load_policy_text
from gate.policy.describe import MAX_MESSAGE
from gate.policy.model import STRUCTURED_RULES
from tests import factories as f
from tests.policy.test_native import MINIMUM_AGES, compiled, generated_facts

SLSA = "https://slsa.dev/provenance/v1"
EVIL = "https://github.com/evil/x/.github/workflows/r.yml@refs/tags/v1"


def policy(spec: str) -> CompiledPolicy:
    (compiled_policy,) = load_policy_text(f"apiVersion: gate/v1\nkind: Policy\nmetadata: {{name: p}}\nspec:\n{spec}")
    return compiled_policy


def messages(spec: str, facts: Facts) -> dict[str, str]:
    """Rule name -> message of every violation of `facts`."""
    decision = Evaluator([policy(spec)]).judge(facts, f.NOW).decision
    return {v.rule: v.message for v in decision.violations}


AGE = "  minimumAge: 7d\n"
SIGNERS = f"""\
  attestations:
    signers:
      - publisher: {{kind: GitHub, repository: pypa/sampleproject, environment: pypi}}
      - {{identity: {{regex: "https://github[.]com/pypa/.*"}}, issuer: "{f.GITHUB}"}}
"""
REQUIRED_TYPES = f"""\
  attestations:
    predicateTypes: ["{f.PUBLISH}", "{SLSA}"]
    signers: [{{publisher: {{kind: GitHub, repository: pypa/sampleproject}}}}]
"""
REQUIRED = "  attestations: {required: true}\n"
CHANNEL = """\
  attestations:
    targetChannel: match
"""
BAD = f.attestation(verified=False, error="sigstore: the certificate chain does not verify", identity=EVIL)
FOREIGN = f.attestation(identity=EVIL, publisher=None)
CONDA = {"ecosystem": Ecosystem.CONDA, "kind": FileKind.CONDA, "index": "https://gate.example/conda/up"}

CASES = [
    (AGE, f.facts(uploaded=dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.UTC)), "minimumAge",
     "uploaded 2026-11-21T12:00:00Z; allowed from 2026-11-28T12:00:00Z (minimum age 7d)"),
    # another time zone, and a fraction of a second: the upload second cut, the allowed second rounded up
    (AGE, f.facts(uploaded=dt.datetime(2026, 11, 21, 13, 0, 0, 250_000, tzinfo=dt.timezone(dt.timedelta(hours=1)))),
     "minimumAge", "uploaded 2026-11-21T12:00:00Z; allowed from 2026-11-28T12:00:01Z (minimum age 7d)"),
    (AGE, f.facts(uploaded=None, index="https://pypi.org/simple/"), "minimumAge",
     "upload time unknown: the index gives none (whenUnknown: deny)"),
    (AGE, f.facts(uploaded=None, **CONDA), "minimumAge",
     "upload time unknown: the channel's repodata record has no indexed_timestamp or timestamp (whenUnknown: deny)"),
    (AGE, f.facts(uploaded=None, index=None), "minimumAge",
     "upload time unknown: a local file has none; give --uploaded, or check it against its index (whenUnknown: deny)"),
    (AGE, f.facts(uploaded=dt.datetime(9999, 12, 31, 23, 0, tzinfo=dt.UTC)), "minimumAge",
     "uploaded 9999-12-31T23:00:00Z; allowed from after the year 9999 (minimum age 7d)"),
    (REQUIRED, f.facts(), "attestations.required", "no attestation"),
    (REQUIRED, f.facts(BAD, BAD), "attestations.required",
     "no verified attestation (2 bundles did not verify: sigstore: the certificate chain does not verify)"),
    (SIGNERS, f.facts(FOREIGN), "attestations.signers",
     f"signed by {EVIL} (issuer {f.GITHUB}); allowed: GitHub publisher repository=pypa/sampleproject "
     f"environment=pypi, regex:https://github[.]com/pypa/.* (issuer {f.GITHUB})"),
    # the publisher's environment is part of who signed (the allowed publisher needs one)
    (SIGNERS.replace("      - {identity", "      # {identity"),
     f.facts(f.attestation(identity=EVIL, publisher=Publisher(kind="GitHub", repository="e", environment="release"))),
     "attestations.signers",
     f"signed by {EVIL} (issuer {f.GITHUB}, environment release); allowed: GitHub publisher "
     "repository=pypa/sampleproject environment=pypi"),
    (SIGNERS, f.facts(BAD), "attestations.signers",
     "no verified attestation (1 bundle did not verify: sigstore: the certificate chain does not verify); "
     f"allowed: GitHub publisher repository=pypa/sampleproject environment=pypi, regex:https://github[.]com/pypa/.* "
     f"(issuer {f.GITHUB})"),
    (SIGNERS, f.facts(*(f.attestation(identity=f"{EVIL}/{i}") for i in range(5))), "attestations.signers",
     f"signed by {EVIL}/0 (issuer {f.GITHUB}), {EVIL}/1 (issuer {f.GITHUB}), {EVIL}/2 (issuer {f.GITHUB}) and 2 more; "
     f"allowed: GitHub publisher repository=pypa/sampleproject environment=pypi, regex:https://github[.]com/pypa/.* "
     f"(issuer {f.GITHUB})"),
    (REQUIRED_TYPES, f.facts(f.attestation()), "attestations.predicateTypes",
     f"no verified attestation of predicate type {SLSA}; verified: {f.PUBLISH}"),
    (REQUIRED_TYPES, f.facts(f.attestation(), f.attestation(identity=EVIL, publisher=None, predicateType=SLSA)),
     "attestations.predicateTypes",
     f"verified predicate types {f.PUBLISH}, {SLSA}, but not each required one from an allowed signer "
     "(GitHub publisher repository=pypa/sampleproject)"),
    (REQUIRED_TYPES, f.facts(), "attestations.predicateTypes",
     f"no attestation; required predicate types: {f.PUBLISH}, {SLSA}"),
    (CHANNEL, f.facts(f.attestation(targetChannel="https://prefix.dev/other"), **CONDA), "attestations.targetChannel",
     "verified targetChannel: https://prefix.dev/other; required: the channel it is served from "
     "(https://gate.example/conda/up)"),
    (CHANNEL, f.facts(f.attestation(), **{**CONDA, "index": None}), "attestations.targetChannel",
     "verified targetChannel: none; required: the channel it is served from (unknown here)"),
    (CHANNEL.replace("match", "https://prefix.dev/mine"), f.facts(**CONDA), "attestations.targetChannel",
     "no attestation; required targetChannel: https://prefix.dev/mine"),
    ("  rules: [{name: custom, expression: '!file.yanked', message: yanked files are broken}]\n",
     f.facts(yanked=True), "custom", "yanked files are broken"),
]


@pytest.mark.parametrize(("spec", "facts", "rule", "message"), CASES)
def test_a_violation_says_what_the_file_showed_and_what_the_rule_asks(
    spec: str, facts: Facts, rule: str, message: str
) -> None:
    assert messages(spec, facts)[rule] == message


def test_an_error_is_added_to_the_description() -> None:
    many = f.facts(*(f.attestation(identity=EVIL) for _ in range(MAX_ATTESTATIONS + 1)))
    message = messages(SIGNERS, many)["attestations.signers"]
    assert message.startswith(f"signed by {EVIL} (issuer {f.GITHUB}); allowed: GitHub publisher")
    assert message.endswith(f"[rule not evaluated: the file has {MAX_ATTESTATIONS + 1} attestations; "
                            f"rules are evaluated over at most {MAX_ATTESTATIONS}]")


def test_hostile_evidence_cannot_make_a_message_long_or_break_it_over_lines() -> None:
    """Identities, issuers, predicate types and channels come from certificates and statements a publisher
    (or an attacker with a bundle) chose: each is cut and made printable, and so is every message."""
    spam = "https://github.com/a/\r\nX-Injected: 1\x1b[31m\u202e" + "b" * 10_000
    hostile = f.attestation(identity=spam, issuer=spam, predicateType=spam, targetChannel=spam,
                            publisher=Publisher(kind="GitHub", repository=spam, environment=spam))
    long_signers = (f"      - {{identity: '{'x' * 5000}{i}', issuer: '{f.GITHUB}'}}\n" for i in range(50))
    huge_policy = SIGNERS + "".join(long_signers)
    evidence = f.facts(*[hostile] * 10, **CONDA)
    shown = [
        *messages(huge_policy, evidence).values(),
        *messages(REQUIRED_TYPES, evidence).values(),
        *messages(CHANNEL, evidence).values(),
        *messages(REQUIRED, f.facts(AttestationFact(verified=False, source="s", error=spam))).values(),
    ]
    assert len(shown) == 5  # signers; predicate types and signers; target channel; required
    for message in shown:
        assert message.isprintable() and "\n" not in message and "\r" not in message, message
        assert len(message) <= MAX_MESSAGE
        assert "X-Injected: 1" in message or "no verified attestation" in message  # shown, but on the same line


@pytest.mark.parametrize("minimum_age", MINIMUM_AGES)
def test_every_failed_structured_rule_has_a_bounded_one_line_message(minimum_age: str) -> None:
    """Over the generated facts of the native-check test: no description raises, each names its specifics."""
    for required in (True, False):
        evaluator = Evaluator([compiled(minimum_age, required)])
        for facts in generated_facts(120, seed=len(minimum_age) + required):
            for violation in evaluator.judge(facts, f.NOW).decision.violations:
                assert violation.rule in (*STRUCTURED_RULES, "custom")
                assert violation.message.isprintable() and len(violation.message) <= MAX_MESSAGE
                if violation.rule == "minimumAge":
                    assert violation.message.startswith(("uploaded ", "upload time unknown: ", "signed "))


def test_what_the_policy_wrote_is_shown_as_one_line_and_a_waiver_keeps_its_expiry() -> None:
    """A custom rule's message and an exception's reason are the policy's words: a line break (a YAML block)
    or a terminal escape in them must not break a report or a log line into two, nor hide the expiry."""
    spec = (
        "  minimumAge: 7d\n"
        "  exceptions:\n"
        "    - {packages: [sampleproject], waive: [minimumAge], owner: \"sec\\nALLOW x\", expires: 2027-01-31,\n"
        f"       reason: \"{'long ' * 300}\\r\\nDENY\\x1b[2K\"}}\n"
        "  rules:\n"
        "    - name: custom\n"
        "      expression: '!file.yanked'\n"
        "      message: \"yanked files\\n  are broken\\x1b[8m\"\n"
    )
    decision = Evaluator([policy(spec)]).judge(f.facts(yanked=True, uploaded=f.NOW), f.NOW).decision
    age, custom = decision.violations
    assert custom.message == "yanked files are broken?[8m"
    assert age.waived is not None and age.waived.isprintable()
    assert age.waived.endswith("..., owner sec ALLOW x, until 2027-01-31")
