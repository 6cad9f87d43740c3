"""glibc's allocator, as a server that builds documents of hundreds of MB on several threads needs it.

glibc gives each thread that allocates an arena of its own (up to 8 per core): memory one thread's request
freed stays in that thread's arena, and the next large build, on another thread, takes memory of its own. A
worker's peak then depends on which thread each request lands on (a conda-forge-sized subdir's rebuild: 318
MiB in every run with two arenas, 319-365 MiB with glibc's default). `limit_arenas` caps them (unless the
operator set `MALLOC_ARENA_MAX`, which glibc reads itself), `trim` gives freed memory back. Elsewhere (musl,
macOS) both do nothing.
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Any

M_ARENA_MAX = -8  # mallopt's parameter number for the arena cap (glibc's malloc.h)
ARENAS = 2


def _libc() -> Any:
    """The C library's symbols the process has loaded, on Linux (`ctypes.util.find_library` would start a
    subprocess, seen as a child of the server); None elsewhere."""
    if sys.platform != "linux":
        return None
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


_LIBC = _libc()
_TRIM = getattr(_LIBC, "malloc_trim", None)
_MALLOPT = getattr(_LIBC, "mallopt", None)


def trim() -> None:
    """Give back to the system the memory a build (and storing it) freed: glibc keeps it in the arena of
    the thread that freed it, so the next build, on another of the worker's threads, would add its own."""
    if _TRIM is not None:
        _TRIM(0)


def limit_arenas(count: int = ARENAS) -> bool:
    """Cap the arenas threads allocate from at `count` (for threads that have none yet: call it before the
    server starts its threads), unless `MALLOC_ARENA_MAX` is set; whether the cap was set."""
    if _MALLOPT is None or "MALLOC_ARENA_MAX" in os.environ:
        return False
    return bool(_MALLOPT(M_ARENA_MAX, count))
