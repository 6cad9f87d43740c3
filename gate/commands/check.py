"""`gate check`: decide local files (a wheel, an sdist, a conda package, a wheelhouse) against policies."""

from __future__ import annotations

import argparse
from pathlib import Path

from gate.commands.common import add_policy_option, now, policies, timestamp
from gate.decision import exit_code, json_report, text_report
from gate.evaluate import evaluate
from gate.sources.local import LocalOptions, expand_paths, local_facts
from gate.verify.sigstore import BundleVerifier

HELP = "check distribution files against policies before installing them"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files or directories of files")
    add_policy_option(parser)
    parser.add_argument(
        "--attestation", action="append", type=Path, default=[], metavar="FILE",
        help="evidence for the files: PEP 740 attestation/provenance, Sigstore bundle, conda .sigs (repeatable)",
    )
    parser.add_argument("--trusted-root", type=Path, help="Sigstore trusted_root.json (default: production)")
    parser.add_argument("--uploaded", type=timestamp, help="upload time of the files (ISO 8601)")
    parser.add_argument("--channel", help="conda channel URL the packages are served from (for targetChannel)")
    parser.add_argument("--now", type=timestamp, help="evaluate as of this time (ISO 8601)")
    parser.add_argument("--format", choices=("text", "json"), default="text")


def run(args: argparse.Namespace) -> int:
    compiled = policies(args)
    options = LocalOptions(
        attestations=tuple(args.attestation),
        uploaded=args.uploaded,
        channel=args.channel,
        verifier=BundleVerifier(args.trusted_root),
    )
    when = now(args)
    decisions = [evaluate(compiled, local_facts(path, options), when) for path in expand_paths(args.paths)]
    print(json_report(decisions) if args.format == "json" else text_report(decisions))
    return exit_code(decisions)
