"""WSGI entry point for running the proxy under a bare gunicorn, configured from `GATE_*` variables.

    GATE_POLICY=/etc/gate/policies GATE_CACHE_DIR=/var/cache/gate \
        gunicorn -w 2 -k gthread --threads 8 -b 0.0.0.0:8080 'gate.proxy.wsgi:app()'

Without `GATE_POLICY` (or with one that holds no policy) it refuses to boot: a proxy that governs nothing
would serve everything. A file no policy matches is denied unless `GATE_UNMATCHED=warn|allow` says otherwise.
"""

from __future__ import annotations

from flask import Flask

from gate.errors import UsageError
from gate.proxy.app import server_app
from gate.proxy.settings import Settings


class BootError(UsageError):
    """The environment does not configure a proxy gate can run."""


def app() -> Flask:
    try:
        settings = Settings.from_env()
    except ValueError as err:
        raise BootError(f"gate: {err}") from None
    if not settings.policies:
        raise BootError(
            "gate: GATE_POLICY is not set: name the policy files or directories (os.pathsep-separated); "
            "gate will not serve an index no policy governs"
        )
    return server_app(settings)
