"""Real installers through a real `gate serve`: with sampleproject 4.0.1 uploaded without provenance after
4.0.0 had it, pip and uv resolve `sampleproject` to 4.0.0 (the newest compliant release), and asking for 4.0.1
fails: it is not on the page."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import MINI_PYPI
from tests.continuity.conftest import policy
from tests.support.gate_server import VENV_BIN, clean_env, running_gate
from tests.support.pypi_model import UpstreamIndex
from tests.support.pypi_upstream import serve

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gate_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("continuity")
    index = UpstreamIndex.from_mini_pypi(MINI_PYPI, work_dir=tmp / "upstream")
    index.add_wheel("sampleproject", "4.0.1", upload_time=dt.datetime.now(dt.UTC) - dt.timedelta(days=3))
    (tmp / "continuity.yaml").write_text(policy())
    with serve(index) as upstream:
        args = ["--policy", str(tmp / "continuity.yaml"), "--upstream", upstream.url, "--cache-dir",
                str(tmp / "cache"), "--workers", "1"]
        with running_gate(args, tmp / "serve.log") as url:
            yield url


def _install(command: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, env=clean_env(tmp), timeout=120, check=False)


def test_pip_installs_the_release_that_kept_its_provenance(gate_url: str, tmp_path: Path) -> None:
    target = tmp_path / "target"
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), "--index-url",
           f"{gate_url}/simple/"]
    result = _install([*pip, "sampleproject"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in target.glob("*.dist-info")) == ["sampleproject-4.0.0.dist-info"]
    refused = _install([*pip, "sampleproject==4.0.1"], tmp_path / "again")
    assert refused.returncode != 0 and "4.0.1" in refused.stderr


def test_uv_resolves_to_the_release_that_kept_its_provenance(gate_url: str, tmp_path: Path) -> None:
    uv = VENV_BIN / "uv"
    if not uv.exists():
        pytest.skip("uv is not installed in this environment")
    requirements = tmp_path / "requirements.in"
    requirements.write_text("sampleproject\n")
    result = _install([str(uv), "pip", "compile", "--no-deps", "--index-url", f"{gate_url}/simple/",
                       "--no-header", str(requirements)], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "sampleproject==4.0.0" in result.stdout
