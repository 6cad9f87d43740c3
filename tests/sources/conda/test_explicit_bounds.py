"""`gate check env.txt` downloads what an `@EXPLICIT` file names, and the file may be a stranger's: every
download has one deadline and a size cap, an error status never echoes its body, and the URLs may not
point at internal addresses unless `--allow-host` or a `--channel` on one says so (red-team findings)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from gate.cli import main
from gate.sources.conda_explicit import Fetcher, FetchError, explicit_facts, explicit_hosts
from gate.sources.local import LocalOptions
from tests.support.conda_policies import policy_document, write_policies
from tests.support.scripted_upstream import Reply, ScriptedServer, scripted_upstream

PACKAGE = "/noarch/demo-1.0-0.conda"
SECRET = b"internal-token-swordfish"


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with scripted_upstream() as up:
        yield up


def _env(tmp_path: Path, *urls: str) -> Path:
    env = tmp_path / "env.txt"
    env.write_text("@EXPLICIT\n" + "".join(f"{url}\n" for url in urls))
    return env


def _check(tmp_path: Path, env: Path, *args: str) -> int:
    policies = write_policies(tmp_path / "policies", policy_document("age", ecosystems=["conda"], minimumAge="7d"))
    return main(["check", str(env), "--policy", str(policies), *args])


def _host(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def test_an_internal_address_is_not_fetched_unless_named(
    tmp_path: Path, server: ScriptedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.route(PACKAGE, Reply(body=SECRET))
    env = _env(tmp_path, server.url(PACKAGE))
    assert _check(tmp_path, env) == 2
    err = capsys.readouterr().err
    assert "internal address 127.0.0.1" in err and "--allow-host or --channel" in err
    assert server.requests == []
    assert _check(tmp_path, env, "--allow-host", urlsplit(server.base).netloc) == 1  # fetched, then decided
    assert _check(tmp_path, env, "--channel", server.base) == 1  # a channel on loopback: its host is allowed
    assert len(server.requests) == 2 * 2  # the package and its subdir's repodata.json, twice


def test_with_a_channel_only_its_host_is_fetched_from(
    tmp_path: Path, server: ScriptedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.route(PACKAGE, Reply(body=b"data"))
    with scripted_upstream() as channel:
        assert _check(tmp_path, _env(tmp_path, server.url(PACKAGE)), "--channel", channel.base) == 2
    assert "not the upstream's host" in capsys.readouterr().err
    assert server.requests == []


def test_a_redirect_to_an_internal_host_is_not_followed(
    tmp_path: Path, server: ScriptedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.route(PACKAGE, Reply(body=SECRET))
    with scripted_upstream() as front:
        front.route(PACKAGE, Reply(status=302, headers={"Location": server.url(PACKAGE)}))
        env = _env(tmp_path, front.url(PACKAGE))
        assert _check(tmp_path, env, "--allow-host", urlsplit(front.base).netloc) == 2
    assert "internal address" in capsys.readouterr().err
    assert server.requests == []


def test_an_error_status_does_not_echo_its_body(
    tmp_path: Path, server: ScriptedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.route(PACKAGE, Reply(status=403, body=b"denied: " + SECRET))
    url = server.url(PACKAGE).replace("://", "://user:hunter2@")
    assert _check(tmp_path, _env(tmp_path, url), "--allow-host", urlsplit(server.base).netloc) == 2
    out, err = capsys.readouterr()
    assert "HTTP 403" in err
    assert SECRET.decode() not in out + err and "hunter2" not in out + err


def test_a_dripping_download_is_cut_at_its_deadline(tmp_path: Path, server: ScriptedServer) -> None:
    server.route(PACKAGE, Reply(body=b"x" * 100_000, drip=0.05, piece=16))  # 320 bytes a second, forever
    fetcher = Fetcher(hosts=explicit_hosts(None, [_host(server.base)]), timeout=1.0)
    with pytest.raises(FetchError, match=r"did not answer within \d"):
        explicit_facts(_env(tmp_path, server.url(PACKAGE)), LocalOptions(), fetcher=fetcher)


def test_an_endless_download_is_cut_at_the_size_cap(tmp_path: Path, server: ScriptedServer) -> None:
    server.route(PACKAGE, Reply(body=b"\0" * (1 << 16), repeat=1 << 18, headers={"Content-Length": ""}))  # 16 GiB
    fetcher = Fetcher(hosts=explicit_hosts(None, [_host(server.base)]), timeout=30.0, max_bytes=1 << 20)
    with pytest.raises(FetchError, match=f"larger than {1 << 20} bytes"):
        explicit_facts(_env(tmp_path, server.url(PACKAGE)), LocalOptions(), fetcher=fetcher)
