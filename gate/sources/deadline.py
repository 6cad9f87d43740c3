"""One total deadline per upstream request, however slowly the upstream sends.

A socket timeout bounds each read, not the request: an upstream dripping a byte every few seconds keeps
every read under it forever (Python's buffered reads keep reading until their buffer is full). A
`Deadline` is watched by one watchdog thread per process; when it passes, the watchdog shuts down the
socket of every connection the request used, which ends any blocked read at once. Connections register
themselves when they send a request while a deadline is bound to the thread (`Deadline.bound()`), which
is what `deadline_session()`'s adapter arranges.
"""

from __future__ import annotations

import heapq
import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from gate.sources.hosts import check_peer

_local = threading.local()


class Deadline:
    """A moment `seconds` from now after which the request's connections are cut (`expired` then True);
    `close()` when the request is done (the connections go back to the pool, no longer watched)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._start = time.monotonic()
        self.at = self._start + seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        _WATCHDOG.watch(self)

    def remaining(self) -> float:
        return max(self.at - time.monotonic(), 0.0)

    def extend(self, seconds: float) -> None:
        """Move the deadline to `seconds` after the start (a download whose length is now known)."""
        self.seconds = seconds
        self.at = self._start + seconds
        _WATCHDOG.watch(self)

    @contextmanager
    def bound(self) -> Iterator[Deadline]:
        """Connections that send a request on this thread inside the block are watched."""
        previous = getattr(_local, "deadline", None)
        _local.deadline = self
        try:
            yield self
        finally:
            _local.deadline = previous

    def attach(self, connection: HTTPConnection) -> None:
        """Watch the connection's socket (kept here: a response that closes the connection takes it over)."""
        sock = getattr(connection, "sock", None)
        if sock is None:
            return
        with self._lock:
            if self._closed:
                return
            if self.expired:
                _cut(sock)
            elif sock not in self._sockets:
                self._sockets.append(sock)

    def expire(self) -> None:
        with self._lock:
            if self._closed:
                return
            self.expired = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _cut(sock)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._sockets = []

    def __enter__(self) -> Deadline:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _cut(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _Watchdog:
    """Expires deadlines from one daemon thread (started on first use, again after a fork)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Deadline]] = []
        self._counter = itertools.count()
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, deadline: Deadline) -> None:
        with self._condition:
            heapq.heappush(self._heap, (deadline.at, next(self._counter), deadline))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="gate-deadlines", daemon=True)
                self._thread.start()
            self._condition.notify()

    def _run(self) -> None:
        while True:
            with self._condition:
                now = time.monotonic()
                due = []
                while self._heap and self._heap[0][0] <= now:
                    at, _, deadline = heapq.heappop(self._heap)
                    if at == deadline.at:  # else extended: a later entry stands for it
                        due.append(deadline)
                if not due:
                    self._condition.wait(self._heap[0][0] - now if self._heap else None)
            for deadline in due:
                deadline.expire()

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]  # in a forked child: the parent's thread and locks are gone


_WATCHDOG = _Watchdog()
os.register_at_fork(after_in_child=_WATCHDOG.reset)


class _Watched:
    """Connection mixin: register with the thread's bound deadline when sending a request; a new connection's
    peer must be one the host check admits (`gate.sources.hosts.check_peer`: not when through a proxy, whose
    own address the operator chose)."""

    sock: Any
    host: str
    proxy: Any

    def _new_conn(self) -> socket.socket:
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        if not self.proxy:
            try:
                check_peer(sock, self.host)
            except BaseException:
                sock.close()
                raise
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        deadline: Deadline | None = getattr(_local, "deadline", None)
        if deadline is not None:  # a pooled connection, before it is used again
            deadline.attach(self)  # type: ignore[arg-type]
        super().request(*args, **kwargs)  # type: ignore[misc]
        if deadline is not None:
            deadline.attach(self)  # type: ignore[arg-type]


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """An adapter whose connections honour `Deadline`s (no retries)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(WATCHED_POOLS)

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        """Through an HTTP(S) proxy (`HTTPS_PROXY`), requests builds another pool manager: watched too.
        A SOCKS proxy's pools are its own classes and stay unwatched (the per-read timeout still applies)."""
        manager = super().proxy_manager_for(proxy, **kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = dict(WATCHED_POOLS)
        return manager



def deadline_session(pool: int = 10) -> requests.Session:
    """A session for upstream requests: watched connections, `gzip, deflate` only (gate decodes them with a
    bound), no retries."""
    session = requests.Session()
    adapter = DeadlineAdapter(pool_connections=4, pool_maxsize=pool, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = "gate-proxy"
    session.headers["Accept-Encoding"] = "gzip, deflate"
    return session
