"""Local files read no further than the size they had when opened.

A path is input (a symlink in a pull request, a wheelhouse entry, a `file://` URL in a lock) and may reach a
file that says one size and reads another: a /proc file such as /proc/self/pagemap says 0 bytes and reads
for hundreds of GiB. Every local read goes through `bounded_chunks`, which refuses such a file (OSError
EFBIG, like any unreadable file) instead of reading it without end.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from gate.errors import UsageError

CHUNK = 1 << 20


def bounded_chunks(path: Path, chunk: int = CHUNK) -> Iterator[bytes]:
    """The bytes of `path` in chunks of at most `chunk`, no further than its size when opened: one that
    yields more (a /proc file, or one still being written) raises OSError (EFBIG) before that byte is given."""
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        left = size + 1
        while left and (data := handle.read(min(chunk, left))):
            left -= len(data)
            if not left:
                raise OSError(
                    errno.EFBIG,
                    f"yields more than the {size} bytes its size says (a /proc file, or one still being written): "
                    "gate reads only regular files of a fixed size",
                )
            yield data


def read_regular(path: Path) -> bytes:
    """A file's bytes (`bounded_chunks`: OSError for one that yields more than its size)."""
    return b"".join(bounded_chunks(path))


def sha256_file(path: Path) -> tuple[str, int]:
    """The sha256 and size of a file (`bounded_chunks`); any failure to read it is a UsageError."""
    digest = hashlib.sha256()
    read = 0
    try:
        for data in bounded_chunks(path):
            digest.update(data)
            read += len(data)
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror or err}") from err
    return digest.hexdigest(), read
