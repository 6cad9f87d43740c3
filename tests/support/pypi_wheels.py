"""Real minimal wheels for the local upstream index, and archive bytes tampered so only a hash check notices."""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import Version

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def dist_name(name: str) -> str:
    """Return the filename/module form of a project name (``Foo.Bar-baz`` -> ``foo_bar_baz``)."""
    return canonicalize_name(name).replace("-", "_")


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode("ascii")


def _wheel_metadata(name: str, version: str, requires_python: str | None) -> bytes:
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}", "Summary: gate test package"]
    if requires_python is not None:
        lines.append(f"Requires-Python: {requires_python}")
    return ("\n".join(lines) + "\n\n").encode()


def _wheel_members(name: str, version: str, requires_python: str | None) -> dict[str, bytes]:
    """Return every archive member of the wheel, RECORD last."""
    module = dist_name(name)
    info = f"{module}-{version}.dist-info"
    members = {
        f"{module}.py": f'"""Test module {name} {version}."""\n\n__version__ = "{version}"\n'.encode(),
        f"{info}/METADATA": _wheel_metadata(name, version, requires_python),
        f"{info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: gate-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    rows = [f"{path},{_record_hash(data)},{len(data)}" for path, data in members.items()]
    members[f"{info}/RECORD"] = ("\n".join([*rows, f"{info}/RECORD,,"]) + "\n").encode()
    return members


def build_wheel(dest_dir: Path, name: str, version: str, *, requires_python: str | None = None) -> Path:
    """Write a minimal installable pure-Python ``py3-none-any`` wheel; same inputs give the same bytes."""
    version = str(Version(version))
    dest_dir.mkdir(parents=True, exist_ok=True)
    path = dest_dir / f"{dist_name(name)}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in _wheel_members(name, version, requires_python).items():
            info = zipfile.ZipInfo(member, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return path



# --------------------------------------------------------------------------------------------------
# Tampering


def _retimestamp_zip(data: bytes) -> bytes:
    """Rewrite a zip with the same members and compression but other timestamps."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            clone = zipfile.ZipInfo(info.filename, date_time=(2001, 2, 3, 4, 5, 6))
            clone.compress_type = info.compress_type
            clone.external_attr = info.external_attr
            target.writestr(clone, source.read(info))
    return out.getvalue()


def tamper(data: bytes) -> bytes:
    """Different bytes that still form a valid archive, so only a hash check notices.

    Zips (wheels) are re-written with other timestamps, gzip (sdists) get another header mtime,
    anything else gets its last byte flipped.
    """
    if data.startswith(b"PK\x03\x04"):
        return _retimestamp_zip(data)
    if data.startswith(b"\x1f\x8b") and len(data) > 8:
        return data[:4] + bytes(b ^ 0xFF for b in data[4:8]) + data[8:]
    if not data:
        return b"x"
    return data[:-1] + bytes([data[-1] ^ 0xFF])
