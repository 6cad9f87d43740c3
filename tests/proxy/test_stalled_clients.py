"""A client that stops reading must not hold a server thread for ever: with every thread of a worker
writing to clients that read nothing, `/-/health` still answers once `--client-timeout` cuts them."""

from __future__ import annotations

import hashlib
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.conftest import PolicyWriter
from tests.proxy.conftest import JSON_V1
from tests.support.gate_server import running_gate
from tests.support.scripted_pages import ALLOW_OLD, page_headers, project_page, wheel_name
from tests.support.scripted_upstream import Reply, scripted_upstream

HANG = 30.0  # seconds after which a request is taken to hang
BIG = b"\0" * (48 << 20)  # more than the kernel buffers of a loopback connection hold


def _stalled_download(url: str) -> socket.socket:
    """A connection that asks for `url` and then reads nothing (a tiny receive window)."""
    parts = urlsplit(url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((parts.hostname, parts.port))
    sock.sendall(f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
    return sock


@pytest.mark.slow
def test_clients_that_stop_reading_are_cut_and_health_answers(tmp_path: Path, write_policy: PolicyWriter) -> None:
    name = wheel_name("big")
    row = {"filename": name, "url": "/files/big.whl", "data": BIG}
    with scripted_upstream() as upstream:
        upstream.route("/simple/big/", Reply(body=project_page("big", [row]), headers=page_headers()))
        upstream.route("/files/big.whl", Reply(body=BIG))
        args = ["--policy", str(write_policy(ALLOW_OLD)), "--upstream", upstream.url("/simple/"),
                "--workers", "1", "--threads", "2", "--upstream-slots", "2", "--client-timeout", "1"]
        with running_gate(args, tmp_path / "gate.log") as url:
            page = requests.get(f"{url}/simple/big/", headers={"Accept": JSON_V1}, timeout=HANG).json()
            assert page["files"][0]["hashes"]["sha256"] == hashlib.sha256(BIG).hexdigest()
            download = page["files"][0]["url"]
            stalled = [_stalled_download(download) for _ in range(2)]  # as many as the worker has threads
            try:
                deadline = time.monotonic() + HANG
                while sum(path.startswith("/files/big.whl") for path, _ in upstream.requests) < 2:
                    assert time.monotonic() < deadline, "the downloads never reached upstream"
                    time.sleep(0.05)
                health = requests.get(f"{url}/-/health", timeout=HANG)  # hung here before --client-timeout
                assert health.status_code == 200
                for sock in stalled:  # each was cut: the rest of its body never comes, the connection ends
                    sock.settimeout(HANG)
                    received = 0
                    while chunk := sock.recv(1 << 20):
                        received += len(chunk)
                    assert received < len(BIG)
            finally:
                for sock in stalled:
                    sock.close()
