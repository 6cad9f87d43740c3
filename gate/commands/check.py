"""`gate check`: decide files against policies before installing them: local files (a wheel, an sdist, a
conda package, a wheelhouse), a pip installation report, a pylock.toml, or a requirements file."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from gate.commands.common import (
    add_osv_option,
    add_policy_option,
    add_release_option,
    add_unmatched_option,
    allowed_host,
    now,
    osv_lookup,
    policies,
    timestamp,
)
from gate.commands.progress import progress_bar
from gate.decision import Decision, exit_code
from gate.errors import UsageError
from gate.evaluate import Evaluator, Unmatched, require_policies, unidentified
from gate.facts import Facts, Unidentified
from gate.report.check import check_sarif, json_report, summary_table, text_report
from gate.sources.filenames import is_distribution_filename
from gate.sources.local import LocalOptions, UnidentifiedFileError, expand_paths, local_facts
from gate.sources.pylock import is_pylock, read_pylock
from gate.verify.api import BundleVerifier

if TYPE_CHECKING:
    from gate.preinstall.check import Checked
    from gate.sources.planned import PlannedFile
    from gate.verify.rekor_set import EntryLookup

HELP = "check distribution files against policies before installing them"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths", nargs="*", type=Path, metavar="PATH",
        help="files, directories of files, conda explicit environment files (@EXPLICIT), or pylock.toml files",
    )
    parser.add_argument("--pip-report", action="append", type=Path, default=[], metavar="FILE",
                        help="the JSON of `pip install --dry-run --report FILE` (repeatable)")
    parser.add_argument("-r", "--requirement", action="append", type=Path, default=[], metavar="FILE",
                        help="resolve a requirements file with pip's own resolver, then check what it would install")
    parser.add_argument("--index-url", metavar="URL",
                        help="simple index the planned files come from (default: https://pypi.org/simple/)")
    add_policy_option(parser)
    add_unmatched_option(parser)
    add_osv_option(parser)
    parser.add_argument(
        "--attestation", action="append", type=Path, default=[], metavar="FILE",
        help="evidence for the files: PEP 740 attestation/provenance, Sigstore or cosign bundle, SLSA *.intoto.jsonl, "
        "a .sig (read with the .crt beside it), conda .sigs (repeatable)",
    )
    parser.add_argument("--trusted-root", type=Path, help="Sigstore trusted_root.json (default: production)")
    parser.add_argument(
        "--rekor-url", metavar="URL",
        help="look up the Rekor entry of evidence that has none (plain DSSE, bare .sig + .crt) in this transparency "
        "log, as slsa-verifier and cosign do (off by default: such evidence is unverifiable)",
    )
    parser.add_argument("--uploaded", type=timestamp, help="upload time of the files (ISO 8601)")
    parser.add_argument("--channel", help="conda channel URL the packages are served from (for targetChannel)")
    parser.add_argument(
        "--allow-host", action="append", type=allowed_host, default=[], metavar="HOST[:PORT]",
        help="let an @EXPLICIT environment's packages come from HOST (port default 443; repeatable) even on an "
        "internal address; with --channel, only its host and these are fetched from",
    )
    add_release_option(parser, "planned files (pip reports, requirements, pylock)")
    parser.add_argument("--now", type=timestamp, help="evaluate as of this time (ISO 8601)")
    parser.add_argument("--format", choices=("text", "json", "sarif"), default="text")


def _facts(path: Path, options: LocalOptions, allow_hosts: list[tuple[str, int]]) -> list[Facts | Unidentified]:
    """One file's facts, or every package's of a conda explicit environment file (`@EXPLICIT`); a file
    gate cannot name is `Unidentified` (denied, with the reason)."""
    if not is_distribution_filename(path.name):  # (a distribution file is never an explicit environment)
        # the explicit environment's reader (it downloads its packages: the HTTP client) only for other files
        from gate.sources.conda_explicit import explicit_facts, is_explicit_env  # noqa: PLC0415

        if is_explicit_env(path):
            return list(explicit_facts(path, options, allow_hosts=allow_hosts))
    try:
        return [local_facts(path, options)]
    except UnidentifiedFileError as err:
        return [err.file]


def _decide(facts: Facts | Unidentified, evaluator: Evaluator, when: dt.datetime) -> Decision:
    if isinstance(facts, Unidentified):
        return unidentified(facts)
    return evaluator.judge(facts, when).decision


def run(args: argparse.Namespace) -> int:
    if not (args.paths or args.pip_report or args.requirement):
        raise UsageError("nothing to check: give files, a pylock.toml, --pip-report or -r")
    compiled = policies(args)
    require_policies(compiled, args.policy)
    unmatched: Unmatched = args.unmatched
    evaluator = Evaluator(compiled, unmatched=unmatched)
    reads_attestations = evaluator.reads_attestations
    vulnerabilities = osv_lookup(args)
    rekor = _rekor(args.rekor_url) if args.rekor_url else None  # opted in: look entries up in this log
    options = LocalOptions(
        attestations=tuple(args.attestation),
        uploaded=args.uploaded,
        channel=args.channel,
        # the Sigstore stack is loaded when there is evidence to verify; a --trusted-root given is read now
        verifier=BundleVerifier(args.trusted_root, rekor_lookup=rekor, lazy=args.trusted_root is None),
        reads_attestations=reads_attestations,
        vulnerabilities=vulnerabilities,
    )
    when = now(args)
    locks: list[Path] = []
    locals_: list[Path] = []
    for path in args.paths:
        (locks if is_pylock(path) else locals_).append(path)
    files = list(expand_paths(locals_))
    located: list[tuple[Decision, str | None, int | None]] = []
    with progress_bar(len(files), "checking files") as advance:
        for path in files:
            located += [(_decide(facts, evaluator, when), str(path), None)
                        for facts in _facts(path, options, args.allow_host)]
            advance(path.name)
    planned = _planned(args, locks)
    checked: list[Checked] = []
    if planned:  # the index client and the pre-install checker only for planned files
        from gate.preinstall.check import check_planned  # noqa: PLC0415
        from gate.preinstall.gather import IndexGatherer  # noqa: PLC0415

        releases = ([source for p in compiled for source in p.policy.releases], args.github_releases)
        gatherer = IndexGatherer(args.index_url, options.verifier, reads_attestations=reads_attestations,
                                 vulnerabilities=vulnerabilities, reads_history=evaluator.reads_continuity,
                                 releases=releases)
        with progress_bar(len(planned), "checking planned files") as advance:
            checked = check_planned(planned, compiled, gatherer, when, advance, unmatched=unmatched)
        located += [(c.decision, c.planned.source, c.planned.line) for c in checked]
    decisions = [d for d, _, _ in located]
    notes = [()] * (len(located) - len(checked)) + [c.notes for c in checked]
    if args.format == "json":
        print(json_report(decisions, notes))
    elif args.format == "sarif":
        print(check_sarif(located, notes))
    else:
        print(text_report(decisions))
        if checked:
            print()
            print(summary_table([c.decision for c in checked], [c.notes for c in checked]))
    return exit_code(decisions)


def _rekor(url: str) -> EntryLookup:
    """The transparency-log lookup `--rekor-url` opts into (it loads the Sigstore stack: only then)."""
    from gate.sources.rekor import RekorLookup  # noqa: PLC0415 (sigstore only when asked for)

    return RekorLookup(url)


def _planned(args: argparse.Namespace, locks: list[Path]) -> list[PlannedFile]:
    if not (locks or args.pip_report or args.requirement):
        return []
    # pip reports and requirements (pip's resolver in a subprocess) only when there are some
    from gate.sources.pip_report import planned_from_report, read_report, resolve_requirements  # noqa: PLC0415

    planned = [f for path in locks for f in read_pylock(path)]
    planned += [f for path in args.pip_report for f in read_report(path, args.index_url)]
    for requirements in args.requirement:
        report = resolve_requirements(requirements, args.index_url)
        planned += planned_from_report(report, str(requirements), args.index_url)
    return planned
