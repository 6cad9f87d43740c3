"""Real Redis and PostgreSQL servers for the fleet tests: one of each for the whole session (tests keep apart by
namespace), and fresh ones for tests that kill or pause them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.backend_process import BackendProcess
from tests.support.postgres_server import running_postgres
from tests.support.redis_server import running_redis

SECRET = b"fleet-test-secret-0123456789abcdef"


@pytest.fixture(scope="session")
def shared_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendProcess]:
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session")
def shared_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendProcess]:
    with running_postgres(tmp_path_factory.mktemp("postgres")) as server:
        yield server


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[BackendProcess]:
    """A Redis of this test's own (to kill or pause)."""
    with running_redis(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[BackendProcess]:
    """A PostgreSQL of this test's own (to kill or pause)."""
    with running_postgres(tmp_path / "postgres") as server:
        yield server
