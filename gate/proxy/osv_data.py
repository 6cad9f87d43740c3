"""The proxy's OSV data (`--osv`): loaded at start (a failure is a startup error), reloaded when its files
change, and judged for freshness.

At most every `interval` seconds a request checks the files' sizes and modification times; when they changed,
the new set is loaded completely and then swapped in, so there is never a moment with nothing (or half) loaded.
A reload that fails keeps the data already loaded, and is logged and counted. `digest` names the data in
use: decisions and rendered pages cached under another digest are not served. With `max_age`, data whose
newest record is older than that is stale and the proxy answers 503 (fail closed).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

from gate.facts import Ecosystem, Vulnerability, iso_z
from gate.sources.osv import OsvDatabase, OsvError

log = logging.getLogger(__name__)
WARN_AGE = dt.timedelta(days=7)  # without --osv-max-age, older data is reported (health: degraded), not refused


def _files(path: Path) -> Iterator[tuple[str, int, int]]:
    """(path, size, mtime_ns) of `path`, or of every file under it."""
    try:
        info = path.stat()
    except OSError:
        yield (str(path), -1, -1)
        return
    if not path.is_dir():
        yield (str(path), info.st_size, info.st_mtime_ns)
        return
    for root, dirs, names in os.walk(path):
        dirs.sort()
        for name in sorted(names):
            try:
                found = os.stat(os.path.join(root, name))
            except OSError:
                continue
            yield (os.path.join(root, name), found.st_size, found.st_mtime_ns)


def signature(paths: tuple[Path, ...]) -> str:
    """A digest of the names, sizes and modification times of every file under `paths`."""
    digest = hashlib.sha256()
    for path in paths:
        for name, size, mtime in _files(path):
            digest.update(f"{name}\0{size}\0{mtime}\n".encode())
    return digest.hexdigest()


def _since(moment: dt.datetime) -> int:
    """Seconds from `moment` to now by the wall clock (a load happens in real time, whatever clock decides)."""
    return int((dt.datetime.now(dt.UTC) - moment).total_seconds())


class Loaded(NamedTuple):
    """One complete load: the database and the signature of the files it was read from."""

    database: OsvDatabase
    signature: str


def read_osv(
    paths: tuple[Path, ...],
    load: Callable[[tuple[Path, ...]], OsvDatabase] = lambda paths: OsvDatabase.load(list(paths)),
) -> Loaded:
    """The data under `paths` with the signature its files had before they were read (a change made during
    the read is then seen at the next check); an OsvError names every problem."""
    before = signature(paths)
    return Loaded(load(paths), before)


class OsvData:
    """The OSV data the proxy decides with; `lookup` is the facts services' `VulnerabilityLookup`."""

    def __init__(
        self, paths: tuple[Path, ...], *, interval: float = 30.0, max_age: dt.timedelta | None = None,
        load: Callable[[tuple[Path, ...]], OsvDatabase] = lambda paths: OsvDatabase.load(list(paths)),
        on_reload: Callable[[str], None] = lambda outcome: None, loaded: Loaded | None = None,
    ) -> None:
        """`loaded`: the data as already read from `paths` (by `gate serve` before it forks its workers, which
        then share it instead of each reading it again)."""
        self.paths = paths
        self.interval = interval
        self.max_age = max_age
        self._load = load
        self._on_reload = on_reload  # "ok" or "failed", for the metrics
        self._current = loaded or self._read()  # a failure here is a startup error (OsvError)
        self._checked = time.monotonic()
        self._checking = threading.Lock()
        self.failures = 0
        self.error: str | None = None
        self._failed: str | None = None  # the signature of files that failed to load: tried again once they change

    def _read(self) -> Loaded:
        return read_osv(self.paths, self._load)

    @property
    def database(self) -> OsvDatabase:
        return self._current.database

    @property
    def digest(self) -> str:
        return self._current.signature

    def lookup(self, ecosystem: Ecosystem, name: str, version: str) -> tuple[Vulnerability, ...]:
        return self._current.database.lookup(ecosystem, name, version)

    def maybe_reload(self) -> None:
        """`reload` when `interval` has passed since the last check; other threads go on with the current data."""
        if time.monotonic() - self._checked < self.interval or not self._checking.acquire(blocking=False):
            return
        try:
            self._checked = time.monotonic()
            self.reload()
        finally:
            self._checking.release()

    def reload(self) -> bool:
        """Load the files again if they changed, and swap the new data in (True); keep the old on failure."""
        current = signature(self.paths)
        if current in (self._current.signature, self._failed):
            return False
        try:
            fresh = self._read()
            kept = self._current.database.records
            if fresh.database.records < kept // 2:  # a download cut short, a checkout half replaced
                raise OsvError([f"the new data holds {fresh.database.records} records, fewer than half of the "
                                f"{kept} loaded: not taken (restart gate serve to load it anyway)"])
        except (OsvError, OSError, ValueError) as err:
            self._failed = current
            self.failures += 1
            self.error = str(err)[:2000]
            log.error("reloading the OSV data failed; keeping the data loaded at %s: %s",
                      iso_z(self.database.loaded), self.error)
            self._on_reload("failed")
            return False
        self._current = fresh  # one assignment: every request sees the old set or the new one, whole
        self.error = self._failed = None
        log.info("reloaded the OSV data from %s", ", ".join(str(p) for p in self.paths))
        self._on_reload("ok")
        return True

    def age(self, now: dt.datetime) -> dt.timedelta | None:
        """How old the newest record is (None: the data holds no record with a `modified` time)."""
        newest = self.database.newest
        return None if newest is None else now - newest

    def stale(self, now: dt.datetime) -> str | None:
        """Why the data is too old to decide with under `max_age` (None: it is not, or no `max_age`)."""
        if self.max_age is None:
            return None
        age = self.age(now)
        if age is None:
            return "the OSV data holds no record with a modified time, so its age is unknown"
        if age > self.max_age:
            return (f"the OSV data is stale: its newest record was modified {iso_z(now - age)}, more than "
                    f"--osv-max-age {self.max_age} ago; update the files given with --osv")
        return None

    def health(self, now: dt.datetime) -> dict[str, object]:
        """What `/-/health` says of the data: sources, newest record, age, load time, reload failures."""
        database, age = self.database, self.age(now)
        body: dict[str, object] = {
            "sources": [str(p) for p in self.paths],
            "newest_modified": None if database.newest is None else iso_z(database.newest),
            "age_seconds": None if age is None else int(age.total_seconds()),
            "loaded": iso_z(database.loaded),
            "loaded_age_seconds": _since(database.loaded),
            "digest": self.digest,
            "reload_failures": self.failures,
            "stale": self.stale(now) is not None,
        }
        if self.max_age is not None:
            body["max_age_seconds"] = int(self.max_age.total_seconds())
        if self.error is not None:
            body["reload_error"] = self.error
        return body

    def old(self, now: dt.datetime) -> bool:
        """Whether the data is older than WARN_AGE (reported as degraded when no `max_age` refuses it)."""
        age = self.age(now)
        return age is None or age > (self.max_age or WARN_AGE)

    def gauges(self, now: dt.datetime) -> str:
        """Prometheus lines: the data's age and time since it was loaded, in seconds."""
        age = self.age(now)
        lines = [
            "# TYPE gate_osv_age_seconds gauge",
            f"gate_osv_age_seconds {-1 if age is None else int(age.total_seconds())}",
            "# TYPE gate_osv_loaded_age_seconds gauge",
            f"gate_osv_loaded_age_seconds {_since(self.database.loaded)}",
        ]
        return "\n".join(lines) + "\n"
