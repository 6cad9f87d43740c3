"""WSGI entry point for running the proxy under a bare gunicorn, configured from `GATE_*` variables.

    GATE_POLICY=/etc/gate/policies GATE_CACHE_DIR=/var/cache/gate \
        gunicorn -w 2 -k gthread --threads 8 -b 0.0.0.0:8080 'gate.proxy.wsgi:app()'
"""

from __future__ import annotations

from flask import Flask

from gate.proxy.app import Settings, server_app


def app() -> Flask:
    return server_app(Settings.from_env())
