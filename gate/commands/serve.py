"""`gate serve`: run the index proxy under gunicorn (`gate.proxy.server`).

The server is imported when `gate serve` runs, not when `gate` starts: Flask and gunicorn are a few hundred
milliseconds of imports that `gate check` and the policy tools never need. That deferred import is the one
import inside a function in gate/ (tests/test_imports.py counts it in the import graph all the same)."""

from __future__ import annotations

import argparse
import datetime as dt
import os
from pathlib import Path

from gate.commands.common import add_osv_option, add_policy_option, add_unmatched_option, allowed_host, byte_size
from gate.errors import UsageError
from gate.policy.duration import parse_duration
from gate.proxy.settings import (
    DEFAULT_INDEX_TTL,
    Network,
    Settings,
    check_cache_secret,
    check_status_token,
    env_cache_secret,
    parse_audit_url,
    parse_cache_url,
    parse_channel,
    parse_network,
    parse_public_url,
    parse_status_allow,
    parse_ttl,
)
from gate.sources.conda_channel import MAX_REPODATA_BYTES
from gate.sources.http import MAX_FILE_BYTES, MAX_PAGE_BYTES
from gate.sources.pypi import DEFAULT_UPSTREAM

HELP = "serve a package index that lists and delivers only the files the policies allow"


def configure(parser: argparse.ArgumentParser) -> None:
    add_policy_option(parser)
    add_unmatched_option(parser)
    add_osv_option(parser)
    parser.add_argument(
        "--osv-max-age", type=duration, metavar="AGE",
        help="OSV data whose newest record is older than AGE (2d, 36h) is stale: pages and files are answered 503 "
        "(fail closed) until it is updated (default: reported in /-/health only)",
    )
    parser.add_argument(
        "--osv-interval", type=float, default=30.0, metavar="SECONDS",
        help="how often the --osv files are checked for changes and reloaded (default: 30)",
    )
    parser.add_argument("--upstream", default=DEFAULT_UPSTREAM, help="upstream simple index URL (default: %(default)s)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (default: %(default)s)")
    parser.add_argument("--cache-dir", type=Path, help="directory for the SQLite cache, audit log and metrics")
    parser.add_argument("--audit-log", type=Path, help="JSON-lines audit log (default: CACHE_DIR/audit.jsonl)")
    parser.add_argument("--trusted-root", type=Path, help="Sigstore trusted_root.json (default: production)")
    parser.add_argument(
        "--timeout", type=float, default=20.0,
        help="total seconds for one upstream request, however slowly it sends (default: 20; a file also gets "
        "its length at 256 KiB/s)",
    )
    parser.add_argument(
        "--index-ttl", type=index_ttl, default=DEFAULT_INDEX_TTL, metavar="SECONDS",
        help="how long an upstream project page is reused when the upstream states no freshness (no "
        "Cache-Control max-age, no Expires); then it is revalidated (ETag, Last-Modified) (default: 600; "
        "0: ask on every request)",
    )
    parser.add_argument(
        "--unsafe-audit-only", action="store_true",
        help="list and serve denied files too, only logging what would be denied (does not enforce)",
    )
    parser.add_argument(
        "--conda-channel", action="append", type=conda_channel, default=[], metavar="NAME=URL",
        help="also serve the conda channel at URL as /conda/NAME/ (repeatable)",
    )
    parser.add_argument(
        "--audit-required", action="store_true",
        help="compliance mode: refuse to serve a file (503) whose audit record cannot be written "
        "(default: serve it, count the lost record in gate_audit_failures_total and report health degraded)",
    )
    parser.add_argument(
        "--max-spool-size", type=byte_size, default=None, metavar="SIZE",
        help="largest file of unknown size (none on the page, no Content-Length) gate buffers to check it; "
        "bytes, or with K, M, G (default: 1G)",
    )
    add_limit_options(parser)
    add_status_options(parser)
    parser.add_argument(
        "--github-releases", type=public_url, default="https://github.com", metavar="URL",
        help="the host release provenance named by a policy's evidence.githubReleases is fetched from "
        "(default: %(default)s)",
    )
    add_fleet_options(parser)
    parser.add_argument("--workers", type=int, default=1, help="gunicorn worker processes (default: 1)")
    parser.add_argument("--threads", type=int, default=8, help="threads per gunicorn worker (default: 8)")
    parser.add_argument(
        "--client-timeout", type=float, default=60.0, metavar="SECONDS",
        help="disconnect a client that neither sends nor reads for this long (a stalled reader would hold a "
        "thread; default: %(default)s)",
    )


def add_limit_options(parser: argparse.ArgumentParser) -> None:
    """Where gate fetches from and how much it takes (docs/proxy.md, "Threat model")."""
    parser.add_argument(
        "--allow-host", action="append", type=allowed_host, default=[], metavar="HOST[:PORT]",
        help="also fetch files and evidence from HOST (port default 443; repeatable); the upstreams' own hosts "
        "and their known file hosts are always allowed",
    )
    parser.add_argument(
        "--max-page-bytes", type=byte_size, default=MAX_PAGE_BYTES, metavar="SIZE",
        help=f"largest decoded upstream project page: bytes, or with K, M, G (default: {MAX_PAGE_BYTES})",
    )
    parser.add_argument(
        "--max-repodata-bytes", type=byte_size, default=MAX_REPODATA_BYTES, metavar="SIZE",
        help=f"largest decoded upstream conda repodata: bytes, or with K, M, G (default: {MAX_REPODATA_BYTES})",
    )
    parser.add_argument(
        "--public-url", type=public_url,
        help="the http(s) URL clients reach gate at (pages link there, whatever Host a client sends)",
    )
    parser.add_argument(
        "--upstream-slots", type=int,
        help="requests per worker that may wait on upstream at once, the rest answered 503 at once "
        "(default: THREADS - 2, at least 1)",
    )


def add_status_options(parser: argparse.ArgumentParser) -> None:
    """Who may read the status page `/-/` (docs/proxy.md, "Status page")."""
    parser.add_argument(
        "--status-allow", action="append", type=status_network, default=[], metavar="ADDRESS[/BITS]|none",
        help="clients (by socket address) that may read the status page /-/ (repeatable; default: loopback "
        "only; none: no address, only --status-token-file)",
    )
    parser.add_argument(
        "--status-token-file", type=status_token, metavar="FILE",
        help="a file holding a token (16+ characters) that opens the status page to any client sending "
        "'Authorization: Bearer TOKEN'",
    )


def add_fleet_options(parser: argparse.ArgumentParser) -> None:
    """Shared state for several replicas (docs/deploy.md): the store and the audit trail."""
    parser.add_argument(
        "--cache-url", type=cache_url, default=os.environ.get("GATE_CACHE_URL") or None, metavar="URL",
        help="keep fetched evidence, verifications and pages in redis://HOST[:PORT][/DB] or postgresql://... shared "
        "by every replica (default: $GATE_CACHE_URL, else SQLite in --cache-dir); keep its password in the "
        "environment, not on the command line",
    )
    parser.add_argument(
        "--cache-secret-file", type=cache_secret, default=None, metavar="FILE",
        help="a file holding the secret (16+ characters, the same on every replica) that seals shared cache "
        "entries; required with --cache-url (default: $GATE_CACHE_SECRET)",
    )
    parser.add_argument(
        "--audit-url", type=audit_url, default=os.environ.get("GATE_AUDIT_URL") or None, metavar="stdout|URL",
        help="write the audit trail to standard output or to the table gate_audit at postgresql://... (every "
        "replica's status page then shows every replica's denials; default: $GATE_AUDIT_URL, else --audit-log)",
    )


def cache_url(text: str) -> str:
    """`--cache-url` (`gate.proxy.settings.parse_cache_url`, as an argparse type)."""
    try:
        return parse_cache_url(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def audit_url(text: str) -> str:
    """`--audit-url` (`gate.proxy.settings.parse_audit_url`, as an argparse type)."""
    try:
        return parse_audit_url(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def cache_secret(path: str) -> bytes:
    """The secret in the file `--cache-secret-file` names (on the command line it would show in `ps`)."""
    try:
        secret = Path(path).read_bytes().strip()
        check_cache_secret(secret)
    except (OSError, ValueError) as err:
        raise argparse.ArgumentTypeError(f"{path}: {err}") from err
    return secret


def status_network(text: str) -> str:
    """One `--status-allow` (`gate.proxy.settings.parse_network`, as an argparse type)."""
    try:
        parse_network(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err
    return text


def status_token(path: str) -> str:
    """The token in the file `--status-token-file` names (a token on the command line would show in `ps`)."""
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
        check_status_token(token)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise argparse.ArgumentTypeError(f"{path}: {err}") from err
    return token


def duration(text: str) -> dt.timedelta:
    """`--osv-max-age` (`gate.policy.duration.parse_duration`, as an argparse type)."""
    try:
        return parse_duration(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def public_url(text: str) -> str:
    """`--public-url` (`gate.proxy.state.parse_public_url`, as an argparse type)."""

    try:
        return parse_public_url(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def index_ttl(text: str) -> float:
    """`--index-ttl` seconds."""
    try:
        return parse_ttl(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def conda_channel(text: str) -> tuple[str, str]:
    """`NAME=URL` of `--conda-channel`."""

    try:
        return parse_channel(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def settings_from(args: argparse.Namespace) -> Settings:
    try:
        return _settings(args)
    except ValueError as err:
        raise UsageError(str(err)) from err


def _settings(args: argparse.Namespace) -> Settings:
    return Settings(
        policies=tuple(args.policy),
        upstream=args.upstream,
        cache_dir=args.cache_dir,
        audit_log=args.audit_log,
        trusted_root=args.trusted_root,
        audit_only=args.unsafe_audit_only,
        timeout=args.timeout,
        conda_channels=tuple(args.conda_channel),
        unmatched=args.unmatched,
        max_spool=args.max_spool_size or MAX_FILE_BYTES,
        audit_required=args.audit_required,
        allow_hosts=tuple(args.allow_host),
        max_page_bytes=args.max_page_bytes,
        max_repodata_bytes=args.max_repodata_bytes,
        public_url=args.public_url,
        upstream_slots=upstream_slots(args),
        status_allow=status_allow(args),
        status_token=args.status_token_file,
        osv=tuple(args.osv),
        osv_max_age=args.osv_max_age,
        osv_interval=args.osv_interval,
        github_releases=args.github_releases,
        cache_url=args.cache_url,
        cache_secret=args.cache_secret_file or env_cache_secret(os.environ),
        audit_url=args.audit_url,
        index_ttl=args.index_ttl,
    )


def status_allow(args: argparse.Namespace) -> tuple[Network, ...]:
    try:
        return parse_status_allow(args.status_allow)
    except ValueError as err:
        raise UsageError(f"--status-allow: {err}") from err


def upstream_slots(args: argparse.Namespace) -> int:
    """`--upstream-slots`, or all threads of a worker but two (kept for health, metrics and cached answers)."""
    if args.upstream_slots is not None:
        if args.upstream_slots < 1:
            raise UsageError("--upstream-slots must be at least 1")
        return int(args.upstream_slots)
    return max(int(args.threads) - 2, 1)


def run(args: argparse.Namespace) -> int:
    if args.workers < 1 or args.threads < 1:
        raise UsageError("--workers and --threads must be at least 1 (gate serves with gunicorn)")
    if not 0.001 <= args.client_timeout <= 86400:
        raise UsageError("--client-timeout must be between 0.001 and 86400 seconds")
    settings = settings_from(args)
    from gate.proxy.server import serve  # noqa: PLC0415 (Flask and gunicorn only for `gate serve`)

    serve(settings, host=args.host, port=args.port, workers=args.workers, threads=args.threads,
          client_timeout=args.client_timeout)
    return 0
