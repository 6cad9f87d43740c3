"""The Flask app factory and the state every blueprint shares (`Gate`, reached with `gate_state()`)."""

from __future__ import annotations

import datetime as dt
import gc
import hashlib
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import requests
from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.wsgi import ClosingIterator

from gate.evaluate import Evaluator, Unmatched, policy_digest, require_policies
from gate.policy.compile import CompiledPolicy, load_policies
from gate.proxy.audit import AuditLog
from gate.proxy.cache import Store
from gate.proxy.metrics import Metrics
from gate.redact import Credential, OriginAuth, redact_text, split_credentials
from gate.sources.conda_channel import MAX_REPODATA_BYTES
from gate.sources.deadline import deadline_session
from gate.sources.hosts import HostPolicy, parse_host
from gate.sources.http import MAX_FILE_BYTES, MAX_PAGE_BYTES
from gate.sources.pypi import DEFAULT_UPSTREAM
from gate.verify.sigstore import BundleVerifier, default_trusted_root_path

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)
EXTENSION = "gate"
MAX_ROOTS = 8  # distinct request roots whose rendered pages are cached without --public-url


@dataclass(frozen=True)
class Settings:
    """What `gate serve` was told; everything else is derived in `create_app`."""

    policies: tuple[Path, ...]
    upstream: str = DEFAULT_UPSTREAM
    cache_dir: Path | None = None  # None: an in-memory store, metrics per process, audit to the log
    audit_log: Path | None = None  # default: <cache_dir>/audit.jsonl
    trusted_root: Path | None = None  # Sigstore trusted_root.json; default: production, shipped offline
    audit_only: bool = False  # UNSAFE for enforcement: list and serve denied files, only log the decisions
    timeout: float = 20.0  # seconds for one upstream request
    provenance_workers: int = 8  # parallel provenance fetches for one page
    conda_channels: tuple[tuple[str, str], ...] = ()  # (name, upstream channel URL): served at /conda/<name>/
    unmatched: Unmatched = Unmatched.DENY  # what a file no policy matches gets (warn, allow: only when asked)
    max_spool: int = MAX_FILE_BYTES  # bytes: the largest file of unknown size (none on the page, no Content-Length)
    audit_required: bool = False  # compliance mode: refuse to serve a file (503) whose audit record was lost
    allow_hosts: tuple[tuple[str, int], ...] = ()  # fetch files and evidence from these too (`--allow-host`)
    max_page_bytes: int = MAX_PAGE_BYTES  # a decoded upstream project page
    max_repodata_bytes: int = MAX_REPODATA_BYTES  # a decoded upstream repodata
    public_url: str | None = None  # where clients reach gate; None: each request's own host (bounded cache)
    upstream_slots: int = 0  # requests per process that may wait on upstream at once (0: unbounded)
    # userinfo taken out of `upstream` and the channel URLs, sent only to their own origins
    credentials: tuple[Credential, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        upstream, found = split_credentials(self.upstream)
        credentials = [found] if found else []
        channels = []
        for name, url in self.conda_channels:
            clean, found = split_credentials(url)
            channels.append((name, clean))
            credentials += [found] if found else []
        object.__setattr__(self, "upstream", upstream)
        object.__setattr__(self, "conda_channels", tuple(channels))
        object.__setattr__(self, "credentials", (*self.credentials, *credentials))

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Settings from `GATE_POLICY` (os.pathsep-separated), `GATE_UPSTREAM`, `GATE_CACHE_DIR`,
        `GATE_AUDIT_LOG`, `GATE_TRUSTED_ROOT`, `GATE_AUDIT_ONLY=1`, `GATE_TIMEOUT`, `GATE_CONDA_CHANNELS`
        (whitespace-separated `NAME=URL`), `GATE_UNMATCHED` (deny, warn, allow), `GATE_MAX_SPOOL` (bytes),
        `GATE_AUDIT_REQUIRED=1`, `GATE_ALLOW_HOSTS` (whitespace-separated `HOST[:PORT]`), `GATE_MAX_PAGE_BYTES`,
        `GATE_MAX_REPODATA_BYTES`, `GATE_PUBLIC_URL` and `GATE_UPSTREAM_SLOTS`, for a bare gunicorn; raise
        ValueError for a value that is not understood."""
        env = os.environ if environ is None else environ

        def path(name: str) -> Path | None:
            return Path(env[name]) if env.get(name) else None

        return cls(
            policies=tuple(Path(p) for p in env.get("GATE_POLICY", "").split(os.pathsep) if p),
            upstream=env.get("GATE_UPSTREAM", DEFAULT_UPSTREAM),
            cache_dir=path("GATE_CACHE_DIR"),
            audit_log=path("GATE_AUDIT_LOG"),
            trusted_root=path("GATE_TRUSTED_ROOT"),
            audit_only=env.get("GATE_AUDIT_ONLY", "") in ("1", "true", "yes"),
            timeout=float(env.get("GATE_TIMEOUT", "20")),
            conda_channels=tuple(parse_channel(c) for c in env.get("GATE_CONDA_CHANNELS", "").split()),
            unmatched=parse_unmatched(env.get("GATE_UNMATCHED") or Unmatched.DENY.value),
            max_spool=int(env.get("GATE_MAX_SPOOL", str(MAX_FILE_BYTES))),
            audit_required=env.get("GATE_AUDIT_REQUIRED", "") in ("1", "true", "yes"),
            allow_hosts=tuple(parse_host(h) for h in env.get("GATE_ALLOW_HOSTS", "").split()),
            max_page_bytes=int(env.get("GATE_MAX_PAGE_BYTES", MAX_PAGE_BYTES)),
            max_repodata_bytes=int(env.get("GATE_MAX_REPODATA_BYTES", MAX_REPODATA_BYTES)),
            public_url=parse_public_url(env["GATE_PUBLIC_URL"]) if env.get("GATE_PUBLIC_URL") else None,
            upstream_slots=parse_slots(env.get("GATE_UPSTREAM_SLOTS", "0")),
        )


def parse_unmatched(text: str) -> Unmatched:
    """`deny`, `warn` or `allow` (`GATE_UNMATCHED`); raise ValueError otherwise."""
    try:
        return Unmatched(text.strip().lower())
    except ValueError:
        choices = ", ".join(m.value for m in Unmatched)
        raise ValueError(f"GATE_UNMATCHED must be one of {choices}, got {text!r}") from None


def parse_public_url(text: str) -> str:
    """Where clients reach gate (`--public-url`, `GATE_PUBLIC_URL`): an http(s) URL without credentials, query
    or fragment (pages link there); raise ValueError otherwise."""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.query or parts.fragment:
        raise ValueError(f"expected an http(s) URL such as https://gate.example/, got {redact_text(text)!r}")
    return text


def parse_slots(text: str) -> int:
    """`GATE_UPSTREAM_SLOTS`: 0 (unbounded) or more; raise ValueError otherwise."""
    if not text.strip().isdigit():
        raise ValueError(f"GATE_UPSTREAM_SLOTS must be 0 (unbounded) or a positive count, got {text!r}")
    return int(text)


def parse_channel(text: str) -> tuple[str, str]:
    """`NAME=URL` of a conda channel to serve; raise ValueError otherwise."""
    name, _, url = text.partition("=")
    if not name or not url.startswith(("http://", "https://")):
        raise ValueError(f"expected NAME=URL with an http(s) URL, got {redact_text(text)!r}")
    return name, url.rstrip("/")


def default_blueprints(settings: Settings) -> tuple[Blueprint, ...]:
    """PyPI always; conda when channels are configured (raises ValueError for a bad channel name)."""
    from gate.proxy.conda import conda_blueprint  # noqa: PLC0415 (the blueprints import this module)
    from gate.proxy.pypi import pypi  # noqa: PLC0415

    return (pypi, conda_blueprint(dict(settings.conda_channels))) if settings.conda_channels else (pypi,)


def trust_root_digest(trusted_root: Path | None) -> str:
    """The sha256 of the Sigstore trusted root verification uses (default: the production root shipped in
    `sigstore`); raise ValueError when it cannot be read."""
    path = trusted_root or default_trusted_root_path()
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as err:
        raise ValueError(f"cannot read the Sigstore trusted root {path}: {err}") from err


@dataclass
class Gate:
    """Shared by every blueprint of one app: policies, evaluator, store, audit log, metrics, HTTP session."""

    settings: Settings
    policies: list[CompiledPolicy]
    store: Store
    audit: AuditLog
    metrics: Metrics
    session: requests.Session
    hosts: HostPolicy  # where files and evidence may be fetched from
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))
    evaluator: Evaluator = field(init=False)
    policy_digest: str = field(init=False)
    trust_digest: str = field(init=False)  # of the trusted root: verification outcomes depend on it
    decision_digest: str = field(init=False)  # of the policies and the trusted root: decisions depend on both
    view_digest: str = field(init=False)  # and of `audit_only`: what a filtered listing depends on
    slots: threading.BoundedSemaphore | None = field(init=False)  # upstream work in progress (None: unbounded)
    _verifier: BundleVerifier | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _roots: set[str] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        if self.settings.credentials:
            self.session.auth = OriginAuth(self.settings.credentials)
        slots = self.settings.upstream_slots
        self.slots = threading.BoundedSemaphore(slots) if slots > 0 else None
        self.evaluator = Evaluator(self.policies, unmatched=self.settings.unmatched)
        if self.settings.unmatched is not Unmatched.DENY:  # said once per process, where operators look
            log.warning("unmatched %s: files no policy matches are served", self.settings.unmatched.value)
        self.policy_digest = policy_digest(self.policies, self.settings.unmatched)
        self.trust_digest = trust_root_digest(self.settings.trusted_root)
        self.decision_digest = hashlib.sha256(f"{self.policy_digest}|{self.trust_digest}".encode()).hexdigest()
        self.view_digest = hashlib.sha256(f"{self.decision_digest}|{self.settings.audit_only}".encode()).hexdigest()

    def now(self) -> dt.datetime:
        return self.clock()

    def page_root(self) -> tuple[str, bool]:
        """(the URL root rendered pages link under, whether a page rendered for it may be cached): the
        configured `public_url`, else the request's own root, cached for the first MAX_ROOTS roots only (the
        Host header is the client's to choose)."""
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/") + "/", True
        root = request.url_root
        with self._lock:
            if root not in self._roots and len(self._roots) < MAX_ROOTS:
                self._roots.add(root)
            return root, root in self._roots

    @property
    def verifier(self) -> BundleVerifier:
        """The Sigstore verifier, loaded on first use (only policies that read attestations need it)."""
        with self._lock:
            if self._verifier is None:
                self._verifier = BundleVerifier(self.settings.trusted_root)
            return self._verifier


def gate_state() -> Gate:
    """The `Gate` of the app handling the current request."""
    state: Gate = current_app.extensions[EXTENSION]
    return state


core = Blueprint("core", __name__)


class UpstreamSlots:
    """WSGI middleware: a request that may wait on upstream (any path but `/-/...`) holds one of the
    process's `slots` until the server closes its response (after a streamed body); with none free it is
    answered 503 at once, so threads stay free for `/-/health`, `/-/metrics` and cached answers."""

    def __init__(self, app: WSGIApplication, state: Gate) -> None:
        self.app = app
        self.state = state

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        slots = self.state.slots
        if slots is None or str(environ.get("PATH_INFO", "")).startswith("/-/"):
            return self.app(environ, start_response)
        if not slots.acquire(blocking=False):
            self.state.metrics.inc("gate_busy_total")
            busy = Response("gate: busy waiting on upstream; try again\n", status=503, mimetype="text/plain",
                            headers={"Retry-After": "5", "Cache-Control": "no-store"})
            return busy(environ, start_response)
        release = _once(slots.release)
        try:
            return ClosingIterator(self.app(environ, start_response), release)
        except BaseException:
            release()
            raise


def _once(action: Callable[[], None]) -> Callable[[], None]:
    lock, done = threading.Lock(), [False]

    def run() -> None:
        with lock:
            if done[0]:
                return
            done[0] = True
        action()

    return run


@core.get("/-/health")
def health() -> Response:
    """`ok`; `degraded` while audit records are being lost (503 in compliance mode, which then refuses
    downloads), with the count of records lost in this process and the last error."""
    state = gate_state()
    audit = state.audit
    body: dict[str, object] = {"status": "degraded" if audit.failing else "ok", "policies": len(state.policies),
                               "policy_digest": state.policy_digest}
    if audit.failures:
        body |= {"audit_failures": audit.failures, "audit_error": audit.error}
    status = 503 if audit.failing and state.settings.audit_required else 200
    return Response(json.dumps(body) + "\n", status=status, mimetype="application/json")


@core.get("/-/metrics")
def metrics() -> Response:
    return Response(gate_state().metrics.render(), mimetype="text/plain; version=0.0.4")


def open_storage(settings: Settings) -> tuple[Store, AuditLog, Metrics]:
    """The store, audit log and metrics in the cache directory; a ValueError naming the directory (or the
    audit log) and the reason when they cannot be used (read-only, not a directory, a corrupt database)."""
    cache_dir = settings.cache_dir
    audit_path = settings.audit_log or (cache_dir / "audit.jsonl" if cache_dir else None)
    where = f"the cache directory {cache_dir}"
    try:
        store = Store(cache_dir / "cache.sqlite3" if cache_dir else None)
        metrics = Metrics(cache_dir / "metrics" if cache_dir else None)
        where = f"the audit log {audit_path}"
        audit = AuditLog(audit_path, metrics)
    except (OSError, sqlite3.Error) as err:
        raise ValueError(f"cannot use {where}: {err}") from err
    return store, audit, metrics


def check_storage(settings: Settings) -> None:
    """`open_storage`, then close what it opened (before gunicorn forks); ValueError as there."""
    store, audit, _ = open_storage(settings)
    store.close()
    audit.close()


def create_app(
    settings: Settings,
    *,
    blueprints: tuple[Blueprint, ...] | None = None,
    session: requests.Session | None = None,
    clock: Callable[[], dt.datetime] | None = None,
) -> Flask:
    """The proxy app: the core routes plus one blueprint per ecosystem (default: `default_blueprints`)."""
    policies = load_policies(list(settings.policies))
    require_policies(policies, settings.policies)  # zero policies: refuse to start (nothing would be governed)
    store, audit, metrics = open_storage(settings)
    state = Gate(
        settings=settings,
        policies=policies,
        store=store,
        audit=audit,
        metrics=metrics,
        session=session or deadline_session(max(settings.provenance_workers, 10)),
        hosts=HostPolicy.for_upstreams(
            [settings.upstream, *(url for _, url in settings.conda_channels)], settings.allow_hosts
        ),
    )
    if clock is not None:
        state.clock = clock
    app = Flask("gate.proxy")
    app.extensions[EXTENSION] = state
    app.wsgi_app = UpstreamSlots(app.wsgi_app, state)  # type: ignore[method-assign]
    app.register_blueprint(core)
    for blueprint in blueprints if blueprints is not None else default_blueprints(settings):
        app.register_blueprint(blueprint)

    @app.after_request
    def count(response: Response) -> Response:
        endpoint = request.endpoint or "unmatched"
        state.metrics.inc("gate_requests_total", endpoint=endpoint, status=str(response.status_code))
        state.metrics.flush()
        return response

    return app


def server_app(settings: Settings) -> Flask:
    """`create_app` for a serving process (`gate serve`, each gunicorn worker, the WSGI entry point).

    Everything made so far (modules, policies, trust root: hundreds of thousands of objects that live as
    long as the process) is moved out of the garbage collector's sight with `gc.freeze()`, so the full
    collections a cold page's allocations set off do not walk it again each time (tens of ms each)."""
    app = create_app(settings)
    gc.collect()
    gc.freeze()
    return app
