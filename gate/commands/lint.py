"""`gate lint`: report every problem in policy files, for people (text) and CI (JSON, SARIF, GitHub)."""

from __future__ import annotations

import argparse
from pathlib import Path

from gate.commands.common import now
from gate.commands.common import timestamp as parse_time
from gate.decision import ExitCode
from gate.policy.lint import LintOptions, lint_paths
from gate.report.lint import LintFormat, render

HELP = "check policy files: schema, CEL, regexes, expiring exceptions, signers that can never match"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, metavar="POLICY", help="policy files or directories")
    parser.add_argument("--format", choices=[f.value for f in LintFormat], default=LintFormat.TEXT.value)
    parser.add_argument("--strict", action="store_true", help="fail on warnings too")
    parser.add_argument("--now", type=parse_time, help="judge exception expiry as of this time (ISO 8601)")


def run(args: argparse.Namespace) -> int:
    options = LintOptions(now=now(args))
    findings = lint_paths(args.paths, options)
    print(render(findings, LintFormat(args.format)))
    if any(f.code == "file" and f.is_error for f in findings):
        return int(ExitCode.USAGE)  # an input could not be read at all: nothing was linted
    failing = [f for f in findings if f.is_error or args.strict]
    return int(ExitCode.DENIED) if failing else int(ExitCode.ALLOWED)
