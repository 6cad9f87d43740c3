"""Serving the proxy: gunicorn with gthread workers (keep-alive, a fixed pool of threads, workers
restarted when they die), never a development server. Settings are checked once in the parent, so a
mistake fails before anything forks."""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication

from gate.errors import UsageError
from gate.evaluate import require_policies
from gate.policy.compile import load_policies
from gate.proxy.allocator import limit_arenas
from gate.proxy.app import check_storage, default_blueprints, server_app
from gate.proxy.osv_data import Loaded, read_osv
from gate.proxy.settings import Settings
from gate.proxy.state import trust_root_digest


class Gunicorn(BaseApplication):  # type: ignore[misc]  # untyped library
    """gunicorn with `workers` gthread workers of `threads` threads, each serving its own
    `server_app(settings)` (its own SQLite connections and HTTP pool) and the OSV data read before the fork
    (shared copy-on-write; each worker reloads it on its own when the files change)."""

    def __init__(self, settings: Settings, options: dict[str, Any], osv: Loaded | None = None) -> None:
        self.settings = settings
        self.options = options
        self.osv = osv
        super().__init__()

    def load_config(self) -> None:
        limit_arenas()  # before any worker or thread starts: every worker inherits the cap
        for key, value in self.options.items():
            self.cfg.set(key, value)
        if "control_socket_disable" in self.cfg.settings:  # a gunicorn with a control socket: gate needs none
            self.cfg.set("control_socket_disable", True)  # (under a HOME that may not exist or be writable)

    def load(self) -> Any:
        return server_app(self.settings, self.osv)


def check_settings(settings: Settings) -> Loaded | None:
    """Load the policies and the OSV data and check the channels, the trusted root and the cache directory,
    without building an app (the store and audit log are opened, checked and closed: nothing to carry across
    gunicorn's fork); a mistake is a UsageError, a PolicyError or an OsvError. The OSV data read (None without
    `--osv`) is handed to the workers."""
    require_policies(load_policies(list(settings.policies)), settings.policies)
    osv = read_osv(settings.osv) if settings.osv else None  # an OsvError names every problem: exit 2 before forking
    try:
        default_blueprints(settings)
        trust_root_digest(settings.trusted_root)
        check_storage(settings)
    except ValueError as err:
        raise UsageError(str(err)) from err
    return osv


def client_timeouts(seconds: float) -> Callable[[Any], None]:
    """gunicorn's `when_ready` hook: every connection accepted on the listeners (which inherit the option,
    on Linux) fails a send or receive that makes no progress for `seconds` (SO_SNDTIMEO, SO_RCVTIMEO). A
    gthread worker's threads write bodies and read request heads in blocking mode: without it, a client that
    stops reading (or sends half a request head) holds a thread for as long as it likes, and a few such clients
    hold every thread of a worker, `/-/health` included. A client that reads slowly but steadily is not cut."""
    whole = int(seconds)
    value = struct.pack("ll", whole, int((seconds - whole) * 1_000_000))

    def when_ready(server: Any) -> None:
        for listener in server.LISTENERS:
            for option in (socket.SO_SNDTIMEO, socket.SO_RCVTIMEO):
                listener.sock.setsockopt(socket.SOL_SOCKET, option, value)

    return when_ready


def serve(
    settings: Settings, *, host: str, port: int, workers: int, threads: int, client_timeout: float = 60.0
) -> None:
    """Check `settings`, then serve on `host:port` until stopped; a client that neither sends nor reads for
    `client_timeout` seconds is disconnected (`client_timeouts`)."""
    osv = check_settings(settings)
    options: dict[str, Any] = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "timeout": max(60, int(settings.timeout * 3)),
        "accesslog": None,
        "when_ready": client_timeouts(client_timeout),
    }
    Gunicorn(settings, options, osv).run()
