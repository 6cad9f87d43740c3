"""Argument types and options shared by several subcommands."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from urllib.parse import urlsplit

from gate.evaluate import Unmatched
from gate.facts import parse_time
from gate.gather.ports import VulnerabilityLookup, no_vulnerabilities
from gate.gather.releases import DEFAULT_RELEASE_HOST
from gate.policy.compile import CompiledPolicy, load_policies
from gate.redact import redact
from gate.sources.hosts import parse_host


def timestamp(text: str) -> dt.datetime:
    """An ISO 8601 time for --now/--uploaded (`gate.facts.parse_time`, as an argparse type)."""
    try:
        return parse_time(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from err


def byte_size(text: str) -> int:
    """`4096`, `512K`, `100M`, `4G` (powers of 1024) as a number of bytes."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    number, unit = (text[:-1], units[text[-1].upper()]) if text[-1:].upper() in units else (text, 1)
    if not number.isdigit() or int(number) == 0:
        raise argparse.ArgumentTypeError(f"expected a size such as 4096, 512K, 100M or 4G, got {text!r}")
    return int(number) * unit


def allowed_host(text: str) -> tuple[str, int]:
    """`HOST[:PORT]` of `--allow-host`."""
    try:
        return parse_host(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def add_policy_option(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    parser.add_argument(
        "--policy",
        "-p",
        action="append",
        type=Path,
        required=required,
        metavar="FILE|DIR",
        help="policy file or directory of *.yaml policies (repeatable)",
    )


def policies(args: argparse.Namespace) -> list[CompiledPolicy]:
    paths: list[Path] = args.policy
    return load_policies(paths)


def now(args: argparse.Namespace) -> dt.datetime:
    value: dt.datetime | None = getattr(args, "now", None)
    return value or dt.datetime.now(dt.UTC)


def add_unmatched_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--unmatched",
        type=Unmatched,
        choices=list(Unmatched),
        default=Unmatched.DENY,
        help="what a file no policy matches gets: deny (default), warn (allow, but report it) or allow",
    )


def add_osv_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--osv", action="append", type=Path, default=[], metavar="ZIP|DIR",
        help="OSV data: the bulk export zip (PyPI/all.zip) or a directory tree of OSV JSON records (repeatable); "
        "policies judge the records that apply with spec.vulnerabilities or a rule over `vulnerabilities`",
    )


def osv_lookup(args: argparse.Namespace) -> VulnerabilityLookup:
    """The lookup of the OSV data given with --osv (loaded now: every problem is an OsvError, exit 2), or no
    records at all without it."""
    paths: list[Path] = args.osv
    if not paths:
        return no_vulnerabilities
    from gate.sources.osv import OsvDatabase  # noqa: PLC0415 (the OSV reader, zip and CVSS only with --osv)

    return OsvDatabase.load(paths).lookup


def release_host(text: str) -> str:
    """`--github-releases`: an http(s) URL without credentials or query (argparse type)."""
    parts = urlsplit(text)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.username or parts.query:
        # (a URL with credentials is refused without echoing them into a CI log)
        raise argparse.ArgumentTypeError(f"expected an http(s) URL of a release host, got {redact(text)!r}")
    return text


def add_release_option(parser: argparse.ArgumentParser, for_what: str) -> None:
    """`--github-releases URL`: where release provenance a policy names (`spec.evidence.githubReleases`) is
    fetched from, for `for_what`."""
    parser.add_argument(
        "--github-releases", type=release_host, default=DEFAULT_RELEASE_HOST, metavar="URL",
        help=f"where release provenance a policy's evidence.githubReleases names is fetched from for {for_what} "
        "(default: %(default)s)",
    )
