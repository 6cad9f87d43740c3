"""A name that resolves to a public address when gate checks it and to an internal one when gate connects
(DNS rebinding) must not reach the internal service: the connection's peer is checked, not only the name.

The resolver cannot be made to rebind here without a DNS server the machine would use, so the name's
answers come from `RebindingResolver`, a FAKE `socket.getaddrinfo` for one made-up name (every other name
resolves as usual); the connection itself is real, to a real loopback server.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from gate.sources import hosts
from gate.sources.failure import UpstreamError
from gate.sources.hosts import HostPolicy
from gate.sources.http import HttpClient
from tests.support.scripted_upstream import Reply, ScriptedServer, scripted_upstream

NAME = "rebinding.example"
PUBLIC = "93.184.215.14"  # a global address: what the name answers first


class RebindingResolver:
    """FAKE DNS for NAME: the first `public_answers` lookups give PUBLIC, later ones loopback."""

    def __init__(self, public_answers: int) -> None:
        self.real = socket.getaddrinfo
        self.left = public_answers
        self.lookups = 0

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != NAME:
            return self.real(host, port, *args, **kwargs)
        self.lookups += 1
        address = PUBLIC if self.left > 0 else "127.0.0.1"
        self.left -= 1
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port)))]


@pytest.fixture(autouse=True)
def _fresh_lookups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hosts, "_resolved", {})  # the check's answers are kept 30 s: none from another test


@pytest.fixture
def internal_service() -> Iterator[ScriptedServer]:
    with scripted_upstream() as server:
        server.route("/secret", Reply(body=b"db password is swordfish"))
        yield server


def _client(policy: HostPolicy) -> HttpClient:
    return HttpClient(None, 5.0, hosts=policy)


def test_a_name_rebound_to_loopback_after_the_check_is_refused(
    internal_service: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolver = RebindingResolver(public_answers=1)
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    url = f"http://{NAME}:{internal_service.server_port}/secret"
    with pytest.raises(UpstreamError, match=r"connected to the internal address 127\.0\.0\.1.*DNS rebinding"):
        _client(HostPolicy(any_host=True)).fetch(url)  # `gate check` of an @EXPLICIT file without --channel
    assert resolver.lookups == 2  # checked (public), then connected (loopback): the peer was caught
    assert internal_service.requests == []


def test_an_allowed_public_upstream_rebound_to_loopback_is_refused(
    internal_service: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", RebindingResolver(public_answers=1))
    url = f"http://{NAME}:{internal_service.server_port}/secret"
    policy = HostPolicy.for_upstreams([f"http://{NAME}:{internal_service.server_port}/simple/"])
    with pytest.raises(UpstreamError, match="DNS rebinding"):
        _client(policy).fetch(url)
    assert internal_service.requests == []


def test_an_upstream_on_loopback_is_still_reached(internal_service: ScriptedServer) -> None:
    """The peer check refuses only what the name check would have: an upstream configured on loopback works."""
    policy = HostPolicy.for_upstreams([internal_service.url("/simple/")])
    assert _client(policy).fetch(internal_service.url("/secret")).body == b"db password is swordfish"

