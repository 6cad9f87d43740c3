"""Progress on long work: a bar on stderr when it is a terminal (a real pseudo-terminal here), nothing
when stderr is a pipe or a file, and stdout (the report) never mixed with it."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO
from tests.support.gate_server import VENV_BIN
from tests.support.pypi_wheels import build_wheel

POLICY = "apiVersion: gate/v1\nkind: Policy\nmetadata: {name: any}\nspec: {rules: []}\n"


def _wheelhouse(tmp_path: Path) -> tuple[Path, Path]:
    house = tmp_path / "wheelhouse"
    for i in range(3):
        build_wheel(house, f"demo{i}", "1.0")
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    return house, policy


def test_a_bar_on_a_terminal(tmp_path: Path) -> None:
    house, policy = _wheelhouse(tmp_path)
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "100", "TERM": "xterm"}
    with subprocess.Popen([str(VENV_BIN / "gate"), "check", "-p", str(policy), "--format", "json", str(house)],
                          stdout=subprocess.PIPE, stderr=follower, cwd=REPO, env=env) as process:
        os.close(follower)
        drawn = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            drawn += chunk
        out, _ = process.communicate(timeout=120)
    os.close(leader)
    assert process.returncode == 0
    assert b"checking files" in drawn and b"3/3" in drawn
    assert out.startswith(b"{") and b"checking" not in out  # the report is untouched


def test_nothing_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    house, policy = _wheelhouse(tmp_path)
    result = subprocess.run([sys.executable, "-m", "gate", "check", "-p", str(policy), str(house)],
                            capture_output=True, cwd=REPO, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
