"""Shared paths (the repository and ../shared/fixtures beside it) and fixtures: the loopback upstream index
and a private rattler cache."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask

from tests.support.pypi_model import UpstreamIndex
from tests.support.pypi_upstream import RunningUpstream, serve
from tests.support.wsgi_client import ClosingClient

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
FIXTURES = SHARED / "fixtures"
ATTESTATIONS = FIXTURES / "attestations"
MINI_PYPI = FIXTURES / "index" / "mini-pypi"


def pytest_configure(config: pytest.Config) -> None:
    """Stop with one line, before any test module reads them, when the shared fixtures are missing. Test
    clients read and close every response, as a WSGI server does (`ClosingClient`)."""
    Flask.test_client_class = ClosingClient
    if not ATTESTATIONS.is_dir():
        message = f"../shared/fixtures not found at {FIXTURES}: clone the shared fixtures beside the repo"
        raise pytest.UsageError(message)


@pytest.fixture
def upstream(index: UpstreamIndex) -> Iterator[RunningUpstream]:
    """The test's `index` (each test directory defines its own) served on loopback."""
    with serve(index) as running:
        yield running


@pytest.fixture
def rattler_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private rattler cache dir; rattler's default cache locations point into tmp too."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("RATTLER_CACHE_DIR", str(tmp_path / "rattler-cache"))
    return tmp_path / "rattler-cache"


PolicyWriter = Callable[..., Path]


@pytest.fixture
def write_policy(tmp_path: Path) -> PolicyWriter:
    """Write policy documents into one directory and return it."""

    def write(*texts: str) -> Path:
        directory = tmp_path / "policies"
        directory.mkdir(exist_ok=True)
        for i, text in enumerate(texts):
            (directory / f"p{i}.yaml").write_text(text)
        return directory

    return write
