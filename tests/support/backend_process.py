"""A database server process started by a test (Redis, PostgreSQL): its PID, and the ways a test ends it
(stopped at the end, killed or paused mid-run). Only the process started here and its descendants (PostgreSQL's
backends, each in a session of its own) are signalled, by their PIDs: kill and pause signal all of them, stop
the server alone (it stops its children)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class BackendProcess:
    """A running server: `url` reaches it (with its password), `log` holds its output."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path
    password: str
    stop_signal: signal.Signals = signal.SIGTERM
    _paused: bool = field(default=False, init=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        """Die at once, as a crashed server does (SIGKILL: no shutdown, connections reset)."""
        self.resume()
        if self.process.poll() is None:
            self._signal_group(signal.SIGKILL)
        self.process.wait(timeout=30)

    def pause(self) -> None:
        """Hang: the server accepts connections (the kernel does) but answers nothing (SIGSTOP)."""
        self._signal_group(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        if self._paused and self.process.poll() is None:
            self._signal_group(signal.SIGCONT)
        self._paused = False

    def _signal_group(self, sig: signal.Signals) -> None:
        """`sig` to the server and every process descended from it (by PID, read from /proc)."""
        for pid in [self.pid, *descendants(self.pid)]:
            with suppress(ProcessLookupError):
                os.kill(pid, sig)


    def stop(self) -> None:
        self.resume()
        if self.process.poll() is None:
            self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)


def descendants(pid: int) -> list[int]:
    """The PIDs of the processes descended from `pid` (children first), from /proc."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rpartition(")")[2].split()
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def wait_until(ready: Callable[[], bool], process: subprocess.Popen[bytes], log: Path, *, timeout: float = 60) -> None:
    """Poll `ready` until it says yes; raise with the server's log when the process exits or the (generous,
    hang-detecting) deadline passes."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
            raise RuntimeError(f"{process.args!r} did not start: {log.read_text(errors='replace')[-4000:]}")
        time.sleep(0.1)


def as_unprivileged(command: list[str]) -> list[str]:
    """`command` run as `nobody` when this is root (PostgreSQL refuses to run as root), via `setpriv`, which
    execs the command (so the PID is the server's); unchanged otherwise."""
    if os.geteuid() != 0:
        return command
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", *command]
