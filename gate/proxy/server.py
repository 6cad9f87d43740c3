"""Serving the proxy: gunicorn with gthread workers (keep-alive, a fixed pool of threads, workers
restarted when they die), never a development server. Settings are checked once in the parent, so a
mistake fails before anything forks."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

from gate.errors import UsageError
from gate.evaluate import require_policies
from gate.policy.compile import load_policies
from gate.proxy.app import check_storage, default_blueprints, server_app
from gate.proxy.settings import Settings
from gate.proxy.state import trust_root_digest
from gate.sources.osv import OsvDatabase


class Gunicorn(BaseApplication):  # type: ignore[misc]  # untyped library
    """gunicorn with `workers` gthread workers of `threads` threads, each serving its own
    `server_app(settings)` (its own SQLite connections and HTTP pool)."""

    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)
        if "control_socket_disable" in self.cfg.settings:  # a gunicorn with a control socket: gate needs none
            self.cfg.set("control_socket_disable", True)  # (under a HOME that may not exist or be writable)

    def load(self) -> Any:
        return server_app(self.settings)


def check_settings(settings: Settings) -> None:
    """Load the policies and the OSV data and check the channels, the trusted root and the cache directory,
    without building an app (the store and audit log are opened, checked and closed: nothing to carry across
    gunicorn's fork); a mistake is a UsageError, a PolicyError or an OsvError."""
    require_policies(load_policies(list(settings.policies)), settings.policies)
    if settings.osv:
        OsvDatabase.load(list(settings.osv))  # an OsvError names every problem: exit 2 before anything forks
    try:
        default_blueprints(settings)
        trust_root_digest(settings.trusted_root)
        check_storage(settings)
    except ValueError as err:
        raise UsageError(str(err)) from err


def serve(settings: Settings, *, host: str, port: int, workers: int, threads: int) -> None:
    """Check `settings`, then serve on `host:port` until stopped."""
    check_settings(settings)
    options: dict[str, Any] = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "timeout": max(60, int(settings.timeout * 3)),
        "accesslog": None,
    }
    Gunicorn(settings, options).run()
