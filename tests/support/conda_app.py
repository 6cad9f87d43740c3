"""The conda proxy app as the conda tests build it: the policies written under `tmp_path/policies`, the cache
in `tmp_path/cache`, a blueprint serving the given channels (`gate.proxy.conda_routes.conda_blueprint`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from gate.proxy.conda_routes import conda_blueprint
from tests.support.conda_policies import write_policies
from tests.support.gate_app import gate_app


def conda_app(
    tmp_path: Path, channels: Mapping[str, str], *policies: dict[str, Any], clock: Callable[[], dt.datetime]
) -> Flask:
    """An app (testing mode) serving each `name -> upstream URL` of `channels` at `/conda/<name>/`, under
    `policies`; calling it again with the same `tmp_path` is another worker on the same cache."""
    directory = write_policies(tmp_path / "policies", *policies)
    return gate_app(directory, cache_dir=tmp_path / "cache", clock=clock, blueprints=(conda_blueprint(channels),))
