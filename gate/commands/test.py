"""`gate test`: run policy unit tests (`*.gate-test.yaml`), print a summary, optionally write JUnit XML."""

from __future__ import annotations

import argparse
from pathlib import Path

from gate.decision import ExitCode
from gate.errors import PolicyError, UsageError
from gate.policytest.cases import discover, load_case_file
from gate.policytest.junit import junit_xml
from gate.policytest.runner import FileResult, Runner

HELP = "run policy unit tests (*.gate-test.yaml files) against the policies they test"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH",
        help="test files, or directories searched recursively for *.gate-test.yaml",
    )
    parser.add_argument("--junit", type=Path, metavar="FILE", help="also write the results as JUnit XML")


def _lines(result: FileResult) -> list[str]:
    if result.error is not None:
        return [f"ERROR {result.path}", *(f"      {line}" for line in result.error.splitlines())]
    lines = []
    for r in result.results:
        where = f"{r.case.file}:{r.case.line}" if r.case.line else r.case.file
        status = "PASS " if r.passed else ("ERROR" if r.error else "FAIL ")
        lines.append(f"{status} {where} {r.case.name}")
        lines += [f"      {text}" for text in ([r.error] if r.error else list(r.failures))]
    lines += [f"note: {result.path}: no case exercises policy {name!r}" for name in result.untested]
    return lines


def run_files(paths: list[Path]) -> list[FileResult]:
    files = list(discover(paths))
    if not files:
        raise UsageError(f"no *.gate-test.yaml files under {', '.join(map(str, paths))}")
    runner = Runner()
    results = []
    for path in files:
        try:
            cases = load_case_file(path)
        except PolicyError as err:
            results.append(FileResult(path, error=err.diagnostics()))
            continue
        results.append(runner.run_file(cases))
    return results


def run(args: argparse.Namespace) -> int:
    results = run_files(args.paths)
    for result in results:
        print("\n".join(_lines(result)))
    cases = [r for f in results for r in f.results]
    passed = sum(r.passed for r in cases)
    failed = len(cases) - passed + sum(f.error is not None for f in results)
    if args.junit is not None:
        try:
            args.junit.write_text(junit_xml(results), encoding="utf-8")
        except OSError as err:
            raise UsageError(f"cannot write the JUnit report {args.junit}: {err.strerror or err}") from err
    print(f"{passed} passed, {failed} failed")
    return int(ExitCode.DENIED) if failed else int(ExitCode.ALLOWED)
