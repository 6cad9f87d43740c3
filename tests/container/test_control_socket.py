"""`gate serve` opens no gunicorn control socket: gate has no use for `gunicornc`, and in the container the
user's HOME may not exist or be writable (issue 17: every start logged `Control server error`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.proxy.conftest import AGE_POLICY
from tests.support.gate_server import running_gate


def test_serve_opens_no_control_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    (tmp_path / "age.yaml").write_text(AGE_POLICY)
    log = tmp_path / "serve.log"
    args = ["--policy", str(tmp_path / "age.yaml"), "--upstream", "http://127.0.0.1:9/simple/",
            "--cache-dir", str(tmp_path / "cache"), "--workers", "1"]
    with running_gate(args, log):
        pass
    assert not (home / ".gunicorn").exists(), log.read_text()
    assert "Control server" not in log.read_text()
