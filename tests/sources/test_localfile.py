"""`bounded_chunks`, the one way gate reads a local file: never further than the size the file had when
opened (a /proc file that says 0 bytes and reads for hundreds of GiB, a file still being written)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from gate.errors import UsageError
from gate.sources.localfile import bounded_chunks, read_regular, sha256_file

ENDLESS = Path("/proc/self/pagemap")


def test_a_regular_file_is_read_whole_in_bounded_chunks(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10)
    assert [len(c) for c in bounded_chunks(path, 4)] == [4, 4, 2]
    assert read_regular(path) == b"x" * 10
    assert sha256_file(path)[1] == 10


def test_a_file_that_grows_while_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 8)
    chunks = bounded_chunks(path, 4)
    assert next(chunks) == b"xxxx"
    with path.open("ab") as more:
        more.write(b"y" * 100)
    with pytest.raises(OSError, match="yields more than the 8 bytes its size says") as caught:
        list(chunks)
    assert caught.value.errno == errno.EFBIG


@pytest.mark.skipif(not ENDLESS.is_file(), reason="needs Linux /proc/self/pagemap")
def test_a_proc_file_gives_nothing() -> None:
    with pytest.raises(OSError, match="yields more than the 0 bytes") as caught:
        next(bounded_chunks(ENDLESS))
    assert caught.value.errno == errno.EFBIG
    with pytest.raises(UsageError, match="yields more than the 0 bytes"):
        sha256_file(ENDLESS)
