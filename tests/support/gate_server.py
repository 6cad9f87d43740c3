"""Run a real `gate serve` process on a free loopback port for end-to-end tests, and stop it after; the
environment the real installers run in."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

VENV_BIN = Path(sys.executable).parent


def clean_env(tmp: Path) -> dict[str, str]:
    """No user configuration, no local wheel folders, no caches, no retries: pip and uv install only from the
    index on their command line and fail at once (their uv cache is under `tmp`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_CACHE_DIR="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_RETRIES="0",
               UV_NO_CONFIG="1", UV_CACHE_DIR=str(tmp / "uv-cache"), UV_PYTHON_DOWNLOADS="never",
               NO_PROXY="127.0.0.1,localhost")
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def running_gate(args: list[str], log_path: Path, *, start_timeout: float = 15.0) -> Iterator[str]:
    """`gate serve ARGS --port P` (listening on 127.0.0.1); yields its base URL once `/-/health` answers.

    Only the process started here is stopped; its output goes to `log_path`, shown if it fails to start.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(VENV_BIN / "gate"), "serve", *args, "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + start_timeout
            while True:
                try:
                    if requests.get(f"{url}/-/health", timeout=1).status_code == 200:
                        break
                except requests.RequestException:  # not listening yet, or slow to answer on a busy machine
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"gate serve did not start: {log_path.read_text()}")
                time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=20)
