"""Reading OSV data from disk, boundedly: the bulk-export zip (`<ID>.json` members), a directory tree of
`*.json` records (a checkout of github/advisory-database or ossf/malicious-packages), or one record file.

The files come from a download an outsider may have tampered with, so every read is capped: a member's or
file's size (declared and actual: a zip's header can lie), the total bytes read, and the number of records
(checked from the zip's end record before its central directory is read into memory). What cannot be read
is a problem naming the file; reading goes on, so one load reports every problem.
"""

from __future__ import annotations

import os
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """What one load may read. The real PyPI export is ~20k records and a few hundred MiB unpacked; its
    largest record is well under 1 MiB."""

    member_bytes: int = 16 * MIB  # one record
    total_bytes: int = 2048 * MIB  # everything one load reads
    records: int = 500_000  # records (zip members or files) in one load


@dataclass(frozen=True)
class Document:
    """One record's bytes and where they came from (`file`, or `archive!member` for a zip member)."""

    label: str
    data: bytes


class _Budget:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.bytes = 0
        self.records = 0

    def take(self, size: int) -> str | None:
        """Count one record of `size` bytes; the reason it may not be read, if any."""
        if size > self.limits.member_bytes:
            return f"larger than {self.limits.member_bytes} bytes (a record is far smaller)"
        if self.bytes + size > self.limits.total_bytes:
            return f"the data passes {self.limits.total_bytes} bytes in all"
        if self.records + 1 > self.limits.records:
            return f"more than {self.limits.records} records in all"
        self.bytes += size
        self.records += 1
        return None


def read_documents(paths: Sequence[Path], problems: list[str], limits: Limits) -> Iterator[Document]:
    """Every record document under `paths`, in a stable order; what cannot be read goes to `problems`."""
    budget = _Budget(limits)
    for path in paths:
        try:
            mode = os.stat(path).st_mode
        except OSError as err:
            problems.append(f"{path}: cannot read: {err.strerror or err}")
            continue
        if stat.S_ISDIR(mode):
            yield from _read_tree(path, problems, budget)
        elif stat.S_ISREG(mode) and zipfile.is_zipfile(path):
            yield from _read_zip(path, problems, budget)
        elif stat.S_ISREG(mode) and path.suffix == ".json":
            document = _read_file(path, problems, budget)
            if document is not None:
                yield document
        else:
            problems.append(f"{path}: neither a zip of OSV records, a directory of them, nor a .json record")


def _read_tree(root: Path, problems: list[str], budget: _Budget) -> Iterator[Document]:
    """`*.json` files under `root`, sorted; hidden directories (`.git`) skipped, links never followed."""

    def unreadable(err: OSError) -> None:
        problems.append(f"{err.filename}: cannot read: {err.strerror or err}")

    for directory, dirnames, filenames in os.walk(root, onerror=unreadable):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for filename in sorted(filenames):
            if filename.endswith(".json"):
                document = _read_file(Path(directory, filename), problems, budget)
                if document is not None:
                    yield document


_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


def _read_file(path: Path, problems: list[str], budget: _Budget) -> Document | None:
    try:
        fd = os.open(path, _OPEN_FLAGS)  # non-blocking: a FIFO named *.json is refused, never waited on
    except OSError as err:
        why = "a symbolic link (not followed)" if path.is_symlink() else f"cannot read: {err.strerror or err}"
        problems.append(f"{path}: {why}")
        return None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            problems.append(f"{path}: not a regular file")
            return None
        refused = budget.take(info.st_size)
        if refused is not None:
            problems.append(f"{path}: {refused}")
            return None
        data = handle.read(budget.limits.member_bytes + 1)
    if len(data) != info.st_size:  # grew or shrank while read: what was counted is not what was read
        problems.append(f"{path}: changed while it was read")
        return None
    return Document(str(path), data)


def _entries(handle: BinaryIO) -> int | None:
    """The record count a zip's end-of-central-directory record declares (zip64 included), read before
    `ZipFile` builds one object per entry; None when there is none."""
    end_record: Any = getattr(zipfile, "_EndRecData")  # noqa: B009 (private, stable since Python 2)
    found = end_record(handle)
    return None if found is None else int(found[4])  # zipfile._ECD_ENTRIES_TOTAL


def _read_zip(path: Path, problems: list[str], budget: _Budget) -> Iterator[Document]:
    """The `.json` members of the zip at `path`, in its order; each read to at most its cap."""
    try:
        handle = os.fdopen(os.open(path, _OPEN_FLAGS), "rb")
    except OSError as err:
        problems.append(f"{path}: cannot read: {err.strerror or err}")
        return
    with handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            problems.append(f"{path}: not a regular file")
            return
        yield from _zip_members(path, handle, problems, budget)


def _zip_members(path: Path, handle: BinaryIO, problems: list[str], budget: _Budget) -> Iterator[Document]:
    try:
        declared = _entries(handle)
        if declared is None or declared > budget.limits.records:
            problems.append(f"{path}: declares {declared} entries, more than {budget.limits.records} records")
            return
        archive = zipfile.ZipFile(handle)
    except (OSError, ValueError, NotImplementedError, zipfile.BadZipFile) as err:  # ValueError: a bad name
        problems.append(f"{path}: not a readable zip: {err}")
        return
    offsets: set[int] = set()
    with archive:
        for info in archive.infolist():
            if info.is_dir() or not info.filename.endswith(".json"):
                continue
            label = f"{path}!{info.filename}"
            if info.header_offset in offsets:  # entries sharing one stream: each would be unpacked again
                problems.append(f"{label}: shares its data with another entry (an overlapping zip)")
                continue
            offsets.add(info.header_offset)
            refused = budget.take(info.file_size)
            if refused is not None:
                problems.append(f"{label}: {refused}")
                if info.file_size <= budget.limits.member_bytes:
                    return  # the load's total is spent: the rest cannot be read either
                continue
            try:
                data = _unpack(handle.fileno(), info, min(info.file_size, budget.limits.member_bytes) + 1)
            except (ValueError, zlib.error) as err:
                problems.append(f"{label}: cannot unpack: {err}")
                continue
            if len(data) != info.file_size:  # the header's size lied: a bomb, or a damaged archive
                problems.append(f"{label}: unpacks to more or less than the {info.file_size} bytes it declares")
                continue
            if zlib.crc32(data) != info.CRC:
                problems.append(f"{label}: cannot unpack: its CRC does not match (a damaged archive)")
                continue
            yield Document(label, data)


_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, then (at 26) the name's and the extra field's lengths


def _unpack(fd: int, info: zipfile.ZipInfo, limit: int) -> bytes:
    """The member's bytes, at most `limit` of them, read from the archive at the offsets its directory gives
    (two reads, a fraction of the cost of `ZipFile.open` per member, which matters for the 20,000 members of
    PyPI's export): stored or deflated only, never encrypted; ValueError otherwise. The caller checks the
    CRC and the size."""
    if info.flag_bits & 0x1:
        raise ValueError("encrypted")
    if info.compress_size > limit + (limit >> 8) + 1024:  # deflate never grows data by more than this
        raise ValueError(f"{info.compress_size} compressed bytes, more than any record may take")
    header = os.pread(fd, _LOCAL_HEADER.size, info.header_offset)
    if len(header) != _LOCAL_HEADER.size:
        raise ValueError("the archive ends inside a local file header")
    signature, name, extra = _LOCAL_HEADER.unpack(header)
    if signature != b"PK\x03\x04":
        raise ValueError("no local file header where the directory says")
    packed = os.pread(fd, info.compress_size, info.header_offset + _LOCAL_HEADER.size + name + extra)
    if info.compress_type == zipfile.ZIP_STORED:
        return packed[:limit]
    if info.compress_type != zipfile.ZIP_DEFLATED:
        raise ValueError(f"compression method {info.compress_type} (only stored and deflated are read)")
    return zlib.decompressobj(-zlib.MAX_WBITS).decompress(packed, limit)
