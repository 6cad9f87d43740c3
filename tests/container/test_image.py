"""The Dockerfile, built as a new user would (issue 17): wheels downloaded on the host with the one documented
command, a base image from debootstrap, `docker build --network=none`; then the container run on loopback
against a loopback upstream. Needs root for its private dockerd; skipped, saying why, where none can start."""

from __future__ import annotations

import datetime as dt
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import MINI_PYPI, REPO
from tests.proxy.conftest import AGE_POLICY
from tests.support.gate_server import free_port
from tests.support.pypi_model import UpstreamIndex
from tests.support.pypi_upstream import RunningUpstream, serve

from .engine import Engine, EngineUnavailableError, debian_base, private_engine, unavailable

pytestmark = pytest.mark.slow
WHEEL_COMMAND = "python3 -m pip download --dest wheels --only-binary :all: --python-version 3.11 '.[fleet]' setuptools"
NOW = dt.datetime.now(dt.UTC)
IMAGE = "gate-test:latest"


def test_one_wheel_command_documented() -> None:
    """The Dockerfile's header and docs/proxy.md give the same download command, the one this test runs."""
    assert WHEEL_COMMAND in (REPO / "Dockerfile").read_text()
    assert WHEEL_COMMAND in (REPO / "docs" / "proxy.md").read_text()
    assert "pip download" not in (REPO / "docs" / "proxy.md").read_text().replace(WHEEL_COMMAND, "")


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    reason = unavailable()
    if reason is not None:
        pytest.skip(f"no Docker engine can be started: {reason}")
    try:
        with private_engine() as started:
            yield started
    except EngineUnavailableError as err:  # "when a Docker engine can be started" (issue 17)
        pytest.skip(f"no Docker engine can be started: {err}")


def build_context(work: Path) -> Path:
    """The repository as a new user has it (without .git and .venv, which the test adds as dead weight that
    .dockerignore must keep out), with wheels downloaded by the documented command."""
    context = work / "context"
    junk = shutil.ignore_patterns(".git", ".venv", "wheels", "*.egg-info", "*_cache", "__pycache__")
    shutil.copytree(REPO, context, ignore=junk)
    (context / ".venv").mkdir()
    (context / ".venv" / "dead-weight").write_bytes(os.urandom(1 << 20) * 32)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k == "PIP_CERT"}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_CACHE_DIR="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    command = [sys.executable, *shlex.split(WHEEL_COMMAND)[1:]]
    downloaded = subprocess.run(command, cwd=context, env=env, capture_output=True, text=True, timeout=600,
                                check=False)
    assert downloaded.returncode == 0, downloaded.stdout[-3000:] + downloaded.stderr[-3000:]
    return context


@pytest.fixture(scope="module")
def image(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> str:
    work = tmp_path_factory.mktemp("image")
    base = debian_base(engine, work)
    context = build_context(work)
    wheels_mib = sum(p.stat().st_size for p in (context / "wheels").iterdir()) / (1 << 20)
    built = engine.run("build", "--network=none", "--build-arg", f"BASE={base}", "--tag", IMAGE, str(context),
                       timeout=900)
    sent = re.search(r"Sending build context to Docker daemon\s+([0-9.]+)([kMG]?B)", built.stdout)
    assert sent, built.stdout[-3000:]
    scale = {"B": 1 / (1 << 20), "kB": 1 / 1024, "MB": 1.0, "GB": 1024.0}[sent.group(2)]
    assert float(sent.group(1)) * scale < wheels_mib + 8, f"build context {sent.group(0)}: .dockerignore leaks"
    return IMAGE


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningUpstream]:
    index = UpstreamIndex.from_mini_pypi(MINI_PYPI, work_dir=tmp_path_factory.mktemp("upstream"))
    index.add_wheel("demo", "1.0", upload_time=NOW - dt.timedelta(days=60))
    index.add_wheel("demo", "2.0", upload_time=NOW - dt.timedelta(days=2))
    with serve(index) as running:
        yield running


@pytest.fixture(scope="module")
def policies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A policy directory the container's user (uid 10001) can read."""
    directory = tmp_path_factory.mktemp("policies")
    (directory / "age.yaml").write_text(AGE_POLICY)
    directory.chmod(0o755)
    (directory / "age.yaml").chmod(0o644)
    return directory


def start(engine: Engine, image: str, name: str, *, policies: Path, upstream: RunningUpstream, port: int) -> str:
    """Run the image with host networking, listening on 127.0.0.1:`port` (given as `--port`, as a user would),
    probed every 2 s; return its base URL once Docker reports it healthy."""
    engine.run("run", "--detach", "--name", name, "--network", "host", "--health-interval", "2s",
               "--volume", f"{policies}:/etc/gate/policies:ro", image,
               "--policy", "/etc/gate/policies", "--upstream", upstream.url, "--host", "127.0.0.1",
               "--port", str(port))
    deadline = time.monotonic() + 120
    status = ""
    while status != "healthy":
        state = engine.run("inspect", "--format", "{{.State.Status}} {{.State.Health.Status}}", name).stdout.split()
        status = state[1]
        if state[0] != "running" or status == "unhealthy" or time.monotonic() > deadline:
            logs = engine.run("logs", name, check=False)
            health = engine.run("inspect", "--format", "{{json .State.Health}}", name, check=False).stdout
            raise AssertionError(f"container {name} is {state}:\n{logs.stdout}{logs.stderr}\n{health}")
        time.sleep(0.5)
    return f"http://127.0.0.1:{port}"


def logs(engine: Engine, name: str) -> str:
    result = engine.run("logs", name)
    return result.stdout + result.stderr


def test_image_serves_filtered_pages_healthy_and_unprivileged(
    engine: Engine, image: str, policies: Path, upstream: RunningUpstream
) -> None:
    url = start(engine, image, "gate-smoke-1", policies=policies, upstream=upstream, port=free_port())
    health = requests.get(f"{url}/-/health", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    page = requests.get(f"{url}/simple/demo/", timeout=30)
    assert page.status_code == 200
    assert "demo-1.0-py3-none-any.whl" in page.text
    assert "demo-2.0-py3-none-any.whl" not in page.text
    denied = requests.get(f"{url}/files/demo/demo-2.0-py3-none-any.whl", timeout=30)
    assert denied.status_code == 403
    assert "age/minimumAge" in denied.text

    pid = engine.run("inspect", "--format", "{{.State.Pid}}", "gate-smoke-1").stdout.strip()
    uids = re.search(r"^Uid:\s+(\d+)\s+(\d+)", Path(f"/proc/{pid}/status").read_text(), re.MULTILINE)
    assert uids and uids.groups() == ("10001", "10001")
    text = logs(engine, "gate-smoke-1")
    assert "Control server error" not in text and "Permission denied" not in text, text
    assert "Listening at: http://127.0.0.1:" in text


def test_image_has_no_pip_or_setuptools(engine: Engine, image: str) -> None:
    probe = "import importlib.util as u; print([m for m in ('pip', 'setuptools') if u.find_spec(m)])"
    result = engine.run("run", "--rm", "--network", "none", "--entrypoint", "python3", image, "-c", probe)
    assert result.stdout.strip() == "[]"


def test_image_has_the_fleet_clients(engine: Engine, image: str) -> None:
    """The Redis and PostgreSQL clients of --cache-url and --audit-url (the `fleet` extra; docs/deploy.md)."""
    probe = "import hiredis, psycopg, redis; print(psycopg.pq.__impl__)"
    result = engine.run("run", "--rm", "--network", "none", "--entrypoint", "python3", image, "-c", probe)
    assert result.stdout.strip() == "binary"


def test_image_healthy_on_another_port(
    engine: Engine, image: str, policies: Path, upstream: RunningUpstream
) -> None:
    url = start(engine, image, "gate-smoke-2", policies=policies, upstream=upstream, port=free_port())
    assert requests.get(f"{url}/-/health", timeout=10).status_code == 200
    assert "Control server error" not in logs(engine, "gate-smoke-2")
