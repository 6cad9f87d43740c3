"""The state every blueprint of one app shares: `Gate` (its `Settings`, policies, evaluator, store, audit
log, metrics, HTTP session, clock) and `gate_state()`,
the `Gate` of the app handling the current request. Blueprints and services import this module, never
`gate.proxy.app` (which imports them)."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from pathlib import Path

import requests
from flask import current_app

import gate
from gate.evaluate import Evaluator, Unmatched, policy_digest
from gate.policy.compile import CompiledPolicy
from gate.proxy.audit import AuditLog
from gate.proxy.metrics import Metrics
from gate.proxy.osv_data import OsvData
from gate.proxy.settings import Settings
from gate.proxy.stores import Store
from gate.sources.hosts import HostPolicy
from gate.sources.http import OriginAuth
from gate.verify.api import BundleVerifier
from gate.verify.target import default_trusted_root_path

log = logging.getLogger(__name__)
EXTENSION = "gate"
MAX_ROOTS = 8  # distinct request roots whose rendered pages are cached without --public-url


def trust_root_digest(trusted_root: Path | None) -> str:
    """The sha256 of the Sigstore trusted root verification uses (default: the production root shipped in
    `sigstore`); raise ValueError when it cannot be read."""
    path = trusted_root or default_trusted_root_path()
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as err:
        raise ValueError(f"cannot read the Sigstore trusted root {path}: {err}") from err


# The libraries whose behaviour verification and decisions depend on (their versions are in `code_digest`)
DECIDING_LIBRARIES = ("sigstore", "pypi-attestations", "cryptography", "cel-python", "msgspec", "packaging")


@cache
def code_digest() -> str:
    """The sha256 of gate's own code and data (every file of the installed package but bytecode) and of the
    versions of DECIDING_LIBRARIES: what gate verified and decided is cached under it too, so an upgrade (a
    verifier or policy-engine fix, in gate or in sigstore) never serves what an older install judged, in this
    replica or from a store other versions share."""
    root = Path(gate.__file__).parent
    digest = hashlib.sha256()
    for library in DECIDING_LIBRARIES:
        try:
            digest.update(f"{library}=={metadata.version(library)}\0".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{library} absent\0".encode())
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix not in (".pyc", ".pyo")):
        digest.update(f"{path.relative_to(root).as_posix()}\0{path.stat().st_size}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


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
    osv: OsvData | None = None  # the OSV data (`--osv`), reloaded when its files change
    evaluator: Evaluator = field(init=False)
    policy_digest: str = field(init=False)
    trust_digest: str = field(init=False)  # of the trusted root and gate's code: verification outcomes depend on both
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
        # verification outcomes depend on the trusted root and on the code that checked them
        self.trust_digest = hashlib.sha256(
            f"{trust_root_digest(self.settings.trusted_root)}|{code_digest()}".encode()).hexdigest()

    @property
    def decision_digest(self) -> str:
        """Of the policies, the trusted root and the OSV data in use: decisions depend on all three (a reload
        of the OSV data changes it, so nothing cached under older data is served)."""
        osv = "" if self.osv is None else self.osv.digest
        return hashlib.sha256(f"{self.policy_digest}|{self.trust_digest}|{osv}".encode()).hexdigest()

    @property
    def view_digest(self) -> str:
        """And of `audit_only`: what a filtered listing depends on."""
        return hashlib.sha256(f"{self.decision_digest}|{self.settings.audit_only}".encode()).hexdigest()

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
