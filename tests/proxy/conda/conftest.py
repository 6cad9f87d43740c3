"""Fixtures of the conda proxy tests. A test module defines `channel` (an upstream channel directory) or its own
`upstream`; these serve it on loopback and put gate, with the conda blueprint, in front of it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import pytest
from flask.testing import FlaskClient

from gate.proxy.conda_examine import Helper
from tests.support.conda_app import conda_app
from tests.support.conda_server import ChannelServer


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
        return conda_app(tmp_path, {"local": url or upstream.url}, *policies, clock=clock).test_client()

    return make


@pytest.fixture
def helpers(monkeypatch: pytest.MonkeyPatch) -> list[Helper]:
    """Every helper a repodata build starts (`gate.proxy.conda_examine.Helper`), as started."""
    started: list[Helper] = []
    start = Helper.__init__

    def record(self: Helper, *args: Any) -> None:
        start(self, *args)
        started.append(self)

    monkeypatch.setattr(Helper, "__init__", record)
    return started
