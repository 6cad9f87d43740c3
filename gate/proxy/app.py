"""The Flask app factory: the core routes (`/-/health`, `/-/metrics`), the storage, and one blueprint per
ecosystem (PyPI always, conda when channels are configured); the state they share is `gate.proxy.state`."""

from __future__ import annotations

import datetime as dt
import gc
import json
import sqlite3
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import requests
from flask import Blueprint, Flask, Response, request
from werkzeug.wsgi import ClosingIterator

from gate.evaluate import require_policies
from gate.policy.compile import load_policies
from gate.proxy.audit import AuditLog, FileSink, LogSink, Sink, StdoutSink
from gate.proxy.conda_paths import is_shard_path
from gate.proxy.conda_routes import conda_blueprint
from gate.proxy.metrics import Metrics
from gate.proxy.osv_data import Loaded, OsvData
from gate.proxy.pypi import SERVICE, pypi_blueprint
from gate.proxy.pypi_warm import WarmPages
from gate.proxy.settings import Settings
from gate.proxy.state import EXTENSION, Gate, gate_state
from gate.proxy.status import status_blueprint
from gate.proxy.stores import Store, audit_table, open_store, where
from gate.sources.deadline import deadline_session
from gate.sources.hosts import HostPolicy

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


def default_blueprints(settings: Settings) -> tuple[Blueprint, ...]:
    """PyPI always; conda when channels are configured (raises ValueError for a bad channel name)."""
    if not settings.conda_channels:
        return (pypi_blueprint(),)
    return pypi_blueprint(), conda_blueprint(dict(settings.conda_channels))


core = Blueprint("core", __name__)


def own_page(path: str) -> bool:
    """Whether `path` is one of gate's own pages (`/-/`: health, metrics, status), which wait on no upstream and
    read no decision; `/-/explain/` is not one (it judges a project's page)."""
    return path.startswith("/-/") and not path.startswith("/-/explain/")


class UpstreamSlots:
    """WSGI middleware: a request that may wait on upstream (any path but `/-/...`, `/-/explain/` too) holds one of the
    process's `slots` until the server closes its response (after a streamed body); with none free it is
    answered 503 at once, so threads stay free for `/-/health`, `/-/metrics` and cached answers (a warm PyPI
    project page is answered before this, by `WarmPages`: it takes no slot)."""

    def __init__(self, app: WSGIApplication, state: Gate) -> None:
        self.app = app
        self.state = state

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        slots = self.state.slots
        path = str(environ.get("PATH_INFO", ""))
        if slots is None or own_page(path) or is_shard_path(path):
            return self.app(environ, start_response)  # a CEP 16 shard waits for a slot itself (conda_shards)
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
    downloads), with the count of records lost in this process and the last error, or while the store fails (its
    reads miss: slower, never less strict); the store's engine and the audit sink, redacted."""
    state = gate_state()
    audit = state.audit
    store = state.store.health()
    body: dict[str, object] = {"status": "degraded" if audit.failing or store["failing"] else "ok",
                               "policies": len(state.policies), "policy_digest": state.policy_digest,
                               "cache": store, "audit": {"sink": audit.sink.name, "where": audit.sink.where}}
    if audit.failures:
        body |= {"audit_failures": audit.failures, "audit_error": audit.error}
    status = 503 if audit.failing and state.settings.audit_required else 200
    if state.osv is not None:  # the OSV data's age; stale under --osv-max-age: failing, and so is every page
        now = state.now()
        body["osv"] = state.osv.health(now)
        if state.osv.stale(now) is not None:
            body["status"], status = "failing", 503
        elif state.osv.old(now) or state.osv.failures:
            body["status"] = "degraded"
    return Response(json.dumps(body) + "\n", status=status, mimetype="application/json")


@core.get("/-/metrics")
def metrics() -> Response:
    state = gate_state()
    gauges = "" if state.osv is None else state.osv.gauges(state.now())
    return Response(state.metrics.render() + gauges, mimetype="text/plain; version=0.0.4")


def osv_data(settings: Settings, metrics: Metrics, loaded: Loaded | None = None) -> OsvData | None:
    """The OSV data of `--osv` (None without): `loaded`, or loaded now (an OsvError is a startup error)."""
    if not settings.osv:
        return None
    return OsvData(settings.osv, interval=settings.osv_interval, max_age=settings.osv_max_age,
                   on_reload=lambda outcome: metrics.inc("gate_osv_reloads_total", outcome=outcome), loaded=loaded)


def osv_guard(state: Gate) -> Callable[[], Response | None]:
    """Before each request: reload the OSV data when its files changed (at most every interval), and answer
    503 while it is stale under --osv-max-age (fail closed) to every request whose decisions read it: PyPI pages,
    files and `/-/explain/`; not gate's own `/-/` pages (health, metrics, status) nor the conda channels (OSV
    data is PyPI-only)."""

    def guard() -> Response | None:
        path = request.path
        if state.osv is None or own_page(path) or path.startswith("/conda/"):
            return None
        state.osv.maybe_reload()
        stale = state.osv.stale(state.now())
        if stale is None:
            return None
        state.metrics.inc("gate_osv_stale_total")
        return Response(f"gate: {stale}\n", status=503, mimetype="text/plain",
                        headers={"Retry-After": "60", "Cache-Control": "no-store"})

    return guard


def open_storage(settings: Settings) -> tuple[Store, AuditLog, Metrics]:
    """The store (`--cache-url`, else SQLite in the cache directory), the audit log (`--audit-url`, else the
    file) and the metrics; a ValueError naming the directory (or the audit log) and the reason when they cannot be
    used (read-only, not a directory, a corrupt database). A shared engine that does not answer yet is no error:
    it is a miss (the store) or a lost record (the audit) until it does, and health says so."""
    cache_dir = settings.cache_dir
    where_ = f"the cache directory {cache_dir}"
    try:
        metrics = Metrics(cache_dir / "metrics" if cache_dir else None)
        store = open_store(settings.cache_url, cache_dir / "cache.sqlite3" if cache_dir else None, metrics=metrics,
                           secret=settings.cache_secret)
        # (an audit URL as gate shows URLs: no password in the error)
        where_ = f"the audit log {settings.audit_log or where(settings.audit_url or '')}".rstrip()
        audit = AuditLog(audit_sink(settings), metrics)
    except (OSError, sqlite3.Error) as err:
        raise ValueError(f"cannot use {where_}: {err}") from err
    return store, audit, metrics


def audit_sink(settings: Settings) -> Sink:
    """`--audit-url` (stdout, a PostgreSQL table), else `--audit-log` or CACHE_DIR/audit.jsonl, else the logger."""
    url = settings.audit_url
    if url == "stdout":
        return StdoutSink()
    if url is not None:
        return audit_table(url)
    path = settings.audit_log or (settings.cache_dir / "audit.jsonl" if settings.cache_dir else None)
    return LogSink() if path is None else FileSink(path)


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
    osv: Loaded | None = None,
) -> Flask:
    """The proxy app: the core routes plus one blueprint per ecosystem (default: `default_blueprints`); `osv`:
    the OSV data already read (default: read now)."""
    policies = load_policies(list(settings.policies))
    require_policies(policies, settings.policies)  # zero policies: refuse to start (nothing would be governed)
    store, audit, metrics = open_storage(settings)
    found = osv_data(settings, metrics, osv)
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
        osv=found,
    )
    if clock is not None:
        state.clock = clock
    app = Flask("gate.proxy")
    app.extensions[EXTENSION] = state
    app.wsgi_app = UpstreamSlots(app.wsgi_app, state)  # type: ignore[method-assign]
    app.before_request(osv_guard(state))
    app.register_blueprint(core)
    app.register_blueprint(status_blueprint())  # `/-/`, for the clients `status_allow`/`status_token` admit
    for blueprint in blueprints if blueprints is not None else default_blueprints(settings):
        app.register_blueprint(blueprint)
    if SERVICE in app.extensions:  # warm PyPI pages, answered before the slots (they wait on no upstream)
        app.wsgi_app = WarmPages(app.wsgi_app, state, app.extensions[SERVICE])  # type: ignore[method-assign]

    @app.after_request
    def count(response: Response) -> Response:
        endpoint = request.endpoint or "unmatched"
        state.metrics.inc("gate_requests_total", endpoint=endpoint, status=str(response.status_code))
        state.metrics.flush()
        return response

    return app


def server_app(settings: Settings, osv: Loaded | None = None) -> Flask:
    """`create_app` for a serving process (`gate serve`, each gunicorn worker, the WSGI entry point).

    Everything made so far (modules, policies, trust root: hundreds of thousands of objects that live as
    long as the process) is moved out of the garbage collector's sight with `gc.freeze()`, so the full
    collections a cold page's allocations set off do not walk it again each time (tens of ms each). `osv`: the
    OSV data `gate serve` read before forking (shared with its workers, not read again by each)."""
    app = create_app(settings, osv=osv)
    gc.collect()
    gc.freeze()
    return app
