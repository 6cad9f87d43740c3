"""Real installers (newest pip, the machine's pip, uv) through a real `gate serve` on loopback."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import MINI_PYPI
from tests.support.gate_server import VENV_BIN, clean_env, running_gate
from tests.support.pypi_model import UpstreamIndex
from tests.support.pypi_upstream import RunningUpstream, serve

from .conftest import AGE_POLICY, ATTESTED_POLICY

pytestmark = pytest.mark.slow
REAL_NOW = dt.datetime.now(dt.UTC)


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningUpstream]:
    index = UpstreamIndex.from_mini_pypi(MINI_PYPI, work_dir=tmp_path_factory.mktemp("upstream"))
    for version, days in (("1.0", 60), ("1.5", 20), ("2.0", 2)):
        index.add_wheel("demo", version, upload_time=REAL_NOW - dt.timedelta(days=days))
    index.add_wheel("tampered", "1.0", upload_time=REAL_NOW - dt.timedelta(days=60))
    index.add_wheel("fresh", "1.0", upload_time=REAL_NOW - dt.timedelta(days=1))  # every file denied
    with serve(index) as running:
        running.tamper_file("tampered-1.0-py3-none-any.whl")
        yield running


@pytest.fixture(scope="module")
def gate_url(upstream: RunningUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`gate serve` under gunicorn (one worker) with the age policy and the sampleproject attestation policy."""
    tmp = tmp_path_factory.mktemp("gate")
    (tmp / "age.yaml").write_text(AGE_POLICY)
    (tmp / "attested.yaml").write_text(ATTESTED_POLICY)
    policies = ["--policy", str(tmp / "age.yaml"), "--policy", str(tmp / "attested.yaml")]
    args = [*policies, "--upstream", upstream.url, "--cache-dir", str(tmp / "cache"), "--workers", "1"]
    with running_gate(args, tmp / "serve.log") as url:
        yield url


@pytest.fixture(scope="module")
def old_pip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The machine's pip, in a venv made with the system python3 (skipped if that pip is missing)."""
    venv = tmp_path_factory.mktemp("old-pip") / "venv"
    subprocess.run(["python3", "-m", "venv", str(venv)], check=True, env={**os.environ, "PIP_CONFIG_FILE": "/dev/null"})
    python = venv / "bin" / "python"
    version = subprocess.run([str(python), "-m", "pip", "--version"], capture_output=True, text=True, check=False)
    if version.returncode != 0:
        pytest.skip(f"the machine's python3 has no usable pip: {version.stderr}")
    return python


def pip(python: Path, gate: str, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    target = tmp / "target"
    return subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--target", str(target), "--index-url",
         f"{gate}/simple/", *args],
        capture_output=True, text=True, env=clean_env(tmp), timeout=120, check=False,
    )


def installed(tmp: Path) -> list[str]:
    return sorted(p.name for p in (tmp / "target").glob("*.dist-info"))


@pytest.mark.parametrize("which", ["newest", "machine"])
def test_pip_installs_the_newest_compliant_version(
    which: str, gate_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    python = Path(sys.executable) if which == "newest" else request.getfixturevalue("old_pip")
    result = pip(python, gate_url, tmp_path, "demo")
    assert result.returncode == 0, result.stderr
    assert installed(tmp_path) == ["demo-1.5.dist-info"]  # 2.0 is two days old


def test_pip_installs_attested_sampleproject_and_cannot_see_unattested(gate_url: str, tmp_path: Path) -> None:
    result = pip(Path(sys.executable), gate_url, tmp_path, "sampleproject")
    assert result.returncode == 0, result.stderr
    assert installed(tmp_path) == ["sampleproject-4.0.0.dist-info"]
    hidden = pip(Path(sys.executable), gate_url, tmp_path, "sampleproject==3.0.0")
    assert hidden.returncode != 0 and "3.0.0" in hidden.stderr


def test_pip_uploaded_prior_to_works_through_gate(gate_url: str, tmp_path: Path) -> None:
    cutoff = (REAL_NOW - dt.timedelta(days=45)).isoformat()
    result = pip(Path(sys.executable), gate_url, tmp_path, "--uploaded-prior-to", cutoff, "demo")
    assert result.returncode == 0, result.stderr
    assert installed(tmp_path) == ["demo-1.0.dist-info"]


def test_uv_install_and_compile(gate_url: str, tmp_path: Path) -> None:
    uv = str(VENV_BIN / "uv")
    env = clean_env(tmp_path)
    index = ["--index-url", f"{gate_url}/simple/"]
    install = subprocess.run(
        [uv, "pip", "install", "--no-deps", "--target", str(tmp_path / "target"), "--python", sys.executable,
         *index, "demo"], capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    assert install.returncode == 0, install.stderr
    assert installed(tmp_path) == ["demo-1.5.dist-info"]
    (tmp_path / "requirements.in").write_text("demo\n")
    for extra, expected in (([], "demo==1.5"), (["--exclude-newer", (REAL_NOW - dt.timedelta(days=45)).isoformat()],
                                                  "demo==1.0")):
        compiled = subprocess.run(
            [uv, "pip", "compile", "--python", sys.executable, "--no-header", *index, *extra,
             str(tmp_path / "requirements.in")], capture_output=True, text=True, env=env, timeout=120, check=False,
        )
        assert compiled.returncode == 0, compiled.stderr
        assert expected in compiled.stdout


AGE_MESSAGE = r"age/minimumAge: uploaded [0-9T:-]+Z; allowed from [0-9T:-]+Z \(minimum age 7d\)"


def test_direct_download_of_denied_file_is_403_with_reason(gate_url: str) -> None:
    response = requests.get(f"{gate_url}/files/demo/demo-2.0-py3-none-any.whl", timeout=10)
    assert response.status_code == 403
    assert re.search(AGE_MESSAGE, response.text)
    assert re.match("Denied by gate policy " + AGE_MESSAGE, response.reason)


def test_pip_prints_the_reason_for_a_denied_download(gate_url: str, tmp_path: Path) -> None:
    """pip shows the 403's reason phrase (not the body): the rule and its message reach the person."""
    result = pip(Path(sys.executable), gate_url, tmp_path, f"{gate_url}/files/demo/demo-2.0-py3-none-any.whl")
    assert result.returncode != 0
    assert re.search("Denied by gate policy " + AGE_MESSAGE, result.stdout + result.stderr)


def test_uv_prints_the_reason_for_a_denied_download(gate_url: str, tmp_path: Path) -> None:
    """uv, like pip, shows the 403's reason phrase: the rule reaches the person."""
    result = subprocess.run(
        [str(VENV_BIN / "uv"), "pip", "install", "--no-deps", "--target", str(tmp_path / "target"), "--python",
         sys.executable, f"demo @ {gate_url}/files/demo/demo-2.0-py3-none-any.whl"],
        capture_output=True, text=True, env=clean_env(tmp_path), timeout=120, check=False,
    )
    assert result.returncode != 0
    assert "Denied by gate policy age/minimumAge" in result.stdout + result.stderr


def test_a_denied_download_and_an_emptied_page_point_to_the_explanation(gate_url: str, tmp_path: Path) -> None:
    refused = requests.get(f"{gate_url}/files/demo/demo-2.0-py3-none-any.whl", timeout=10)
    assert f"{gate_url}/-/explain/demo" in refused.text
    page = requests.get(f"{gate_url}/simple/fresh/", headers={"Accept": "application/vnd.pypi.simple.v1+json"},
                        timeout=10).json()
    assert page["files"] == []
    assert page["project-status"]["status"] == "active"
    assert f"{gate_url}/-/explain/fresh" in page["project-status"]["reason"]
    html = requests.get(f"{gate_url}/simple/fresh/", headers={"Accept": "text/html"}, timeout=10).text
    assert '<meta name="pypi:project-status-reason"' in html and "/-/explain/fresh" in html
    explained = requests.get(f"{gate_url}/-/explain/fresh", headers={"Accept": "application/json"}, timeout=10).json()
    assert explained["newestAllowed"] is None and [f["verdict"] for f in explained["files"]] == ["deny"]
    assert explained["files"][0]["allowedFrom"] is not None
    # pip and uv read the page with its status reason as before: nothing to install, no crash
    result = pip(Path(sys.executable), gate_url, tmp_path, "fresh")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "No matching distribution found for fresh" in result.stdout + result.stderr
    uv = subprocess.run(
        [str(VENV_BIN / "uv"), "pip", "install", "--no-deps", "--target", str(tmp_path / "uv"), "--python",
         sys.executable, "--index-url", f"{gate_url}/simple/", "fresh"],
        capture_output=True, text=True, env=clean_env(tmp_path), timeout=120, check=False,
    )
    assert uv.returncode != 0 and "panic" not in uv.stderr.lower()
    assert "fresh" in uv.stderr


def test_tampered_upstream_file_is_never_delivered(gate_url: str, tmp_path: Path) -> None:
    result = pip(Path(sys.executable), gate_url, tmp_path, "tampered")
    assert result.returncode != 0
    assert installed(tmp_path) == []
    try:  # small files fail before the headers (5xx), larger ones are cut off before their last chunk
        response = requests.get(f"{gate_url}/files/tampered/tampered-1.0-py3-none-any.whl", timeout=10)
    except requests.exceptions.ChunkedEncodingError:
        return
    assert response.status_code >= 500
