"""Where the proxy keeps what it fetched, verified and rendered: one `Store` (semantics and failure handling
in `base`) over SQLite (the embedded default, `sqlite`), Redis (`redis`) or PostgreSQL (`postgres`), chosen by
`--cache-url`; the audit table (`audit_table`, `--audit-url`); and the URL helpers they share (`where`).

The Redis and PostgreSQL modules are imported only when a URL names them: their client libraries are the
`fleet` extra (`pip install 'gate[fleet]'`), which a single gate with SQLite does not need."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from gate.proxy.audit import Sink
from gate.proxy.metrics import Metrics
from gate.proxy.settings import POSTGRES_SCHEMES, REDIS_SCHEMES
from gate.proxy.stores.base import Backend, Entry, Store, scrubber, stored_key
from gate.proxy.stores.sqlite import SqliteBackend
from gate.redact import redact

__all__ = ["Backend", "Entry", "Store", "audit_table", "open_store", "secrets_of", "stored_key", "where"]
EXTRA = "pip install 'gate[fleet]'"


def secrets_of(url: str) -> tuple[str, ...]:
    """The passwords in a backend URL (its userinfo, as written and percent-decoded as the client library sends
    it; a `password=` parameter): hidden wherever gate shows text."""
    parts = urlsplit(url)
    found = [parts.password or "", unquote(parts.password or "")]
    found += [v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() == "password"]
    return tuple(dict.fromkeys(s for s in found if s))


def where(url: str) -> str:
    """`url` as gate shows it: without userinfo or secret parameters (`redact`), and without any password
    text left in it."""
    return scrubber(*secrets_of(url))(redact(url))


def open_store(url: str | None, path: Path | None, *, metrics: Metrics | None = None,
               secret: bytes | None = None) -> Store:
    """The store at `url` (redis://, postgresql://), or SQLite at `path` (None: in memory) without one.

    A network engine that cannot be reached now is not an error (it is a miss until it answers); a URL gate
    does not understand, or a SQLite file it cannot use, raises (ValueError, OSError, sqlite3.Error)."""
    backend: Backend
    if url is None:
        backend = SqliteBackend(path)
    elif urlsplit(url).scheme in REDIS_SCHEMES:
        try:
            from gate.proxy.stores.redis import RedisBackend  # noqa: PLC0415 (the fleet extra, when named)
        except ImportError as err:
            raise ValueError(f"--cache-url {where(url)} needs the redis package ({EXTRA}): {err}") from None
        backend = RedisBackend(url, where(url))
    elif urlsplit(url).scheme in POSTGRES_SCHEMES:
        try:
            from gate.proxy.stores.postgres import PostgresBackend  # noqa: PLC0415 (the fleet extra, when named)
        except ImportError as err:
            raise ValueError(f"--cache-url {where(url)} needs the psycopg package ({EXTRA}): {err}") from None
        backend = PostgresBackend(url, where(url))
    else:
        raise ValueError(f"a cache URL is redis://, rediss:// or postgresql://, got {where(url)!r}")
    return Store(backend, metrics=metrics, secret=secret, scrub=scrubber(*secrets_of(url or "")))


def audit_table(url: str) -> Sink:
    """The audit table `gate_audit` at the postgresql:// `url` (made on first use); ValueError without psycopg."""
    try:
        from gate.proxy.stores.audit_table import TableSink  # noqa: PLC0415 (the fleet extra, when named)
    except ImportError as err:
        raise ValueError(f"--audit-url {where(url)} needs the psycopg package ({EXTRA}): {err}") from None
    return TableSink(url, where(url), secrets_of(url))
