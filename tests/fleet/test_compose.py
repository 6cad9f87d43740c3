"""compose.yaml (two gate replicas, Redis, PostgreSQL) says only what gate understands: every `--flag` its gate
services pass is one `gate serve --help` lists, the environment they set is what gate serve reads, the URLs
name the compose services, and no password is written into the file. Where docker-compose is installed
(Debian's, which .ci/run installs as root), it validates the file as well; running the stack needs the redis and
postgres images from a registry this machine cannot reach, so it is not started here (docs/deploy.md)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO
from tests.support.gate_server import VENV_BIN

COMPOSE = REPO / "compose.yaml"
SERVE_ENVIRONMENT = {"GATE_CACHE_URL", "GATE_AUDIT_URL", "GATE_CACHE_SECRET"}  # what `gate serve` reads
TEST_ENV = {"POSTGRES_PASSWORD": "pg-password-123", "REDIS_PASSWORD": "redis-password-456",
            "GATE_CACHE_SECRET": "cache-secret-0123456789"}


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def gate_services() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose()["services"].items() if s.get("image", "").startswith("gate")}


def serve_help() -> str:
    return subprocess.run([str(VENV_BIN / "gate"), "serve", "--help"], capture_output=True, text=True, check=True,
                          timeout=60, env={**os.environ, "COLUMNS": "200"}).stdout


def test_two_replicas_on_one_redis_and_one_postgres() -> None:
    services = compose()["services"]
    assert len(gate_services()) == 2
    assert {"redis", "postgres"} <= set(services)
    for service in gate_services().values():
        environment = service["environment"]
        assert environment["GATE_CACHE_URL"].startswith("redis://") and "@redis:6379" in environment["GATE_CACHE_URL"]
        assert environment["GATE_AUDIT_URL"].startswith("postgresql://") and "@postgres:5432/" in environment[
            "GATE_AUDIT_URL"]
        assert set(service["depends_on"]) == {"redis", "postgres"}


def test_every_flag_and_variable_is_one_gate_serve_knows() -> None:
    known = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", serve_help()))
    dockerfile = (REPO / "Dockerfile").read_text()
    entrypoint = re.search(r"^ENTRYPOINT (\[.*\])$", dockerfile, re.MULTILINE)
    assert entrypoint is not None
    for name, service in gate_services().items():
        flags = {word for word in service["command"] if word.startswith("--")}
        flags |= set(re.findall(r'"(--[a-z-]+)"', entrypoint.group(1)))
        assert flags and flags <= known, (name, sorted(flags - known))
        assert set(service["environment"]) <= SERVE_ENVIRONMENT, name
    assert all(v in serve_help() for v in ("GATE_CACHE_URL", "GATE_AUDIT_URL", "GATE_CACHE_SECRET"))


def test_no_password_is_written_in_the_file() -> None:
    values = [v for s in compose()["services"].values() for v in (s.get("environment") or {}).values()]
    values += [w for s in compose()["services"].values() for w in s.get("command") or [] if isinstance(w, str)]
    secrets = [v for v in values if re.search(r"redis://|postgresql://|PASSWORD|SECRET", v)]
    assert len(secrets) >= 6
    for value in secrets:  # each secret is a ${VARIABLE:?...} compose takes from .env, and must be given
        assert re.fullmatch(r"([a-z]+://[a-z]*:)?\$\{[A-Z_]+:\?[^}]+\}(@[a-z0-9:/]+)?", value), value


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed (apt-get "
                    "install docker-compose; .ci/run does as root)")
def test_docker_compose_accepts_it(tmp_path: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "COMPOSE_"))}, **TEST_ENV}
    result = subprocess.run(["docker-compose", "-f", str(COMPOSE), "config"], capture_output=True, text=True,
                            env=env, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    environment = resolved["services"]["gate-a"]["environment"]
    assert environment["GATE_CACHE_URL"] == "redis://:redis-password-456@redis:6379/0"
    assert environment["GATE_AUDIT_URL"] == "postgresql://gate:pg-password-123@postgres:5432/gate"
    missing = subprocess.run(["docker-compose", "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True,
                             env={k: v for k, v in env.items() if k != "GATE_CACHE_SECRET"}, timeout=120, check=False)
    assert missing.returncode != 0 and "GATE_CACHE_SECRET" in missing.stderr  # refused, not run without a secret
