"""Audit sinks other than the file: the PostgreSQL table (every record kept as written, whatever an upstream put
in a filename; read back newest first by any replica) and standard output; and how `gate serve` takes the shared
engines' URLs and secrets (a mistake is exit 2 with one line that never shows a password)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest

from gate.proxy.audit import AuditLog, StdoutSink
from gate.proxy.metrics import Metrics
from gate.proxy.settings import Settings
from gate.proxy.stores import audit_table, open_store, secrets_of, where
from gate.proxy.stores.audit_table import TableSink
from tests.support.backend_process import BackendProcess
from tests.support.gate_server import VENV_BIN, free_port

from .conftest import SECRET


def record(filename: str, verdict: str = "deny", **extra: Any) -> dict[str, Any]:
    return {"time": "2026-11-01T00:00:00Z", "client": "127.0.0.1", "event": "download", "ecosystem": "pypi",
            "project": "demo", "file": filename, "sha256": "0" * 64, "verdict": verdict, "served": False,
            "rules": [{"policy": "age", "rule": "minimumAge", "message": "too young", "enforced": True}], **extra}


def test_the_table_keeps_every_record_as_written(shared_postgres: BackendProcess) -> None:
    url = shared_postgres.url
    audit = AuditLog(TableSink(url, where(url), secrets_of(url)), Metrics())
    # NUL, a newline, markup, a bidi override, a lone surrogate (a name that is not UTF-8)
    hostile = "demo-1.0\u0000\n<script>\u202e\udcff-py3-none-any.whl"
    batch = [record(hostile), record("demo-0.9-py3-none-any.whl", verdict="allow"), record("x" * 5000 + ".whl")]
    audit.write(batch)
    assert audit.written() and not audit.failing
    other = AuditLog(TableSink(url, where(url), secrets_of(url)))  # another replica reads what this one wrote
    assert isinstance(other.sink, TableSink)
    newest = other.sink.recent_denials(2)
    assert newest == [batch[2], batch[0]]  # denials only, newest first, each exactly as written
    with psycopg.connect(url, autocommit=True) as connection:  # a huge row (whoever may insert) is not read back
        connection.execute("INSERT INTO gate_audit (time, replica, verdict, record) VALUES (now(), 'x', 'deny', %s)",
                           ('{"file": "' + "y" * (2 << 20) + '"}',))
    assert other.sink.recent_denials(2) == [batch[2], batch[0]]
    with psycopg.connect(url) as connection:
        row = connection.execute(
            "SELECT time, verdict, replica FROM gate_audit WHERE record::text LIKE %s", ("%demo-0.9-py3%",)).fetchone()
    assert row is not None and row[0] == dt.datetime(2026, 11, 1, tzinfo=dt.UTC) and row[1] == "allow" and row[2]
    audit.close()
    other.close()


def test_a_lost_table_write_is_counted_without_the_password(own_postgres: BackendProcess) -> None:
    url = own_postgres.url
    metrics = Metrics()
    audit = AuditLog(TableSink(url, where(url), secrets_of(url)), metrics)
    audit.write([record("a.whl")])
    assert audit.written()
    own_postgres.kill()
    audit.write([record("b.whl"), record("c.whl")])
    assert not audit.written() and audit.failing and audit.failures == 2
    audit.write([record("d.whl")])  # at once: the server is left alone a few seconds after it failed
    assert not audit.written() and audit.failures == 3 and audit.error is not None
    assert "not tried" in audit.error and own_postgres.password not in audit.error
    assert "gate_audit_failures_total 3" in metrics.render()
    assert own_postgres.password not in audit.sink.where
    audit.close()


def test_a_percent_encoded_password_is_hidden_as_the_server_sees_it_too() -> None:
    url = "postgresql://gate:p%40ss%2Fw0rd@db/gate?password=q%26x-pw"
    assert set(secrets_of(url)) == {"p%40ss%2Fw0rd", "p@ss/w0rd", "q&x-pw"}
    sink = TableSink(url, where(url), secrets_of(url))
    assert sink.scrub("auth failed: p@ss/w0rd, q&x-pw") == "auth failed: ***, ***"


def test_stdout_gets_one_line_per_record(capfd: pytest.CaptureFixture[str]) -> None:
    audit = AuditLog(StdoutSink())
    audit.write([record("a\nb.whl"), record("c.whl")])
    lines = capfd.readouterr().out.splitlines()
    assert len(lines) == 2 and '"file":"a\\nb.whl"' in lines[0] and audit.written()


def test_a_file_name_that_is_not_utf8_is_recorded_exactly(capfd: pytest.CaptureFixture[str]) -> None:
    """A lone surrogate (what a non-UTF-8 name decodes to) is no UTF-8: its record is still one JSON line that
    reads back as written, and the rest of the batch is kept."""
    audit = AuditLog(StdoutSink())
    batch = [record("demo-1.0-\udcff\u00e9.whl"), record("demo-0.9.whl")]
    audit.write(batch)
    lines = capfd.readouterr().out.splitlines()
    assert audit.written() and [json.loads(line) for line in lines] == batch


def serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    policy = tmp_path / "p.yaml"
    policy.write_text("apiVersion: gate/v1\nkind: Policy\nmetadata: {name: p}\nspec: {minimumAge: 1d}\n")
    command = [str(VENV_BIN / "gate"), "serve", "--policy", str(policy), "--port", str(free_port()), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False, env=env)


SECRET_TEXT = "s3cr3t-passw0rd"
CASES = {
    "no-secret": (["--cache-url", f"redis://:{SECRET_TEXT}@127.0.0.1:1/0"], "needs --cache-secret-file"),
    "scheme": (["--cache-url", f"memcached://gate:{SECRET_TEXT}@127.0.0.1:1"], "a cache URL is redis://"),
    "audit-scheme": (["--audit-url", f"mysql://gate:{SECRET_TEXT}@db/gate"], "an audit URL is stdout or"),
    "both-audits": (["--audit-url", "stdout", "--audit-log", "a.jsonl"], "not both"),
    "short-secret": (["--cache-secret-file", "SHORT"], "at least 16 characters"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_mistake_is_exit_2_without_the_password(tmp_path: Path, case: str) -> None:
    args, wanted = CASES[case]
    (tmp_path / "SHORT").write_text("short\n")
    args = [str(tmp_path / a) if a == "SHORT" else a for a in args]
    result = serve(tmp_path, *args)
    assert result.returncode == 2, result.stderr
    assert wanted in result.stderr and SECRET_TEXT not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_the_urls_and_the_secret_come_from_the_environment(tmp_path: Path) -> None:
    env = {"GATE_POLICY": str(tmp_path), "GATE_CACHE_URL": "redis://:PW-R3d1s@127.0.0.1:6379/2",
           "GATE_CACHE_SECRET": "0123456789abcdef-SEAL", "GATE_AUDIT_URL": "postgresql://gate:PW-P0stgr3s@db/gate"}
    settings = Settings.from_env(env)
    assert settings.cache_url == env["GATE_CACHE_URL"] and settings.cache_secret == b"0123456789abcdef-SEAL"
    assert settings.audit_url == env["GATE_AUDIT_URL"]
    assert not any(s in repr(settings) for s in ("PW-R3d1s", "PW-P0stgr3s", "abcdef-SEAL"))
    with pytest.raises(ValueError, match="needs --cache-secret-file"):
        Settings.from_env({**env, "GATE_CACHE_SECRET": ""})


def test_a_gate_without_shared_engines_loads_no_client_library() -> None:
    """redis and psycopg (the `fleet` extra) are imported only when a URL names them."""
    probe = ("import sys; from gate.proxy.app import open_storage; from gate.proxy.settings import Settings; "
             "open_storage(Settings(policies=())); print(sorted(m for m in ('redis', 'psycopg') if m in sys.modules))")
    loaded = subprocess.run([str(VENV_BIN / "python"), "-c", probe], capture_output=True, text=True, check=True,
                            timeout=60)
    assert loaded.stdout.strip() == "[]"


def test_a_role_with_only_the_rights_it_needs(own_postgres: BackendProcess) -> None:
    """Tables made beforehand (by the owner, or the first start): a role that may only insert and read audit
    records (never change or delete them) and use the cache table, without CREATE on the schema, works."""
    owner = own_postgres.url
    first = AuditLog(audit_table(owner))
    first.write([record("first.whl")])
    first.close()
    made = open_store(owner, None, secret=SECRET)
    made.put("ns", "k", b"v")
    made.close()
    with psycopg.connect(owner, autocommit=True) as connection:
        for statement in (
            "CREATE ROLE replica LOGIN PASSWORD 'replica-password'", "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
            "GRANT INSERT, SELECT ON gate_audit TO replica", "GRANT USAGE ON SEQUENCE gate_audit_id_seq TO replica",
            "GRANT SELECT, INSERT, UPDATE, DELETE ON gate_cache TO replica",
        ):
            connection.execute(statement)
    url = owner.replace(f"gate:{own_postgres.password}@", "replica:replica-password@")
    audit = AuditLog(audit_table(url))
    audit.write([record("second.whl")])
    assert audit.written(), audit.error
    store = open_store(url, None, secret=SECRET)
    store.put("ns", "k2", b"v2")
    assert (entry := store.get("ns", "k")) is not None and entry.value == b"v" and store.get("ns", "k2") is not None
    audit.close()
    store.close()
    with psycopg.connect(url, autocommit=True) as connection, pytest.raises(psycopg.errors.InsufficientPrivilege):
        connection.execute("DELETE FROM gate_audit")
