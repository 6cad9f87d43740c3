"""Tests proving the local upstream index's built wheels are valid and that real installers (pip, uv) install
them from it, and refuse tampered ones."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import DEMO_WHEEL
from .gate_server import VENV_BIN, clean_env
from .pypi_upstream import RunningUpstream
from .pypi_wheels import build_wheel

Completed = subprocess.CompletedProcess[str]
Installer = Callable[..., Completed]


# -- wheels -----------------------------------------------------------------------------------------


def test_build_wheel_is_a_valid_deterministic_wheel(tmp_path: Path) -> None:
    path = build_wheel(tmp_path / "a", "My.Package", "2.0.1", requires_python=">=3.8")
    again = build_wheel(tmp_path / "b", "My.Package", "2.0.1", requires_python=">=3.8")
    assert path.name == "my_package-2.0.1-py3-none-any.whl"
    assert path.read_bytes() == again.read_bytes()
    with zipfile.ZipFile(path) as wheel:
        names = wheel.namelist()
        metadata = wheel.read("my_package-2.0.1.dist-info/METADATA").decode()
        record = wheel.read("my_package-2.0.1.dist-info/RECORD").decode().splitlines()
        contents = {name: wheel.read(name) for name in names}
    assert "my_package.py" in names
    assert "Requires-Python: >=3.8" in metadata
    assert "Name: My.Package" in metadata
    for line in record:
        member, digest, size = line.rsplit(",", 2)
        if member.endswith("RECORD"):
            assert digest == size == ""
            continue
        data = contents[member]
        assert int(size) == len(data)
        expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        assert digest == f"sha256={expected}"


# -- real installers ----------------------------------------------------------------------------------


def run_installer(command: list[str], target: Path) -> subprocess.CompletedProcess[str]:
    """Run an installer with :func:`clean_env` (its uv cache next to ``target``)."""
    env = clean_env(target.parent)
    return subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=300)


def pip_install(upstream: RunningUpstream, target: Path, *requirements: str) -> Completed:
    """``pip install --target`` from the upstream only."""
    command = [str(VENV_BIN / "python"), "-m", "pip", "install", "--no-cache-dir", "--no-input"]
    command += ["--target", str(target), "--index-url", upstream.url]
    return run_installer([*command, *requirements], target)


def uv_install(upstream: RunningUpstream, target: Path, *requirements: str) -> Completed:
    """``uv pip install --target`` from the upstream only."""
    command = [str(VENV_BIN / "uv"), "pip", "install", "--python", str(VENV_BIN / "python")]
    command += ["--target", str(target), "--index-url", upstream.url]
    return run_installer([*command, *requirements], target)


@pytest.mark.slow
@pytest.mark.parametrize("install", [pip_install, uv_install], ids=["pip", "uv"])
def test_installer_installs_built_wheel(
    upstream: RunningUpstream, tmp_path: Path, install: Installer
) -> None:
    result = install(upstream, tmp_path / "target", "gate-demo")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "target" / "gate_demo.py").read_text().endswith('__version__ = "1.1"\n')
    assert "/simple/gate-demo/" in upstream.request_log
    assert f"/files/{DEMO_WHEEL}" in upstream.request_log


@pytest.mark.slow
@pytest.mark.parametrize("install", [pip_install, uv_install], ids=["pip", "uv"])
def test_installer_rejects_tampered_wheel(
    upstream: RunningUpstream, tmp_path: Path, install: Installer
) -> None:
    upstream.tamper_file(DEMO_WHEEL)
    result = install(upstream, tmp_path / "target", "gate-demo")
    assert result.returncode != 0
    assert "hash" in result.stderr.lower()
    assert f"/files/{DEMO_WHEEL}" in upstream.request_log


@pytest.mark.slow
def test_pip_installs_real_fixture_wheel(upstream: RunningUpstream, tmp_path: Path) -> None:
    result = pip_install(upstream, tmp_path / "target", "--no-deps", "sampleproject==4.0.0")
    assert result.returncode == 0, result.stderr
    assert "/files/sampleproject-4.0.0-py3-none-any.whl" in upstream.request_log
