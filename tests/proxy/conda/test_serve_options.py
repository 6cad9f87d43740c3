"""`gate serve` options: `--conda-channel NAME=URL` and the blueprints it adds, and the check before forking."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from gate.commands.serve import conda_channel
from gate.errors import PolicyError, UsageError
from gate.proxy.app import default_blueprints
from gate.proxy.server import check_settings
from gate.proxy.settings import Settings


def test_conda_channel_parses_name_and_url() -> None:
    assert conda_channel("conda-forge=https://conda.anaconda.org/conda-forge/") == (
        "conda-forge", "https://conda.anaconda.org/conda-forge"
    )


@pytest.mark.parametrize("text", ["conda-forge", "=https://x", "cf=ftp://x", "cf="])
def test_conda_channel_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="expected NAME=URL"):
        conda_channel(text)


def test_blueprints_only_change_when_channels_are_given() -> None:
    assert [b.name for b in default_blueprints(Settings(policies=()))] == ["pypi"]
    routes = default_blueprints(Settings(policies=(), conda_channels=(("cf", "http://127.0.0.1:1"),)))
    assert [b.name for b in routes] == ["pypi", "conda"]
    with pytest.raises(ValueError, match="invalid conda channel name"):
        default_blueprints(Settings(policies=(), conda_channels=(("../x", "http://127.0.0.1:1"),)))


def test_channels_from_the_environment() -> None:
    settings = Settings.from_env({"GATE_CONDA_CHANNELS": "cf=https://c.example/cf/ local=http://127.0.0.1:9"})
    assert settings.conda_channels == (("cf", "https://c.example/cf"), ("local", "http://127.0.0.1:9"))
    with pytest.raises(ValueError, match="expected NAME=URL"):
        Settings.from_env({"GATE_CONDA_CHANNELS": "cf"})


def test_settings_are_checked_without_building_an_app(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "age.yaml").write_text(
        "apiVersion: gate/v1\nkind: Policy\nmetadata: {name: age}\nspec: {minimumAge: 7d}\n"
    )
    cache = tmp_path / "cache"
    check_settings(Settings(policies=(policies,), cache_dir=cache))
    open_files = [os.readlink(fd) for fd in Path("/proc/self/fd").iterdir() if fd.is_symlink()]
    assert not [f for f in open_files if f.startswith(str(cache))]  # checked, then closed: nothing to fork
    with pytest.raises(UsageError, match="invalid conda channel name"):
        check_settings(Settings(policies=(policies,), conda_channels=(("../x", "http://127.0.0.1:1"),)))
    with pytest.raises(UsageError, match="trusted root"):
        check_settings(Settings(policies=(policies,), trusted_root=tmp_path / "missing.json"))
    with pytest.raises(PolicyError):
        check_settings(Settings(policies=(tmp_path / "absent",)))
