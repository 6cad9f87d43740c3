"""The conda proxy app as the conda tests build it: the policies written under `tmp_path/policies`, the cache
in `tmp_path/cache`, a blueprint serving the given channels (`gate.proxy.conda_routes.conda_blueprint`)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from gate.proxy.conda_routes import conda_blueprint
from tests.support.conda_policies import write_policies
from tests.support.conda_server import ChannelServer
from tests.support.gate_app import gate_app


def conda_app(
    tmp_path: Path, channels: Mapping[str, str], *policies: dict[str, Any], clock: Callable[[], dt.datetime]
) -> Flask:
    """An app (testing mode) serving each `name -> upstream URL` of `channels` at `/conda/<name>/`, under
    `policies`; calling it again with the same `tmp_path` is another worker on the same cache."""
    directory = write_policies(tmp_path / "policies", *policies)
    return gate_app(directory, cache_dir=tmp_path / "cache", clock=clock, blueprints=(conda_blueprint(channels),))


def audited_repodata(tmp_path: Path) -> dict[str, tuple[str, ...]]:
    """Each filename the repodata builds of the app under `tmp_path` audited, with its violated rules (lines end
    at "\n" only: a filename may hold U+0085 or U+2028, which JSON writes as they are)."""
    lines = [json.loads(line) for line in (tmp_path / "cache" / "audit.jsonl").read_bytes().split(b"\n") if line]
    return {r["file"]: tuple(sorted(v["rule"] for v in r["rules"])) for r in lines if r["event"] == "repodata"}


def serve_subdir(
    tmp_path: Path, body: bytes, channel: str, *policies: dict[str, Any], clock: Callable[[], dt.datetime]
) -> tuple[bytes, dict[str, tuple[str, ...]], str]:
    """`body` as the upstream `noarch/repodata.json` of `channel`, asked for once through an app under
    `tmp_path`: (the served body, what was audited, the upstream's URL)."""
    (tmp_path / "channel" / "noarch").mkdir(parents=True)
    (tmp_path / "channel" / "noarch" / "repodata.json").write_bytes(body)
    with ChannelServer(tmp_path / "channel") as server:
        client = conda_app(tmp_path, {channel: server.url}, *policies, clock=clock).test_client()
        response = client.get(f"/conda/{channel}/noarch/repodata.json")
        assert response.status_code == 200
        return response.data, audited_repodata(tmp_path), server.url
