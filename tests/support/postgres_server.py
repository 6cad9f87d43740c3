"""A real PostgreSQL (Debian's package: `initdb` and `postgres` in PATH or /usr/lib/postgresql/*/bin) on a
free 127.0.0.1 port in a temporary directory, with password authentication, stopped by the test (by PID).

PostgreSQL refuses to run as root: as root, the cluster directory is given to `nobody` and both programs
run as `nobody` (`setpriv`, which execs them: the PID is the postmaster's)."""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from tests.support.backend_process import BackendProcess, as_unprivileged, wait_until
from tests.support.gate_server import free_port

USER = "gate"
DATABASE = "gate"


def postgres_bin() -> Path:
    """The directory holding `initdb` and `postgres`, or the test is skipped saying how to get them."""
    found = shutil.which("initdb")
    if found is not None:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not candidates:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql; .ci/run does)")
    return Path(candidates[-1]).parent


def _give(path: Path) -> None:
    """Make `path` (and its parents up to /tmp) reachable by `nobody` when this is root."""
    if os.geteuid() != 0:
        return
    shutil.chown(path, "nobody", "nogroup")
    for parent in path.parents:
        if str(parent) in ("/", "/tmp"):
            break
        parent.chmod(parent.stat().st_mode | 0o011)  # search only, for the server to reach its directory


def _answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


@contextmanager
def running_postgres(directory: Path) -> Iterator[BackendProcess]:
    """A PostgreSQL cluster in `directory` with user and database `gate` (scram-sha-256 password); yields it
    once it accepts connections."""
    binaries = postgres_bin()
    directory.mkdir(parents=True, exist_ok=True)
    data, password = directory / "data", secrets.token_hex(16)
    data.mkdir()
    (directory / "pw").write_text(password + "\n")
    _give(directory)
    _give(data)
    _give(directory / "pw")
    log = directory / "postgres.log"
    subprocess.run(
        as_unprivileged([str(binaries / "initdb"), "-D", str(data), "-U", USER, "--auth=scram-sha-256",
                         f"--pwfile={directory / 'pw'}", "--no-sync", "-E", "UTF8", "--locale=C"]),
        check=True, capture_output=True, timeout=120,
    )
    (directory / "pw").unlink()
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            as_unprivileged([str(binaries / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port),
                             "-k", str(directory), "-c", "fsync=off", "-c", "full_page_writes=off",
                             "-c", "max_connections=200"]),
            stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"postgresql://{USER}:{password}@127.0.0.1:{port}/postgres"
    # SIGINT: PostgreSQL's fast shutdown (SIGTERM waits for every client to leave)
    server = BackendProcess(url, process, log, password, signal.SIGINT)
    try:
        wait_until(lambda: _answers(url), process, log)
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {DATABASE}")
        server.url = url.rsplit("/", 1)[0] + f"/{DATABASE}"
        yield server
    finally:
        server.stop()
