"""A real `redis-server` (Debian's package) on a free 127.0.0.1 port in a temporary directory, with a
password, stopped by the test (by PID)."""

from __future__ import annotations

import secrets
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.backend_process import BackendProcess, wait_until
from tests.support.gate_server import free_port


def redis_binary() -> str:
    """The `redis-server` in PATH, or the test is skipped saying how to get it (`.ci/run` installs it)."""
    found = shutil.which("redis-server")
    if found is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server; .ci/run does)")
    return found


def _answers(port: int, password: str) -> bool:
    """Whether the server answers PING after AUTH (RESP spoken by hand: no client library needed to wait)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(f"AUTH {password}\r\nPING\r\n".encode())
            return b"+PONG" in sock.recv(256)
    except OSError:
        return False


@contextmanager
def running_redis(directory: Path) -> Iterator[BackendProcess]:
    """A Redis server whose data lives in `directory` (nothing saved to disk); yields it once it answers."""
    binary = redis_binary()
    directory.mkdir(parents=True, exist_ok=True)
    port, password = free_port(), secrets.token_hex(16)
    log = directory / "redis.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory), "--save", "",
             "--appendonly", "no", "--requirepass", password, "--protected-mode", "yes"],
            stdout=out, stderr=subprocess.STDOUT,
        )
    server = BackendProcess(f"redis://:{password}@127.0.0.1:{port}/0", process, log, password, signal.SIGTERM)
    try:
        wait_until(lambda: _answers(port, password), process, log)
        yield server
    finally:
        server.stop()
