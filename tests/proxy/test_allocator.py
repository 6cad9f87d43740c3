"""The arena cap gate's server sets (`gate.proxy.allocator`): glibc's own count of arenas, in a fresh process,
after eight threads have each allocated."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARENAS = textwrap.dedent("""
    import ctypes, sys, threading
    {setup}
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    barrier = threading.Barrier(8)
    def allocate():
        libc.malloc(4096)  # a thread's first malloc picks its arena
        barrier.wait()  # all alive at once: none hands its arena on to the next
    threads = [threading.Thread(target=allocate) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    libc.malloc_stats()  # glibc: one "Arena N:" block per arena, on stderr
""")

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or os.confstr("CS_GNU_LIBC_VERSION") is None, reason="glibc's allocator only"
)


def _arenas(setup: str, **env: str) -> int:
    environ = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"} | env
    result = subprocess.run([sys.executable, "-c", ARENAS.format(setup=setup)], cwd=REPO, env=environ,
                            capture_output=True, text=True, timeout=60, check=True)
    return result.stderr.count("Arena ")


def test_glibc_gives_each_thread_an_arena_without_the_cap() -> None:
    assert _arenas("") > 2  # else the tests below prove nothing


def test_the_cap_holds_threads_to_two_arenas() -> None:
    assert _arenas("from gate.proxy.allocator import limit_arenas; assert limit_arenas()") <= 2


def test_the_server_sets_the_cap_before_its_workers_start(tmp_path: Path) -> None:
    setup = (f"from gate.proxy.server import Gunicorn; from gate.proxy.settings import Settings; "
             f"Gunicorn(Settings(policies=(), cache_dir={str(tmp_path)!r}), {{}}).load_config()")
    assert _arenas(setup) <= 2


def test_an_operators_malloc_arena_max_stands() -> None:
    setup = "from gate.proxy.allocator import limit_arenas; assert not limit_arenas()"
    assert _arenas(setup, MALLOC_ARENA_MAX="4") > 2
