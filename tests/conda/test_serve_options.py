"""`gate serve --conda-channel NAME=URL`: parsing, and the blueprints it adds."""

from __future__ import annotations

import argparse

import pytest

from gate.commands.serve import blueprints, conda_channel
from gate.errors import UsageError


def test_conda_channel_parses_name_and_url() -> None:
    assert conda_channel("conda-forge=https://conda.anaconda.org/conda-forge/") == (
        "conda-forge", "https://conda.anaconda.org/conda-forge"
    )


@pytest.mark.parametrize("text", ["conda-forge", "=https://x", "cf=ftp://x", "cf="])
def test_conda_channel_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="expected NAME=URL"):
        conda_channel(text)


def test_blueprints_only_change_when_channels_are_given() -> None:
    assert blueprints(argparse.Namespace(conda_channel=[])) is None
    routes = blueprints(argparse.Namespace(conda_channel=[("cf", "http://127.0.0.1:1")]))
    assert routes is not None and [b.name for b in routes] == ["pypi", "conda"]
    with pytest.raises(UsageError, match="invalid conda channel name"):
        blueprints(argparse.Namespace(conda_channel=[("../x", "http://127.0.0.1:1")]))
