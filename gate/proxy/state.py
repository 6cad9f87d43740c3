"""The state every blueprint of one app shares: `Settings` (what `gate serve` was told, with the parsers of
its options), `Gate` (policies, evaluator, store, audit log, metrics, HTTP session, clock) and `gate_state()`,
the `Gate` of the app handling the current request. Blueprints and services import this module, never
`gate.proxy.app` (which imports them)."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests
from flask import current_app

from gate.evaluate import Evaluator, Unmatched, policy_digest
from gate.policy.compile import CompiledPolicy
from gate.proxy.audit import AuditLog
from gate.proxy.cache import Store
from gate.proxy.metrics import Metrics
from gate.redact import Credential, OriginAuth, redact_text, split_credentials
from gate.sources.conda_channel import MAX_REPODATA_BYTES
from gate.sources.hosts import HostPolicy, parse_host
from gate.sources.http import MAX_FILE_BYTES, MAX_PAGE_BYTES
from gate.sources.pypi import DEFAULT_UPSTREAM
from gate.verify.sigstore import BundleVerifier, default_trusted_root_path

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

    def page_root(self, request_root: str) -> tuple[str, bool]:
        """(the URL root rendered pages link under, whether a page rendered for it may be cached): the
        configured `public_url`, else `request_root` (the request's own URL root), cached for the first
        MAX_ROOTS roots only (the Host header is the client's to choose)."""
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/") + "/", True
        with self._lock:
            if request_root not in self._roots and len(self._roots) < MAX_ROOTS:
                self._roots.add(request_root)
            return request_root, request_root in self._roots

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
