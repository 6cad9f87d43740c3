"""`gate explain PROJECT[==VERSION]`: every file of a project on an index, judged as the proxy judges it,
with the rules each violates, its evidence, when its decision changes, and the newest allowed version."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from packaging.utils import canonicalize_name

from gate.commands.common import (
    add_osv_option,
    add_policy_option,
    add_release_option,
    add_unmatched_option,
    now,
    osv_lookup,
    policies,
    timestamp,
)
from gate.commands.progress import progress_bar
from gate.decision import ExitCode, Verdict
from gate.errors import UsageError
from gate.evaluate import Evaluator, Judgement, Unmatched, require_policies, unidentified
from gate.explain import explain, explanation_text
from gate.facts import Ecosystem, Unidentified
from gate.gather.ports import Uncached
from gate.gather.pypi import PypiFacts, first_rows
from gate.gather.releases import release_evidence_for
from gate.redact import redact
from gate.sources.failure import UpstreamError
from gate.sources.hosts import HostPolicy
from gate.sources.pypi import DEFAULT_UPSTREAM, ProjectNotFoundError, SimpleClient
from gate.verify.api import BundleVerifier

HELP = "explain why each file of a project is allowed or denied, and the newest allowed version"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("project", metavar="PROJECT[==VERSION]", help="a project on the index, optionally one version")
    add_policy_option(parser)
    add_unmatched_option(parser)
    add_osv_option(parser)
    parser.add_argument("--index-url", metavar="URL", default=DEFAULT_UPSTREAM,
                        help="simple index to ask (default: https://pypi.org/simple/)")
    parser.add_argument("--trusted-root", type=Path, help="Sigstore trusted_root.json (default: production)")
    add_release_option(parser, "the project's files")
    parser.add_argument("--now", type=timestamp, help="explain as of this time (ISO 8601)")
    parser.add_argument("--format", choices=("text", "json"), default="text")


def _requirement(text: str) -> tuple[str, str | None]:
    """`name` or `name==version`; UsageError otherwise."""
    name, sep, version = text.partition("==")
    if not name.strip() or (sep and not version.strip()) or any(c in name for c in "<>=!~;[ @"):
        raise UsageError(f"expected PROJECT or PROJECT==VERSION, got {text!r}")
    return canonicalize_name(name.strip()), version.strip() or None


def run(args: argparse.Namespace) -> int:
    project, version = _requirement(args.project)
    compiled = policies(args)
    require_policies(compiled, args.policy)
    unmatched: Unmatched = args.unmatched
    evaluator = Evaluator(compiled, unmatched=unmatched)
    vulnerabilities = osv_lookup(args)
    client = SimpleClient(args.index_url, hosts=HostPolicy.for_upstreams([args.index_url]))
    when = now(args)
    try:
        page = client.project(project).page
    except ProjectNotFoundError as err:
        raise UsageError(str(err)) from err
    except UpstreamError as err:
        raise UsageError(f"cannot ask {client.base_url}: {err}") from err
    assert page is not None  # no validators were sent, so no 304
    cache = Uncached(BundleVerifier(args.trusted_root))
    sources = [source for p in compiled for source in p.policy.releases]
    releases = release_evidence_for(sources, args.github_releases, client.timeout, cache)
    service = PypiFacts(client.base_url, client.fetch_provenance, cache, evaluator.reads_attestations,
                        vulnerabilities, reads_history=evaluator.reads_continuity, releases=releases)
    rows, duplicates = first_rows(page)
    judged = []
    with progress_bar(len(rows), f"judging {page.name}") as advance:
        for row in rows:
            facts, _ = service.row(page, row, when, duplicates)
            judged.append(Judgement(unidentified(facts), None) if isinstance(facts, Unidentified)
                          else evaluator.judge(facts, when))
            advance(row.filename)
    explanation = explain(Ecosystem.PYPI.value, page.name, redact(client.base_url), judged, now=when,
                          rejudge=evaluator.judge, version=version)
    text = json.dumps(explanation.to_json(), indent=2) if args.format == "json" else explanation_text(explanation)
    sys.stdout.write(text + "\n")
    return ExitCode.ALLOWED if explanation.verdict is Verdict.ALLOW else ExitCode.DENIED
