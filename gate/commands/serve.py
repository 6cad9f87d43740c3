"""`gate serve`: run the index proxy (a threaded server, or gunicorn with `--workers N`)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication
from werkzeug.serving import run_simple

from gate.commands.common import add_policy_option, add_unmatched_option, allowed_host, byte_size
from gate.errors import UsageError
from gate.evaluate import require_policies
from gate.policy.compile import load_policies
from gate.proxy.app import check_storage, default_blueprints, server_app
from gate.proxy.state import Settings, parse_channel, parse_public_url, trust_root_digest
from gate.sources.conda_channel import MAX_REPODATA_BYTES
from gate.sources.http import MAX_FILE_BYTES, MAX_PAGE_BYTES
from gate.sources.pypi import DEFAULT_UPSTREAM

HELP = "serve a package index that lists and delivers only the files the policies allow"


def configure(parser: argparse.ArgumentParser) -> None:
    add_policy_option(parser)
    add_unmatched_option(parser)
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
    parser.add_argument("--workers", type=int, default=0, help="run under gunicorn with N worker processes")
    parser.add_argument("--threads", type=int, default=8, help="threads per gunicorn worker (default: 8)")


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
        "(default under gunicorn: THREADS - 2, at least 1; else unbounded)",
    )


def public_url(text: str) -> str:
    """`--public-url` (`gate.proxy.state.parse_public_url`, as an argparse type)."""

    try:
        return parse_public_url(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def conda_channel(text: str) -> tuple[str, str]:
    """`NAME=URL` of `--conda-channel`."""

    try:
        return parse_channel(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def settings_from(args: argparse.Namespace) -> Settings:

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
    )


def upstream_slots(args: argparse.Namespace) -> int:
    """`--upstream-slots`, or under gunicorn all threads of a worker but two (kept for health, metrics and
    cached answers); 0 (unbounded) for the threaded server, which has no fixed pool."""
    if args.upstream_slots is not None:
        if args.upstream_slots < 1:
            raise UsageError("--upstream-slots must be at least 1")
        return int(args.upstream_slots)
    return max(args.threads - 2, 1) if args.workers > 0 else 0


class Gunicorn(BaseApplication):  # type: ignore[misc]  # untyped library
    """gunicorn with `--workers` gthread workers, each serving its own `server_app(settings)`."""

    def __init__(self, settings: Settings, args: argparse.Namespace) -> None:
        self.settings = settings
        self.args = args
        super().__init__()

    def load_config(self) -> None:
        args = self.args
        options: dict[str, Any] = {
            "bind": f"{args.host}:{args.port}",
            "workers": args.workers,
            "threads": args.threads,
            "worker_class": "gthread",
            "timeout": max(60, int(args.timeout * 3)),
            "accesslog": None,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        # in each worker: its own SQLite connections and HTTP pool
        return server_app(self.settings)


def check_settings(settings: Settings) -> None:
    """Load the policies and check the channels, the trusted root and the cache directory, without building
    an app (the store and audit log are opened, checked and closed: nothing to carry across gunicorn's
    fork); a mistake is a UsageError or a PolicyError."""
    require_policies(load_policies(list(settings.policies)), settings.policies)
    try:
        default_blueprints(settings)
        trust_root_digest(settings.trusted_root)
        check_storage(settings)
    except ValueError as err:
        raise UsageError(str(err)) from err


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if args.workers > 0:
        check_settings(settings)  # once in the parent, so a mistake fails before forking
        Gunicorn(settings, args).run()
        return 0
    try:
        app = server_app(settings)
    except ValueError as err:
        raise UsageError(str(err)) from err
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    run_simple(args.host, args.port, app, threaded=True, use_reloader=False)
    return 0
