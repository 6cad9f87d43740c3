"""What a repodata build must know of each record of a batch before it judges the batch, and a helper process
that works that out for the later batches of a large build while the build judges the earlier ones.

`examine` decodes every record of a batch whole (`RawRecord.every`, else one by one) and says, per record:
whether it is a record at all (a value that is not a JSON object is not), why it cannot be read, whether its
bytes are served as they are (`own_bytes`: proved for the whole batch at once by counting keys, else
checked record by record), and what `SharedJudgements` reads to put it in a class (`common_record`'s
name and upload time; None for a record of any other shape). It is pure, and the same function runs here and
in the helper.

Examining is most of a full build's work that is not judging, and it is Python: one core. `Helper` forks the
worker once per large build (the child shares the parsed upstream index; it reads and writes nothing but
its pipe); the child examines the batches from the last one back, sending each result, while the build
examines from the first one on and takes the child's result for a batch the child reached first. When they
meet, the child is killed. A child that cannot start, dies, or sends something unreadable costs only time:
every batch it did not answer is examined here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import struct
import threading
import warnings
from collections.abc import Callable, Iterable, Sequence

import msgspec

from gate.gather.conda import common_fields, common_record
from gate.sources.conda_index import KnownRecord, RawRecord, own_bytes
from gate.sources.segments import segment_problem

log = logging.getLogger(__name__)

# what a raw value of a section is (`Examined.kinds`)
NOT_RECORD = 0  # not a JSON object: no record (never judged nor served)
UNREADABLE = 1  # cannot be decoded (invalid UTF-8, a number out of range, nested too deep): denied
REENCODED = 2  # a record served re-encoded from its decoded value
OWN_BYTES = 3  # a record whose own bytes are served as they are

HELPER_BATCHES = 8  # a full build of at least this many batches is examined with a helper
HELPER_SECONDS = 600  # a helper ends itself after this long, whatever happens to the worker
_FORKING = threading.Lock()  # held while a helper is forked (see `Helper.__init__`)
_FRAME = struct.Struct("<II")  # batch number, length of the encoded `Examined` that follows


class Examined(msgspec.Struct, array_like=True, gc=False):
    """Per value of a batch, in order: its kind (NOT_RECORD...), and for a record of the shape nearly every
    record has (`common_record`), its name and upload time in seconds (else None, None); `problems`: why the
    UNREADABLE ones cannot be read, by place."""

    kinds: bytes
    names: list[str | None]
    seconds: list[int | float | None]
    problems: dict[int, str]


_ENCODE = msgspec.msgpack.Encoder().encode
_DECODE = msgspec.msgpack.Decoder(Examined).decode


def examine(filenames: Sequence[str], raws: Sequence[msgspec.Raw]) -> Examined:
    """What a build must know of the values `raws` listed under `filenames` (see `Examined`)."""
    problems: dict[int, str] = {}
    records: Sequence[RawRecord | None] | None = RawRecord.every(raws)
    if records is None:  # some value is no record, or cannot be read: each one on its own
        records = []
        for i, raw in enumerate(raws):
            try:
                records.append(RawRecord.of(raw))
            except ValueError as err:
                records.append(None)
                problems[i] = f"its repodata record cannot be read: {err}"
    found = [record for record in records if record is not None]
    own = iter(own_bytes(found))
    # no filename has a character a path segment cannot have: none of them is checked again (a name
    # `common_record` takes ends `.conda` or `.tar.bz2`, so is none of "", "." and "..")
    checked = segment_problem("".join(filenames)) is None
    kinds = bytearray(len(raws))
    names: list[str | None] = []
    seconds: list[int | float | None] = []
    for i, (filename, record) in enumerate(zip(filenames, records, strict=True)):
        if record is None:
            kinds[i] = UNREADABLE if i in problems else NOT_RECORD
            names.append(None)
            seconds.append(None)
            continue
        kinds[i] = OWN_BYTES if next(own) else REENCODED
        view = record.view
        if isinstance(view, KnownRecord):
            common = common_fields(filename, (view.name, view.version, view.build, view.sha256, view.size,
                                              view.indexed_timestamp, view.timestamp), segment_checked=checked)
        else:
            common = common_record(filename, view, segment_checked=checked)
        names.append(None if common is None else common[0])
        seconds.append(None if common is None else common[4])
    return Examined(bytes(kinds), names, seconds, problems)


Numbered = tuple[int, str, msgspec.Raw]  # a record's number, filename and raw JSON
Batch = Sequence[Numbered]


class Helper:
    """A forked child examining `batches` from the last one back (see the module's docstring); `take(k)` is
    its result for batch `k` when it has sent it. Used as a context manager: the child is ended on exit."""

    def __init__(self, batches: Callable[[], Iterable[Batch]]) -> None:
        self._results: dict[int, bytes] = {}  # batch number -> its result as sent (decoded when taken)
        self._buffer = bytearray()
        self._pid: int | None = None
        self._fd: int | None = None
        try:
            read, write = os.pipe()
        except OSError as err:
            log.warning("no helper for a repodata build: %s", err)
            return
        try:
            # Python 3.12+ warns of forking a process with threads (the child takes no lock another thread may
            # hold); `catch_warnings` saves and restores the process's filters, so two at once would leave one's
            # "ignore" behind: one fork at a time
            with _FORKING, warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
        except OSError as err:
            os.close(read)
            os.close(write)
            log.warning("no helper for a repodata build: %s", err)
            return
        if pid == 0:  # the child: examine, write, and end without running anything of the worker's
            try:
                _close_inherited(write)
                _child(write, batches)
            finally:
                os._exit(0)
        os.close(write)
        os.set_blocking(read, False)
        self._pid, self._fd = pid, read

    def __enter__(self) -> Helper:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def take(self, k: int, size: int) -> Examined | None:
        """The child's result for batch `k` (of `size` values), when it has sent one; once it has, it has sent
        those of every later batch, and is ended (what it would do next, this process has done)."""
        if self._fd is not None:
            self._read()
        sent = self._results.pop(k, None)
        if sent is None:
            return None
        self.close()
        try:
            found = _DECODE(sent)
        except msgspec.DecodeError:
            log.warning("a repodata build's helper sent something unreadable; examining here")
            return None
        return found if len(found.kinds) == size == len(found.names) == len(found.seconds) else None

    def _read(self) -> None:
        """Every whole result the child has sent so far (the child is given up on when it has ended)."""
        assert self._fd is not None
        try:
            while data := os.read(self._fd, 1 << 20):  # non-blocking: BlockingIOError when there is no more
                self._buffer += data
            self.close()  # the child has ended
        except BlockingIOError:
            pass
        except OSError:
            self.close()
        buffer, at = self._buffer, 0
        while len(buffer) - at >= _FRAME.size:
            k, length = _FRAME.unpack_from(buffer, at)
            if len(buffer) - at - _FRAME.size < length:
                break
            self._results[k] = bytes(buffer[at + _FRAME.size : at + _FRAME.size + length])
            at += _FRAME.size + length
        del buffer[:at]

    def close(self) -> None:
        """End the child (whatever it is doing) and reap it."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._pid is not None:
            with contextlib.suppress(OSError):
                os.kill(self._pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.waitpid(self._pid, 0)
            self._pid = None


def _close_inherited(keep: int) -> None:
    """Close every descriptor of the worker's in the child but stdio and `keep` (client connections, the cache:
    a connection the worker closes is closed, not held open by the child): each one open, wherever it is
    (below the open-files limit or not), on Linux; up to that limit elsewhere."""
    try:
        open_now = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        os.closerange(3, keep)
        os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))
        return
    for fd in open_now:
        if fd > 2 and fd != keep:  # (the listing's own descriptor is closed already: EBADF)
            with contextlib.suppress(OSError):
                os.close(fd)


def _child(write: int, batches: Callable[[], Iterable[Batch]]) -> None:
    """The helper's work: the result of each of `batches`, from the last one back, written to `write`."""
    for number in (signal.SIGALRM, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1):
        signal.signal(number, signal.SIG_DFL)  # the worker's handlers are not the child's
    signal.alarm(HELPER_SECONDS)
    work = list(batches())
    for k in range(len(work) - 1, -1, -1):
        batch = work[k]
        data = _ENCODE(examine([filename for _, filename, _ in batch], [raw for _, _, raw in batch]))
        frame = memoryview(_FRAME.pack(k, len(data)) + data)
        while frame:
            frame = frame[os.write(write, frame) :]  # the worker gone: EPIPE, and the child ends
