"""`gate serve --conda-channel NAME=URL`: parsing, and the blueprints it adds."""

from __future__ import annotations

import argparse

import pytest

from gate.commands.serve import conda_channel
from gate.proxy.app import Settings, default_blueprints


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
