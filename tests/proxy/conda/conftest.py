"""Fixtures of the conda proxy tests. A test module defines `channel` (an upstream channel directory) or its own
`upstream`; these serve it on loopback and put gate, with the conda blueprint, in front of it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import pytest
from flask.testing import FlaskClient

from gate.proxy.conda_routes import conda_blueprint
from tests.support.conda_policies import write_policies
from tests.support.conda_server import ChannelServer
from tests.support.gate_app import gate_app


class CondaGate(Protocol):
    def __call__(
        self, policies: Sequence[dict[str, Any]], clock: Callable[[], dt.datetime], url: str = ""
    ) -> FlaskClient: ...


@pytest.fixture
def upstream(channel: Path) -> Iterator[ChannelServer]:
    """The module's `channel`, served on loopback."""
    with ChannelServer(channel) as server:
        yield server


@pytest.fixture
def conda_gate(tmp_path: Path, upstream: ChannelServer) -> CondaGate:
    """A Flask test client of gate with `policies` and `clock`, serving channel `local` from `upstream` (or
    from `url`); policies and cache under `tmp_path`."""

    def make(policies: Sequence[dict[str, Any]], clock: Callable[[], dt.datetime], url: str = "") -> FlaskClient:
        directory = write_policies(tmp_path / "policies", *policies)
        blueprint = conda_blueprint({"local": url or upstream.url})
        return gate_app(directory, cache_dir=tmp_path / "cache", clock=clock, blueprints=(blueprint,)).test_client()

    return make
