"""Core costs: CEL evaluation per file for policies/example.yaml, and Sigstore verification per attestation.

Run: python benchmarks/core_bench.py [--iterations N]. Prints a Markdown table; numbers are medians of
repeated timed batches on this machine (no network; the verifier uses the trusted root inside sigstore).
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import celpy

from gate.decision import Verdict
from gate.evaluate import evaluate
from gate.facts import Ecosystem
from gate.policy import cel
from gate.policy.activation import to_activation
from gate.policy.compile import load_policies
from gate.sources.local import LocalOptions, local_facts
from gate.verify.api import BundleVerifier, verify_evidence
from gate.verify.target import Target

REPO = Path(__file__).resolve().parent.parent
WHEEL = REPO / "examples" / "pypi" / "circleci_sign_publish_example-0.0.1.dev137-py3-none-any.whl"
ATTESTATION = WHEEL.with_name(WHEEL.name + ".publish.attestation")
NOW = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)


def per_call_us(func: Callable[[], object], iterations: int, batches: int = 5) -> float:
    """Median over `batches` of the mean time of one call, in microseconds."""
    func()  # warm caches (compiled programs, trusted root)
    samples = []
    for _ in range(batches):
        start = time.perf_counter()
        for _ in range(iterations):
            func()
        samples.append((time.perf_counter() - start) / iterations * 1e6)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=200)
    args = parser.parse_args()

    policies = load_policies([REPO / "policies" / "example.yaml"])
    options = LocalOptions(uploaded=dt.datetime(2026, 2, 5, 22, 59, 42, tzinfo=dt.UTC))
    facts = local_facts(WHEEL, options)
    assert evaluate(policies, facts, NOW).verdict is Verdict.ALLOW
    rules = sum(len(p.rules) for p in policies)

    verifier = BundleVerifier()
    target = Target(filename=facts.file.filename, sha256=facts.file.sha256, ecosystem=Ecosystem.PYPI)
    data = ATTESTATION.read_bytes()
    assert verify_evidence(data, "bench", target, verifier)[0].verified

    cel_us = per_call_us(lambda: evaluate(policies, facts, NOW), args.iterations)
    env = cel._env()
    interpreted = [celpy.InterpretedRunner(env, env.compile(r.expression)) for p in policies for r in p.rules]

    def interpret() -> None:
        activation = to_activation(facts, NOW)
        for runner in interpreted:
            runner.evaluate(activation)

    interpreted_us = per_call_us(interpret, max(args.iterations // 4, 10))
    verify = per_call_us(lambda: verify_evidence(data, "bench", target, verifier), max(args.iterations // 10, 10))
    check = per_call_us(lambda: local_facts(WHEEL, options), max(args.iterations // 10, 10))

    print("| measurement | per call |")
    print("|---|---|")
    print(f"| CEL evaluation, policies/example.yaml ({rules} rules, 1 attestation), per file | {cel_us:,.0f} µs |")
    print(f"| the same with cel-python's InterpretedRunner (for comparison) | {interpreted_us:,.0f} µs |")
    print(f"| Sigstore verification of one PEP 740 attestation (offline) | {verify / 1000:,.2f} ms |")
    print(f"| facts for a local wheel (hash + discover + verify) | {check / 1000:,.2f} ms |")


if __name__ == "__main__":
    main()
