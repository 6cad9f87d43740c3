"""Run policy test cases: build each case's facts, evaluate the policies, compare with the expectation."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gate.decision import Decision, Violation
from gate.errors import GateError, PolicyError, UsageError
from gate.evaluate import evaluate, unidentified
from gate.facts import Facts, Unidentified, with_signed_time
from gate.policy.compile import CompiledPolicy, load_policies
from gate.policy.model import names_rule
from gate.policytest.cases import CaseFile, PolicyCase
from gate.sources.local import LocalOptions, UnidentifiedFileError, local_facts
from gate.verify.api import BundleVerifier


@dataclass(frozen=True)
class CaseResult:
    case: PolicyCase
    failures: tuple[str, ...] = ()
    error: str | None = None  # the case could not be run at all
    decision: Decision | None = None
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.failures and self.error is None


@dataclass(frozen=True)
class FileResult:
    """The results of one test file, and the policies it loaded that no case exercised."""

    path: Path
    results: tuple[CaseResult, ...] = ()
    error: str | None = None  # the file or its policies could not be loaded
    untested: tuple[str, ...] = field(default_factory=tuple)


def _matches(expected: str, v: Violation) -> bool:
    """`rule`, `policy/rule`, or a group as `waive` names one (`attestations` covers `attestations.*`)."""
    policy, _, rule = expected.rpartition("/")
    if policy and policy != v.policy:
        return False
    return names_rule(rule, v.rule)


def compare(what: str, expected: tuple[str, ...] | None, actual: Sequence[Violation]) -> list[str]:
    """Failures when the rules in `actual` are not exactly those `expected` names (None: not checked)."""
    if expected is None:
        return []
    failures = [f"expected {what} {e!r} did not occur" for e in expected if not any(_matches(e, v) for v in actual)]
    failures += [
        f"unexpected {what} {v.ref}: {v.message}" for v in actual if not any(_matches(e, v) for e in expected)
    ]
    return failures


def check(case: PolicyCase, decision: Decision) -> list[str]:
    expect = case.expect
    failures = []
    if decision.verdict is not expect.verdict:
        shown = "; ".join(f"{v.ref}: {v.message}" for v in decision.denying) or "no rule denied it"
        failures.append(f"expected verdict {expect.verdict.value}, got {decision.verdict.value} ({shown})")
    failures += compare("violation", expect.violations, decision.denying)
    failures += compare("waived violation", expect.waived, [v for v in decision.violations if v.waived])
    audit = [v for v in decision.violations if not v.enforced and v.waived is None]
    failures += compare("audit violation", expect.audit, audit)
    if expect.policies is not None and sorted(expect.policies) != sorted(decision.policies):
        failures.append(f"expected policies {sorted(expect.policies)} to match, got {sorted(decision.policies)}")
    elif expect.policies is None and not decision.policies:
        failures.append("no policy matches this file, so the case tests nothing (write `policies: []` if it should)")
    return failures


def case_facts(case: PolicyCase, verifier: Callable[[], BundleVerifier]) -> Facts:
    if case.artifact is None:
        assert case.facts is not None
        # `file.signedTime` as every gatherer derives it (`with_signed_time`): a custom rule that reads it is
        # tested against what `gate check` and the proxy would give it
        file = with_signed_time(case.facts, case.attestations)
        return Facts(file=file, attestations=case.attestations, vulnerabilities=case.vulnerabilities,
                     continuity=case.continuity)
    artifact = case.artifact
    for path in (artifact.path, *artifact.evidence):  # a test file comes in a pull request: no /dev/zero
        if not path.is_file():
            raise UsageError(f"{path} is not a regular file")
    options = LocalOptions(
        attestations=artifact.evidence, uploaded=artifact.uploaded, channel=artifact.channel, verifier=verifier()
    )
    return local_facts(artifact.path, options)


def run_case(
    case: PolicyCase, policies: Sequence[CompiledPolicy], verifier: Callable[[], BundleVerifier]
) -> CaseResult:
    started = time.perf_counter()
    try:
        facts: Facts | Unidentified = case_facts(case, verifier)
    except UnidentifiedFileError as err:  # denied as `gate check` denies it
        facts = err.file
    except (GateError, OSError) as err:
        message = err.diagnostics() if isinstance(err, GateError) else str(err)
        return CaseResult(case, error=f"cannot build facts: {message}", seconds=time.perf_counter() - started)
    decision = unidentified(facts) if isinstance(facts, Unidentified) else evaluate(policies, facts, case.now)
    failures = tuple(check(case, decision))
    return CaseResult(case, failures, decision=decision, seconds=time.perf_counter() - started)


class Runner:
    """Runs test files, loading each distinct set of policies once and one Sigstore verifier lazily."""

    def __init__(self) -> None:
        self._policies: dict[tuple[Path, ...], list[CompiledPolicy] | PolicyError] = {}
        self._verifier: BundleVerifier | None = None

    def verifier(self) -> BundleVerifier:
        if self._verifier is None:
            self._verifier = BundleVerifier()
        return self._verifier

    def policies(self, paths: tuple[Path, ...]) -> list[CompiledPolicy]:
        key = tuple(p.resolve() for p in paths)
        if key not in self._policies:
            try:
                self._policies[key] = load_policies(list(paths))
            except PolicyError as err:
                self._policies[key] = err
        found = self._policies[key]
        if isinstance(found, PolicyError):
            raise found
        return found

    def run_file(self, cases: CaseFile) -> FileResult:
        try:
            policies = self.policies(cases.policies)
        except PolicyError as err:
            return FileResult(cases.path, error=f"cannot load policies:\n{err.diagnostics()}")
        results = tuple(run_case(case, policies, self.verifier) for case in cases.cases)
        exercised = {name for r in results if r.decision is not None for name in r.decision.policies}
        untested = tuple(sorted(p.name for p in policies if p.name not in exercised))
        return FileResult(cases.path, results, untested=untested)
