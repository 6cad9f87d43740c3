"""One build per upstream body in a worker at a time (`CondaChannels.filtered`, `gate.proxy.cache.Flights`):
requests for a subdir that come while its body is being judged wait, then serve what the first one kept or
rebuild from its outcomes, instead of each judging every record (and, for a large subdir, each forking a
helper)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from gate.proxy.cache import Flights
from gate.proxy.conda import CondaChannels
from tests.support.conda_app import conda_app
from tests.support.conda_server import ChannelServer

from .test_repodata_scale import AGE, CHANNEL, NOW, _channel_body, _judged


def test_requests_that_come_during_a_build_do_not_judge_the_subdir_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "channel" / "noarch").mkdir(parents=True)
    (tmp_path / "channel" / "noarch" / "repodata.json").write_bytes(_channel_body())
    judge_all, calls = CondaChannels.judge_all, [0]

    def slow_first(self: CondaChannels, *args: Any) -> Any:  # the real judging, the first call held back so
        calls[0] += 1  # that every request arrives while the first build runs
        if calls[0] == 1:
            time.sleep(0.5)
        return judge_all(self, *args)

    monkeypatch.setattr(CondaChannels, "judge_all", slow_first)
    with ChannelServer(tmp_path / "channel") as server:
        app = conda_app(tmp_path / "gate", {CHANNEL: server.url}, AGE, clock=lambda: NOW)
        path = f"/conda/{CHANNEL}/noarch/repodata.json"
        with ThreadPoolExecutor(4) as pool:
            bodies = list(pool.map(lambda _: app.test_client().get(path).data, range(4)))
        once = _judged(app.test_client())
        alone = conda_app(tmp_path / "alone", {CHANNEL: server.url}, AGE, clock=lambda: NOW).test_client()
        assert alone.get(path).data == bodies[0]
    assert len(set(bodies)) == 1
    assert once == _judged(alone)  # every record judged once, not once per request


def test_a_key_is_held_by_one_thread_at_a_time_and_forgotten_when_free() -> None:
    flights, inside, most = Flights(wait=60), [0], [0]
    lock = threading.Lock()

    def hold(key: str) -> None:
        with flights(key):
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(0.01)
            with lock:
                inside[0] -= 1

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(hold, ["a"] * 16))
    assert most == [1] and len(flights) == 0


def test_a_waiter_goes_on_after_the_wait_and_after_a_failure() -> None:
    flights = Flights(wait=0.05)
    entered: list[str] = []
    with flights("a"):
        worker = threading.Thread(target=lambda: _enter(flights, "a", entered))
        worker.start()
        worker.join(60)  # it gave up waiting: ran without the key
    assert entered == ["a"] and len(flights) == 0
    with pytest.raises(RuntimeError), flights("b"):
        raise RuntimeError("a build failed")
    _enter(flights, "b", entered)  # the key was given back
    assert entered == ["a", "b"] and len(flights) == 0


def _enter(flights: Flights, key: str, entered: list[str]) -> None:
    with flights(key):
        entered.append(key)


