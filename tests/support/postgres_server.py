"""A real PostgreSQL (Debian's package: `initdb` and `postgres` in PATH or /usr/lib/postgresql/*/bin) on a
free 127.0.0.1 port in a temporary directory, with password authentication, stopped by the test (by PID).

PostgreSQL refuses to run as root: as root, the cluster directory is given to `nobody` and both programs
run as `nobody` (`setpriv`, which execs them: the PID is the postmaster's)."""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
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
    """Make `path` `nobody`'s when this is root."""
    if os.geteuid() == 0:
        shutil.chown(path, "nobody", "nogroup")


def _answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


@contextmanager
def running_postgres(directory: Path) -> Iterator[BackendProcess]:
    """A PostgreSQL cluster with user and database `gate` (scram-sha-256 password), its log in `directory`; yields
    it once it accepts connections.

    The cluster lives in a directory of its own under the system's temporary directory, not under pytest's
    (whose root every pytest run, in any session, makes private again: `nobody` would lose its way in mid-run)."""
    binaries = postgres_bin()
    directory.mkdir(parents=True, exist_ok=True)
    cluster = Path(tempfile.mkdtemp(prefix="gate-postgres-"))
    before = shared_memory()
    try:
        with _cluster(binaries, cluster, directory / "postgres.log") as server:
            yield server
    finally:
        shutil.rmtree(cluster, ignore_errors=True)
        remove_shared_memory(before)


def shared_memory() -> dict[str, tuple[str, str]]:
    """The System V shared memory segments: id -> (owner uid, processes attached)."""
    try:
        rows = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    except OSError:
        return {}
    return {f[1]: (f[7], f[6]) for f in (row.split() for row in rows) if len(f) > 7}


def remove_shared_memory(before: dict[str, tuple[str, str]]) -> None:
    """Remove the segments made since `before` by the user the server ran as that nothing uses any more
    (PostgreSQL leaves its segment behind when killed, initdb's helper processes always)."""
    uid = str(pwd.getpwnam("nobody").pw_uid if os.geteuid() == 0 else os.geteuid())
    for segment, (owner, attached) in shared_memory().items():
        if segment not in before and owner == uid and attached == "0":
            subprocess.run(["ipcrm", "-m", segment], capture_output=True, check=False, timeout=30)


@contextmanager
def _cluster(binaries: Path, directory: Path, log: Path) -> Iterator[BackendProcess]:
    data, password = directory / "data", secrets.token_hex(16)
    data.mkdir()
    (directory / "pw").write_text(password + "\n")
    _give(directory)
    _give(data)
    _give(directory / "pw")
    made = subprocess.run(
        as_unprivileged([str(binaries / "initdb"), "-D", str(data), "-U", USER, "--auth=scram-sha-256",
                         f"--pwfile={directory / 'pw'}", "--no-sync", "-E", "UTF8", "--locale=C"]),
        capture_output=True, text=True, timeout=120, check=False,
    )
    if made.returncode != 0:
        raise RuntimeError(f"initdb failed ({made.returncode}): {made.stdout[-2000:]}{made.stderr[-2000:]}")
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
