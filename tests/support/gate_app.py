"""The proxy app in a Flask test client, as the proxy and conda tests build it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask

from gate.proxy.app import create_app
from gate.proxy.settings import Settings


def gate_app(
    policies: Path,
    *,
    cache_dir: Path,
    clock: Callable[[], dt.datetime],
    blueprints: tuple[Blueprint, ...] | None = None,
    **settings: Any,
) -> Flask:
    """An app (testing mode) with the policies under `policies`, its cache in `cache_dir`, a 2 s upstream
    timeout and no index TTL unless given (a page the upstream sends without freshness is asked for again on
    every request, so a test sees each change it scripts at once; tests/proxy/test_freshness.py sets one), and
    `clock`; `settings` are further `Settings` fields."""
    options: dict[str, Any] = {"cache_dir": cache_dir, "timeout": 2.0, "index_ttl": 0.0, **settings}
    app = create_app(Settings(policies=(policies,), **options), blueprints=blueprints, clock=clock)
    app.testing = True
    return app
