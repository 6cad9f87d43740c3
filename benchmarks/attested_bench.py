"""Benchmark: decisions per second on a 4000-file page whose files each carry their own verified attestation.

Every file (1000 releases x 4 files) has one verified PEP 740 publish attestation whose facts are its own:
the release's ref in the certificate identity, its commit, its Rekor time and claims (what the evaluator's
memo could never share between files). The policy is the compiler's signer/predicate rules plus a minimum
age: `attestations.required`, `.signers` (a publisher glob, an identity regex, an identity glob),
`.predicateTypes` and `minimumAge`. Measured in one process, best of --repeat passes over all 4000 files:

- gate: `Evaluator.judge` as the proxy calls it (native checks for the structured rules);
- CEL only: the same policy with every native form removed (each rule's CEL through the memo: what every
  attestation rule cost before the native forms), over the first --cel-files files.

Every decision is compared with the CEL-only one (they must be equal).

Run: `.venv/bin/python benchmarks/attested_bench.py [--repeat 5] [--cel-files 400]`
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from gate.decision import Decision  # noqa: E402
from gate.evaluate import Evaluator  # noqa: E402
from gate.facts import AttestationFact, Ecosystem, Facts, FileFacts, FileKind, Publisher  # noqa: E402
from gate.policy.compile import CompiledPolicy, load_policy_text  # noqa: E402

NOW = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
PUBLISH = "https://docs.pypi.org/attestations/publish/v1"
GITHUB = "https://token.actions.githubusercontent.com"
POLICY = f"""
apiVersion: gate/v1
kind: Policy
metadata: {{name: attested}}
spec:
  match: {{ecosystems: [pypi]}}
  minimumAge: 7d
  attestations:
    required: true
    predicateTypes: ["{PUBLISH}"]
    signers:
      - publisher: {{kind: GitHub, repository: "pallets/*", workflow: publish.yml}}
      - issuer: {GITHUB}
        identity: {{regex: "https://github\\\\.com/bench/[^/]+/\\\\.github/workflows/release\\\\.yml@refs/tags/v.*"}}
      - issuer: https://oidc.circleci.com
        identity: "https://circleci.com/api/v2/projects/*"
"""


def page(files: int) -> list[Facts]:
    out = []
    for i in range(files):
        version = f"1.{i // 4}.0"
        filename = f"bench-{version}-py3-none-{'any' if i % 4 == 0 else f'p{i % 4}'}.whl"
        identity = f"https://github.com/bench/bench/.github/workflows/release.yml@refs/tags/v{version}"
        attestation = AttestationFact(
            verified=True, source=f"https://pypi.example/integrity/bench/{version}/{filename}/provenance",
            predicateType=PUBLISH, issuer=GITHUB, identity=identity,
            publisher=Publisher(kind="GitHub", repository="bench/bench", workflow="release.yml"),
            claims={"1.3.6.1.4.1.57264.1.3": f"{i:040x}", "1.3.6.1.4.1.57264.1.14": f"refs/tags/v{version}"},
            integratedTime=NOW - dt.timedelta(days=30, seconds=i),
        )
        file = FileFacts(
            ecosystem=Ecosystem.PYPI, name="bench", version=version, filename=filename, kind=FileKind.WHEEL,
            sha256=f"{i:064x}", size=1000 + i, index="https://pypi.example/simple/",
            uploaded=NOW - dt.timedelta(days=30, seconds=i),
        )
        out.append(Facts(file=file, attestations=(attestation,)))
    return out


def without_natives(policy: CompiledPolicy) -> CompiledPolicy:
    return dataclasses.replace(policy, rules=tuple(dataclasses.replace(r, native=None) for r in policy.rules))


def rate(evaluator: Evaluator, files: list[Facts], repeat: int) -> tuple[float, list[Decision]]:
    """(decisions per second, best of `repeat` passes; the decisions of the last pass)."""
    best = float("inf")
    decisions: list[Decision] = []
    for _ in range(repeat):
        started = time.perf_counter()
        decisions = [evaluator.judge(facts, NOW).decision for facts in files]
        best = min(best, time.perf_counter() - started)
    return len(files) / best, decisions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cel-files", type=int, default=400)
    args = parser.parse_args()
    (policy,) = load_policy_text(POLICY)
    files = page(4000)
    native_rate, decisions = rate(Evaluator([policy]), files, args.repeat)
    cel_rate, reference = rate(Evaluator([without_natives(policy)]), files[: args.cel_files], 1)
    assert decisions[: args.cel_files] == reference, "native and CEL decisions differ"
    allowed = sum(1 for d in decisions if not d.denying)
    print(f"4000 files, each with its own verified attestation; {allowed} allowed; best of {args.repeat} passes\n")
    print("| engine | decisions/s | us per decision |")
    print("|---|---:|---:|")
    print(f"| gate (native checks) | {native_rate:,.0f} | {1e6 / native_rate:.1f} |")
    print(f"| CEL only ({args.cel_files} files) | {cel_rate:,.0f} | {1e6 / cel_rate:.1f} |")
    print(f"\ngate / CEL only = {native_rate / cel_rate:.1f}x; target >= 20,000 decisions/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
