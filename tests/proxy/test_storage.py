"""Storage trouble: an unusable cache directory stops `gate serve` at start with one clear line and exit 2
(threaded and under gunicorn); audit records that cannot be written (a full disk: /dev/full) are counted,
reported by health, and in compliance mode (`--audit-required`) refuse the download."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import PolicyWriter
from tests.support.gate_server import VENV_BIN, free_port
from tests.support.pypi_upstream import RunningUpstream

from .conftest import AGE_POLICY, AppFactory

FULL_DISK = Path("/dev/full")  # every write fails with ENOSPC


def _corrupt_db(cache: Path) -> None:
    cache.mkdir()
    (cache / "cache.sqlite3").write_bytes(b"not a database " * 1000)


def _a_file(cache: Path) -> None:
    cache.write_text("a file where the cache directory should be")


Spoil = Callable[[Path], None]
CASES = {
    "corrupt-db": (_corrupt_db, [], "file is not a database"),
    "not-a-directory": (_a_file, [], "cache directory"),
    "audit-log-a-directory": (lambda cache: None, ["--audit-log", "/"], "cannot use the audit log /"),
}


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_an_unusable_cache_is_one_line_and_exit_2(
    tmp_path: Path, write_policy: PolicyWriter, upstream: RunningUpstream, workers: str, case: str
) -> None:
    spoil, extra, wanted = CASES[case]
    cache = tmp_path / "cache"
    spoil(cache)
    args = ["serve", "--policy", str(write_policy(AGE_POLICY)), "--upstream", upstream.url, "--cache-dir", str(cache),
            "--port", str(free_port()), "--workers", workers, *extra]
    result = subprocess.run([str(VENV_BIN / "gate"), *args], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2, result.stderr
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cannot use the") and wanted in lines[0], lines
    assert "Traceback" not in result.stderr and "Worker failed to boot" not in result.stderr


def test_lost_audit_records_are_counted_and_reported(make_app: AppFactory, write_policy: PolicyWriter) -> None:
    client = make_app(write_policy(AGE_POLICY), audit_log=FULL_DISK).test_client()
    assert client.get("/-/health").json["status"] == "ok"  # type: ignore[index]
    response = client.get("/files/demo/demo-1.0-py3-none-any.whl")
    assert response.status_code == 200  # by default the file is served and the loss is reported
    assert client.get("/files/demo/demo-2.0-py3-none-any.whl").status_code == 403
    health = client.get("/-/health")
    assert health.status_code == 200
    assert health.json is not None and health.json["status"] == "degraded" and health.json["audit_failures"] == 2
    assert "No space left on device" in health.json["audit_error"]
    assert "gate_audit_failures_total 2" in client.get("/-/metrics").text


def test_compliance_mode_refuses_what_it_cannot_record(make_app: AppFactory, write_policy: PolicyWriter) -> None:
    client = make_app(write_policy(AGE_POLICY), audit_log=FULL_DISK, audit_required=True).test_client()
    response = client.get("/files/demo/demo-1.0-py3-none-any.whl")
    assert response.status_code == 503 and "audit record could not be written" in response.text
    assert response.headers["Retry-After"] == "30"
    assert client.get("/files/demo/demo-2.0-py3-none-any.whl").status_code == 403  # refused either way
    health = client.get("/-/health")
    assert health.status_code == 503 and health.json is not None and health.json["status"] == "degraded"
    assert 'endpoint="pypi.download",status="503"} 1' in client.get("/-/metrics").text


def test_compliance_mode_serves_what_it_recorded(
    make_app: AppFactory, write_policy: PolicyWriter, tmp_path: Path
) -> None:
    client = make_app(write_policy(AGE_POLICY), audit_required=True).test_client()
    assert client.get("/files/demo/demo-1.0-py3-none-any.whl").status_code == 200
    health = client.get("/-/health").json
    assert health is not None and health["status"] == "ok" and "audit_failures" not in health
    assert "demo-1.0-py3-none-any.whl" in (tmp_path / "cache" / "audit.jsonl").read_text()
