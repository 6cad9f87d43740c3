"""Which hosts gate fetches from: the operator's allowlist, and no internal address unless the upstream is one.

An upstream page names the URLs of files and evidence; a hostile upstream could name an internal service
(server-side request forgery). `HostPolicy.check(url)` admits a URL only when its `host:port` is allowed,
the upstreams' own origins, the file hosts those upstreams are known to serve from (`KNOWN_FILE_HOSTS`), and
what `--allow-host` adds, and when none of the addresses the host resolves to is loopback, private,
link-local or otherwise not global, unless some configured upstream itself is on such an address (a
mirror on the LAN, the tests' loopback servers). Every redirect hop is checked again (`gate.sources.http`).
The connection resolves the name anew, so a name whose DNS answer changes between the check and the connect
(DNS rebinding) is caught where it connects: under `public_peers_only`, a connection whose peer is internal
is closed before a byte is sent (`check_peer`, called by `gate.sources.deadline`'s connections).
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from gate.redact import origin, redact

# upstream host -> the hosts it serves files from (PyPI's files live on a separate host)
KNOWN_FILE_HOSTS: dict[str, tuple[str, ...]] = {
    "pypi.org": ("files.pythonhosted.org",),
    "test.pypi.org": ("test-files.pythonhosted.org",),
    "github.com": ("objects.githubusercontent.com", "release-assets.githubusercontent.com"),  # release assets
}
HostPort = tuple[str, int]


class HostRefusedError(ValueError):
    """A URL gate does not fetch from; the message says why."""


def parse_host(text: str) -> HostPort:
    """`HOST[:PORT]` of `--allow-host` (port default 443; `[v6]:port` for IPv6); raise ValueError."""
    parts = urlsplit(f"//{text.strip()}")
    try:
        port = parts.port or 443
    except ValueError as err:
        raise ValueError(f"invalid port in {text!r}") from err
    if not parts.hostname or parts.path or parts.username:
        raise ValueError(f"expected HOST[:PORT], got {text!r}")
    return parts.hostname.lower(), port


Address = ipaddress.IPv4Address | ipaddress.IPv6Address
RESOLVED_TTL = 30.0  # seconds a host's addresses are reused for the check (the connection resolves anew)
_resolved: dict[HostPort, tuple[float, list[Address]]] = {}
_resolved_lock = threading.Lock()


def _addresses(host: str, port: int) -> list[Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    now = time.monotonic()
    with _resolved_lock:
        known = _resolved.get((host, port))
    if known is not None and known[0] > now:
        return known[1]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as err:
        raise HostRefusedError(f"cannot resolve {host}: {err}") from err
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    with _resolved_lock:
        if len(_resolved) > 1024:  # hosts are allowlisted: few; never grow without bound
            _resolved.clear()
        _resolved[host, port] = (now + RESOLVED_TTL, addresses)
    return addresses


def internal(address: Address) -> bool:
    """Loopback, private, link-local, unspecified, multicast, reserved: anything not on the public internet."""
    mapped = getattr(address, "ipv4_mapped", None)
    return not (mapped or address).is_global


@dataclass
class HostPolicy:
    """The hosts an app fetches from: `allowed` and the upstreams' (`allow_upstream`, at configuration);
    `private=None` decides from the upstreams' addresses on first use. `any_host` admits every other host
    too, but never on an internal address (`gate check` of an `@EXPLICIT` environment without `--channel`)."""

    allowed: set[HostPort] = field(default_factory=set)
    upstreams: list[HostPort] = field(default_factory=list)
    private: bool | None = None
    any_host: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def for_upstreams(cls, upstreams: Iterable[str], extra: Iterable[HostPort] = ()) -> HostPolicy:
        """The upstreams' origins, their known file hosts (https, 443) and `extra`."""
        policy = cls(set(extra))
        for url in upstreams:
            policy.allow_upstream(url)
        return policy

    def allow_upstream(self, url: str) -> None:
        """Allow an upstream's origin and the file hosts it is known to serve from."""
        host, port = origin(url)[1:]
        with self._lock:
            if (host, port) in self.upstreams:  # a channel given to its blueprint and configured too
                return
            self.upstreams.append((host, port))
            self.allowed |= {(host, port), *((known, 443) for known in KNOWN_FILE_HOSTS.get(host, ()))}
            self.private = None

    def _private_allowed(self) -> bool:
        with self._lock:
            if self.private is not None:
                return self.private
            upstreams = list(self.upstreams)
        try:  # resolved outside the lock: a slow lookup must not stall every other fetch's check
            private = any(internal(a) for host, port in upstreams for a in _addresses(host, port))
        except HostRefusedError:
            return False  # not known yet: ask again next time
        with self._lock:
            self.private = private
        return private

    def check(self, url: str) -> bool:
        """Raise HostRefusedError unless gate may fetch `url`; True when its host may be on an internal address
        (else the connection must not end up on one: `public_peers_only`)."""
        try:
            _, host, port = origin(url)
        except ValueError as err:
            raise HostRefusedError(f"gate does not fetch {redact(url)}: not an http(s) URL") from err
        with self._lock:
            allowed = (host, port) in self.allowed
        if not allowed and not self.any_host:
            raise HostRefusedError(
                f"gate does not fetch from {host}:{port} ({redact(url)}): not the upstream's host nor one "
                "allowed with --allow-host"
            )
        bad = [str(a) for a in _addresses(host, port) if internal(a)]
        if bad and not (allowed and self._private_allowed()):
            raise HostRefusedError(
                f"gate does not fetch from {host}: it resolves to the internal address {bad[0]} "
                + ("(allowed only when named with --allow-host or --channel)" if self.any_host else
                   "(allowed only when an upstream is on an internal address itself)")
            )
        return allowed and self._private_allowed()


_peers = threading.local()


@contextmanager
def public_peers_only(on: bool) -> Iterator[None]:
    """While active (`on`), connections this thread opens must reach a global address (`check_peer`)."""
    previous = getattr(_peers, "public_only", False)
    _peers.public_only = on
    try:
        yield
    finally:
        _peers.public_only = previous


def check_peer(sock: socket.socket, host: str) -> None:
    """Raise HostRefusedError when `public_peers_only` is active and `sock` is connected to an internal
    address: `host` resolved to a global one when it was checked, and to this one when it was connected."""
    if not getattr(_peers, "public_only", False):
        return
    peer = ipaddress.ip_address(str(sock.getpeername()[0]).split("%")[0])
    if internal(peer):
        raise HostRefusedError(
            f"gate does not fetch from {host}: it connected to the internal address {peer}, though the name "
            "resolved to a public one when it was checked (a DNS answer that changed: DNS rebinding)"
        )
