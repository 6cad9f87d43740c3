"""The served body of a judged repodata index: written as it is read, compressed as it is written.

A body is what its upstream body and its per-record outcomes (`Judged`: served or not, served as its own
bytes or re-encoded) make of it, so its ETag is a digest of those (`body_etag`): known before the first byte
is written, which lets the first request for a subdir be answered as the body is written (`Writing`), its
compressed form made on a second thread at the same time, instead of after it. The compressed body is what
is kept (`Built`); every later plain request is answered by decompressing it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
from array import array
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice

import zstandard

from gate.proxy.conda_repodata import NEVER, Judged
from gate.sources.conda_index import ENCODE, RepodataIndex, decode

log = logging.getLogger(__name__)

_FLUSH = 1 << 20  # bytes written between handing a piece on
LEVEL = 1  # zstd level of the served `.zst`: a rebuild compresses the whole body again (level 3: 2.7x the time)

FORMAT = b"gate conda repodata 1\n"  # what `body_etag` digests besides its inputs: a new way of writing, a new tag


def body_etag(upstream: str, judged: Judged, code: str) -> str:
    """The strong ETag of the body written from the upstream body of digest `upstream` by `judged` with the code
    of digest `code` (`Gate.trust_digest`: gate's code and libraries; another gate may write other bytes from
    the same inputs, top-level keys it drops say, and a client of the older must not be told its copy is
    current): the same inputs always write the same bytes, and only what writes them is digested (whether a
    record that is not served would be served as its own bytes is no part of the body: a rebuild keeps that
    bit from when the record was served, a fresh build does not, and one body under two ETags is downloaded
    again and again)."""
    digest = hashlib.sha256(FORMAT + upstream.encode() + b"\n" + code.encode() + b"\n")
    digest.update(judged.served)
    digest.update(judged.verbatim())
    return f'"{digest.hexdigest()[:32]}"'


class Built:
    """A written body: the compressed served repodata, the ETags of the plain and the compressed bodies, the
    plain body's length, when it stops holding (None: not with time), the outcomes it was written from and
    how many of them were judged for it."""

    __slots__ = ("etag", "judged", "length", "rejudged", "until", "zst", "zst_etag")

    def __init__(self, zst: bytes, etag: str, length: int, judged: Judged, rejudged: int) -> None:
        self.zst, self.etag, self.length, self.judged, self.rejudged = zst, etag, length, judged, rejudged
        self.zst_etag = f'"{hashlib.sha256(zst).hexdigest()[:32]}"'
        expires = judged.expires()
        self.until = None if expires == NEVER else dt.datetime.fromtimestamp(expires, dt.UTC)


Kept = Callable[[Built], None]


class Writing:
    """The body of `index` by `judged`, being written. Iterated (once), it gives the plain body about a MiB at
    a time, each piece compressed on a second thread as the next is written; `built()` writes whatever was not
    read and gives the result. When the whole body is written, `ready` is given the result before its last
    piece is handed out (for what must hold by the time a client has read it all, such as keeping it where
    the client's next request finds it), and `done` after it (before the iteration ends: what it does, such
    as storing it, delays no byte), each once. `close()` (WSGI calls it however a response ends) finishes the
    body a client stopped reading, so the work is kept. A body that does not come out at the length the
    outcomes announce raises RuntimeError and is not kept (a client reading it gets less than the length it
    was told); `failed` is then called, once."""

    def __init__(self, index: RepodataIndex, judged: Judged, rejudged: int, etag: str, *,
                 ready: Kept | None = None, done: Kept | None = None, failed: Callable[[], None] | None = None,
                 ) -> None:
        head = index.head
        self.etag, self.length = etag, _size(index, head, judged)
        self.judged, self._rejudged, self._ready, self._done, self._failed = judged, rejudged, ready, done, failed
        self._source: Iterator[bytes | memoryview] | None = _pieces(index, head, judged)
        self._writer = RepodataWriter(self.length)
        self._built: Built | None = None
        self._announced = False  # `done` was given the result

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._source is None:  # written (or failed): the result is announced as the iteration ends
            self._announce()
            raise StopIteration
        try:
            for piece in self._source:
                if (flushed := self._writer.write(piece)) is not None:
                    return flushed
            last, zst = self._writer.finish()
        except BaseException:
            self._end()  # nothing is kept
            if self._failed is not None:
                self._failed()
            raise
        self._built = Built(zst, self.etag, self.length, self.judged, self._rejudged)
        self._end()
        if self._ready is not None:
            self._ready(self._built)
        if last:
            return last
        self._announce()
        raise StopIteration

    def _end(self) -> None:
        self._source = None
        self._writer.close()

    def _announce(self) -> None:
        """Give `done` the result, once; what it raises is logged, not raised: the client has the whole body by
        now, and an exception out of a WSGI iterable or its `close()` keeps the server from running the
        response's other close callbacks (the request's upstream slot was never given back)."""
        if self._built is not None and not self._announced:
            self._announced = True
            if self._done is not None:
                try:
                    self._done(self._built)
                except Exception:
                    log.exception("filtered repodata was served whole but could not be kept")

    def built(self) -> Built:
        """The whole body, compressed (written now, as far as it was not); RuntimeError as iterating raises."""
        for _ in self:
            pass
        if self._built is None:
            raise RuntimeError("the body was not written whole")
        return self._built

    def close(self) -> None:
        """Finish the body, whether or not it was read whole; a failure is logged (the reader has gone), never
        raised (the server would skip the response's other close callbacks)."""
        try:
            self.built()
        except Exception:
            log.exception("filtered repodata could not be written whole; it is not kept")


def _size(index: RepodataIndex, head: list[tuple[str, bytes | None]], judged: Judged) -> int:
    size = 2 + max(len(head) - 1, 0)  # braces, commas
    for key, value in head:
        size += len(ENCODE(key)) + 1
        if value is not None:
            size += len(value)
            continue
        offset, count = index.offset(key), len(index.sections[key])
        kept = sum(judged.served[offset : offset + count])
        size += 2 + max(kept - 1, 0) + sum(judged.lengths[offset : offset + count])
    return size


def _pieces(index: RepodataIndex, head: list[tuple[str, bytes | None]], judged: Judged,
            ) -> Iterator[bytes | memoryview]:
    layout = index.layout()
    yield b"{"
    for i, (key, value) in enumerate(head):
        yield b"," + ENCODE(key) + b":" if i else ENCODE(key) + b":"
        if value is not None:
            yield value
        elif layout is None:
            yield from _records(index, key, judged)
        else:
            yield from _runs(index, key, layout[key], judged)
    yield b"}"


def _records(index: RepodataIndex, section: str, judged: Judged) -> Iterator[bytes | memoryview]:
    """The served records of `section`, one by one."""
    yield b"{"
    number, first = index.offset(section), True
    served, canonical = judged.served, judged.canonical
    for filename, raw in index.sections[section].items():
        if served[number]:
            yield ENCODE(filename) + b":" if first else b"," + ENCODE(filename) + b":"
            yield memoryview(raw) if canonical[number] else ENCODE(decode(raw))
            first = False
        number += 1
    yield b"}"


def _runs(index: RepodataIndex, section: str, starts: array[int], judged: Judged) -> Iterator[bytes | memoryview]:
    """The served records of `section`: each run of records served as their own bytes is one slice of the
    upstream body (commas included); any other record is written re-encoded."""
    body, offset, count = memoryview(index.body), index.offset(section), len(index.sections[section])
    served = judged.served
    verbatim = judged.verbatim(offset, offset + count)  # 1: served as its own bytes
    items, position = iter(index.sections[section].items()), -1  # walked forward once for re-encoded records
    yield b"{"
    at, first = 0, True
    while (at := served.find(1, offset + at, offset + count) - offset) >= 0:
        if verbatim[at]:
            end = verbatim.find(0, at)
            end = count if end < 0 else end
            yield body[starts[at] - (0 if first else 1) : starts[end] - 1]  # with the `,` before it
        else:
            filename, raw = next(islice(items, at - position - 1, None))
            position = at
            yield (b"" if first else b",") + ENCODE(filename) + b":"
            yield ENCODE(decode(raw))
            end = at + 1
        first, at = False, end
    yield b"}"


class RepodataWriter:
    """The served repodata, written in pieces: its length checked and its zstd-compressed bytes made (a frame
    with the content size, which is known before the first byte: `size`). Each write hands back the piece it
    completed (about a MiB), for the caller to send on; each piece is compressed on a thread of its own while
    this one writes the next (zstd lets go of the GIL): at most two pieces are held besides the buffer. A
    context manager: leaving it ends that thread."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.written = 0
        self._zst = zstandard.ZstdCompressor(level=LEVEL).compressobj(size=size)
        self._out = io.BytesIO()  # its value is taken without a copy (a list of pieces would be joined)
        self._buffer = bytearray()
        self._pool = ThreadPoolExecutor(1)  # one thread: pieces are compressed in the order written
        self._pending: Future[None] | None = None

    def __enter__(self) -> RepodataWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """End the compressing thread (what is being compressed is finished first)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def write(self, piece: bytes | memoryview) -> bytes | None:
        """Add `piece`; the piece of about a MiB this completed (None: none yet)."""
        self._buffer += piece
        return self._flush() if len(self._buffer) >= _FLUSH else None

    def _compress(self, piece: bytes) -> None:
        self._out.write(self._zst.compress(piece))

    def _flush(self) -> bytes:
        if self.written + len(self._buffer) > self.size:  # zstd would refuse it: say why
            raise RuntimeError(f"filtered repodata exceeds the {self.size} bytes announced")
        piece, self._buffer = bytes(self._buffer), bytearray()
        previous, self._pending = self._pending, self._pool.submit(self._compress, piece)
        self.written += len(piece)
        if previous is not None:
            previous.result()  # raises what compressing it raised
        return piece

    def finish(self) -> tuple[bytes, bytes]:
        """(the last piece, the compressed body); RuntimeError when fewer or more bytes were written than
        announced (the body would not be what was judged: nothing more is served)."""
        last = self._flush()
        if self._pending is not None:
            self._pending.result()
        if self.written != self.size:  # checked first: zstd refuses to end a frame of another size
            raise RuntimeError(f"filtered repodata is {self.written} bytes, {self.size} were announced")
        self._out.write(self._zst.flush())
        return last, self._out.getvalue()
