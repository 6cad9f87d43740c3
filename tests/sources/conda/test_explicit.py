"""Conda explicit environment files: parsing, and `gate check` fetching every package over loopback HTTP."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from gate.cli import main
from gate.sources.conda_explicit import ExplicitEnvError, ExplicitPackage, is_explicit_env, parse_explicit
from tests.support.conda_channel import (
    DAY_MS,
    add_fixture_signed_package,
    build_conda_package,
    index_channel,
    set_record_fields,
)
from tests.support.conda_policies import (
    SIGNED,
    SIGNED_SHA256,
    TARGET_CHANNEL,
    policy_document,
    signer_attestations,
    write_policies,
)
from tests.support.conda_server import ChannelServer

MD5 = "3745b41d19cb465cb9dbab7c74196962"  # of the real signed package


def test_parse_explicit_lines() -> None:
    text = f"""# This file may be used to create an environment using:
# platform: linux-64
@EXPLICIT
https://conda.example/ch/linux-64/{SIGNED}#{MD5}

https://conda.example/ch/noarch/a-1.0-0.tar.bz2#sha256:{SIGNED_SHA256.upper()}
  https://conda.example/ch/noarch/b-2.0-py_0.conda#{SIGNED_SHA256}
file:///srv/ch/noarch/c%2Bd-1.0-0.conda
"""
    first, second, third, fourth = parse_explicit(text)
    assert first == ExplicitPackage(
        url=f"https://conda.example/ch/linux-64/{SIGNED}", filename=SIGNED, line=4, md5=MD5
    )
    assert (first.channel, first.subdir_url) == ("https://conda.example/ch", "https://conda.example/ch/linux-64")
    assert (second.filename, second.sha256, second.md5, second.line) == ("a-1.0-0.tar.bz2", SIGNED_SHA256, None, 6)
    assert (third.filename, third.sha256) == ("b-2.0-py_0.conda", SIGNED_SHA256)
    assert (fourth.filename, fourth.sha256, fourth.md5) == ("c+d-1.0-0.conda", None, None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("https://x/ch/noarch/a-1-0.conda\n", "<explicit>:1: expected @EXPLICIT before package lines"),
        ("# nothing\n", "<explicit>: no @EXPLICIT line"),
        ("@EXPLICIT\nnumpy=1.26\n", "<explicit>:2: not a conda package URL[#md5|#sha256]: numpy=1.26"),
        ("@EXPLICIT\nhttps://x/ch/noarch/a-1-0.whl\n", "<explicit>:2: not a conda package URL"),
        ("@EXPLICIT\nhttps://x/ch/noarch/a.conda\n", "<explicit>:2: not a conda package URL"),
        ("@EXPLICIT\nhttps://x/ch/noarch/a-1-0.conda#1234\n", "<explicit>:2: not a conda package URL"),
        ("@EXPLICIT\ns3://b/ch/noarch/a-1-0.conda\n", "<explicit>:2: only http(s):// and file:// URLs"),
    ],
)
def test_parse_explicit_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(ExplicitEnvError) as caught:
        parse_explicit(text)
    assert message in str(caught.value)


def test_is_explicit_env(tmp_path: Path) -> None:
    env = tmp_path / "env.txt"
    env.write_text("# platform: noarch\n  @EXPLICIT  \n")
    other = tmp_path / "requirements.txt"
    other.write_text("numpy\n")
    wheel = tmp_path / "a-1-py3-none-any.whl"
    wheel.write_bytes(b"@EXPLICIT\n")
    assert is_explicit_env(env) and not is_explicit_env(other) and not is_explicit_env(wheel)
    assert not is_explicit_env(tmp_path / "missing.txt")


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """On loopback: demo 1.0 (indexed 30 days ago), fresh 1.0 (just now), the real signed package (2025)."""
    channel_dir = tmp_path_factory.mktemp("explicit") / "channel"
    now_ms = int(time.time() * 1000)
    build_conda_package(channel_dir / "noarch", "demo", "1.0", timestamp_ms=now_ms - 40 * DAY_MS)
    build_conda_package(channel_dir / "noarch", "fresh", "1.0", timestamp_ms=now_ms, fmt="tar.bz2")
    add_fixture_signed_package(channel_dir)  # indexes the channel
    set_record_fields(channel_dir, "noarch", "demo-1.0-0.conda", indexed_timestamp=now_ms - 30 * DAY_MS)
    set_record_fields(channel_dir, "linux-64", SIGNED, indexed_timestamp=None)  # its real 2025-09-01 timestamp
    with ChannelServer(channel_dir) as server:
        yield channel_dir, server.url


def _line(channel_dir: Path, url: str, relative: str, pin: str = "md5") -> str:
    data = (channel_dir / relative).read_bytes()
    digest = hashlib.md5(data).hexdigest() if pin == "md5" else "sha256:" + hashlib.sha256(data).hexdigest()
    return f"{url}/{relative}#{digest}"


def _policies(tmp_path: Path) -> Path:
    """Both ecosystems: a week's minimum age everywhere, and the signed package's publisher for it."""
    return write_policies(
        tmp_path / "policies",
        policy_document("age", ecosystems=["pypi", "conda"], minimumAge="7d"),
        policy_document(
            "signed", ecosystems=["conda"], packages=("signed-package",),
            attestations=signer_attestations(targetChannel=TARGET_CHANNEL),
        ),
    )


def _loopback(lines: list[str]) -> list[str]:
    """`--allow-host` for every loopback server the lines name: internal addresses are refused unless named."""
    hosts = sorted({urlsplit(line).netloc for line in lines if line.startswith("http")})
    return [arg for host in hosts for arg in ("--allow-host", host)]


def _run(tmp_path: Path, capsys: pytest.CaptureFixture[str], lines: list[str]) -> tuple[int, dict[str, Any], str]:
    env = tmp_path / "env.txt"
    env.write_text("# platform: linux-64\n@EXPLICIT\n" + "\n".join(lines) + "\n")
    code = main(["check", str(env), "--policy", str(_policies(tmp_path)), "--format", "json", *_loopback(lines)])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out else {}, err


def test_explicit_env_packages_are_fetched_and_decided(
    channel: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    channel_dir, url = channel
    lines = [
        _line(channel_dir, url, "noarch/demo-1.0-0.conda"),
        _line(channel_dir, url, f"linux-64/{SIGNED}", pin="sha256"),
        _line(channel_dir, url, "noarch/fresh-1.0-0.tar.bz2"),
    ]
    code, report, err = _run(tmp_path, capsys, lines)
    assert code == 1, err
    demo, signed, fresh = report["results"]
    assert demo["verdict"] == "allow" and demo["facts"]["uploadedFrom"] == "indexed_timestamp"
    assert demo["facts"]["index"] == url and demo["facts"]["subdir"] == "noarch"
    assert signed["verdict"] == "allow", signed
    assert signed["policies"] == ["age", "signed"]
    (att,) = signed["attestations"]
    assert att["verified"] and att["source"] == f"{url}/linux-64/{SIGNED}.sigs#0"
    assert att["targetChannel"] == TARGET_CHANNEL
    assert fresh["verdict"] == "deny"
    assert [v["rule"] for v in fresh["violations"]] == ["minimumAge"]


def test_a_package_that_differs_from_its_pin_is_an_error(
    channel: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, url = channel
    code, _, err = _run(tmp_path, capsys, [f"{url}/linux-64/{SIGNED}#{'0' * 32}"])
    assert code == 2
    assert f"line 3: {url}/linux-64/{SIGNED} has md5 {MD5}, the environment pins {'0' * 32}" in err


def test_a_missing_package_is_an_error(
    channel: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, url = channel
    code, _, err = _run(tmp_path, capsys, [f"{url}/noarch/nothere-1.0-0.conda"])
    assert code == 2 and "does not exist (404)" in err


def test_file_urls_are_read_too(channel: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    channel_dir, _ = channel
    code, report, err = _run(tmp_path, capsys, [(channel_dir / "linux-64" / SIGNED).as_uri()])
    assert code == 0, err
    (signed,) = report["results"]
    assert signed["facts"]["index"] == channel_dir.as_uri() and signed["attestations"][0]["verified"]


def test_sidecars_are_fetched_only_for_packages_a_policy_reads_attestations_of(
    channel: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    channel_dir, _ = channel
    with ChannelServer(channel_dir) as server:
        lines = [_line(channel_dir, server.url, "noarch/demo-1.0-0.conda"),
                 _line(channel_dir, server.url, f"linux-64/{SIGNED}")]
        code, _, err = _run(tmp_path, capsys, lines)
    assert code == 0, err
    sidecars = [path for path in server.paths() if ".sigs" in path]
    assert sidecars and all(SIGNED in path for path in sidecars)  # demo is governed only by the age policy


def test_a_record_that_renames_its_package_is_denied(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The channel's record for `other-1.0-0.conda` calls it `demo`: denied with the reason, not judged as demo."""
    channel_dir = tmp_path / "renaming"
    old_ms = int(time.time() * 1000) - 40 * DAY_MS
    build_conda_package(channel_dir / "noarch", "demo", "1.0", timestamp_ms=old_ms)
    build_conda_package(channel_dir / "noarch", "other", "1.0", timestamp_ms=old_ms)
    index_channel(channel_dir)
    for name in ("demo-1.0-0.conda", "other-1.0-0.conda"):
        set_record_fields(channel_dir, "noarch", name, indexed_timestamp=old_ms)
    set_record_fields(channel_dir, "noarch", "other-1.0-0.conda", name="demo")
    with ChannelServer(channel_dir) as server:
        lines = [_line(channel_dir, server.url, f"noarch/{n}") for n in ("demo-1.0-0.conda", "other-1.0-0.conda")]
        code, report, err = _run(tmp_path, capsys, lines)
    assert code == 1, err
    demo, other = report["results"]
    assert demo["verdict"] == "allow"
    assert [v["rule"] for v in other["violations"]] == ["gate.unjudgeable"]
    assert "its repodata record says name 'demo'" in other["violations"][0]["message"]


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e"])
def test_a_line_conda_reads_as_one_is_not_checked_as_two(separator: str) -> None:
    """conda reads an explicit file with universal newlines (`\\n`, `\\r`): `str.splitlines` also broke lines at
    these, so gate checked two allowed URLs where conda fetches one URL made of both (under the second one's
    filename, and without its hash when it names none)."""
    text = f"@EXPLICIT\nhttps://h.example/c/a-1.0-0.conda{separator}https://h.example/c/b-1.0-0.conda\n"
    with pytest.raises(ExplicitEnvError, match=r":2: not a conda package URL"):
        parse_explicit(text, "env.txt")
    both = "@EXPLICIT\r\nhttps://h.example/c/a-1.0-0.conda\rhttps://h.example/c/b-1.0-0.conda"
    assert [package.line for package in parse_explicit(both)] == [2, 3]  # conda's own line breaks
