"""The model of the local PyPI-shaped upstream: projects and their files, loaded from the ``mini-pypi``
fixture, built as real wheels (:mod:`tests.support.pypi_wheels`) or synthesized in memory for benchmarks."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from tests.support.pypi_wheels import build_wheel, dist_name

# --------------------------------------------------------------------------------------------------
# The index model


@dataclass(frozen=True)
class UpstreamFile:
    """One distribution file as the upstream index advertises it."""

    filename: str
    project: str
    version: str
    path: Path | None
    sha256: str
    size: int
    upload_time: datetime | None = None
    yanked: bool | str = False
    requires_python: str | None = None
    provenance: Path | None = None
    content: bytes | None = field(default=None, repr=False)
    """In-memory bytes (synthetic files); used instead of ``path`` when set."""

    def read_bytes(self) -> bytes | None:
        """Return the file's bytes, or None when nothing is on disk for it."""
        if self.content is not None:
            return self.content
        if self.path is not None and self.path.is_file():
            return self.path.read_bytes()
        return None


def parse_filename(filename: str) -> tuple[str, str]:
    """Return (normalized project, version) parsed from a wheel or sdist filename."""
    try:
        if filename.endswith(".whl"):
            name, version, _, _ = parse_wheel_filename(filename)
        else:
            name, version = parse_sdist_filename(filename)
    except (InvalidWheelFilename, InvalidSdistFilename) as exc:
        raise ValueError(f"not a distribution filename: {filename}") from exc
    return str(name), str(version)


class UpstreamIndex:
    """Projects and their files; thread-safe, with a generation counter bumped on every change."""

    def __init__(self, work_dir: Path | None = None) -> None:
        self.work_dir = work_dir
        self._lock = threading.Lock()
        self._projects: dict[str, dict[str, UpstreamFile]] = {}
        self._by_filename: dict[str, UpstreamFile] = {}
        self._generation = 0

    @property
    def generation(self) -> int:
        """A counter that changes whenever the index content changes."""
        return self._generation

    def add(self, file: UpstreamFile) -> UpstreamFile:
        """Register one file, or replace the one with the same filename (keeping its position)."""
        with self._lock:
            old = self._by_filename.get(file.filename)
            if old is not None and old.project != file.project:
                self._projects[old.project].pop(old.filename, None)
            self._projects.setdefault(file.project, {})[file.filename] = file
            self._by_filename[file.filename] = file
            self._generation += 1
        return file

    def add_file(
        self,
        path: Path,
        *,
        upload_time: datetime | None = None,
        yanked: bool | str = False,
        requires_python: str | None = None,
        provenance: Path | None = None,
    ) -> UpstreamFile:
        """Register a distribution file on disk; project and version come from its filename."""
        data = path.read_bytes()
        project, version = parse_filename(path.name)
        return self.add(
            UpstreamFile(
                filename=path.name,
                project=project,
                version=version,
                path=path,
                sha256=hashlib.sha256(data).hexdigest(),
                size=len(data),
                upload_time=upload_time,
                yanked=yanked,
                requires_python=requires_python,
                provenance=provenance,
            )
        )

    def add_wheel(
        self,
        name: str,
        version: str,
        *,
        upload_time: datetime | None = None,
        yanked: bool | str = False,
        requires_python: str | None = None,
        provenance: Path | None = None,
    ) -> UpstreamFile:
        """Build a real wheel under ``work_dir`` with :func:`build_wheel` and register it."""
        if self.work_dir is None:
            raise ValueError("UpstreamIndex(work_dir=...) is needed to build wheels")
        path = build_wheel(self.work_dir / "files", name, version, requires_python=requires_python)
        return self.add_file(
            path,
            upload_time=upload_time,
            yanked=yanked,
            requires_python=requires_python,
            provenance=provenance,
        )

    def set_yanked(self, project: str, version: str, yanked: bool | str = True) -> None:
        """Yank (or with ``False`` un-yank) every file of one release, as Warehouse does."""
        project = canonicalize_name(project)
        wanted = Version(version)
        for file in self.files(project):
            if Version(file.version) == wanted:
                self.add(dataclasses.replace(file, yanked=yanked))

    def projects(self) -> list[str]:
        """Return the normalized project names, sorted."""
        with self._lock:
            return sorted(self._projects)

    def has_project(self, project: str) -> bool:
        """Whether ``project`` (any spelling) is known."""
        return canonicalize_name(project) in self._projects

    def files(self, project: str) -> list[UpstreamFile]:
        """Return a snapshot of one project's files (empty if unknown)."""
        with self._lock:
            return list(self._projects.get(canonicalize_name(project), {}).values())

    def get_file(self, filename: str) -> UpstreamFile | None:
        """Look a file up by its exact filename."""
        return self._by_filename.get(filename)

    @classmethod
    def from_mini_pypi(
        cls,
        fixtures_dir: Path,
        *,
        work_dir: Path | None = None,
        include_missing: bool = False,
    ) -> UpstreamIndex:
        """Load the ``mini-pypi`` fixture (``fixtures_dir`` may be it, ``index/`` or the fixtures root).

        Rows whose bytes are not in ``files/`` are skipped unless ``include_missing`` (then they 404).
        """
        root = _locate_mini_pypi(fixtures_dir)
        index = cls(work_dir)
        for page in sorted((root / "simple").glob("*/index.json")):
            detail = json.loads(page.read_text())
            project = canonicalize_name(detail["name"])
            for row in detail["files"]:
                file = _file_from_row(root, project, row)
                if include_missing or file.read_bytes() is not None:
                    index.add(file)
        return index


def _locate_mini_pypi(fixtures_dir: Path) -> Path:
    for candidate in (fixtures_dir, fixtures_dir / "mini-pypi", fixtures_dir / "index" / "mini-pypi"):
        if (candidate / "simple").is_dir() and (candidate / "files").is_dir():
            return candidate
    raise FileNotFoundError(f"no mini-pypi fixture under {fixtures_dir}")


def _file_from_row(root: Path, project: str, row: dict[str, Any]) -> UpstreamFile:
    """Turn one PEP 691 file row of the fixture into an UpstreamFile backed by local paths."""
    filename: str = row["filename"]
    _, version = parse_filename(filename)
    provenance = root / "integrity" / project / version / filename / "provenance"
    upload_time = row.get("upload-time")
    return UpstreamFile(
        filename=filename,
        project=project,
        version=version,
        path=root / "files" / filename,
        sha256=row["hashes"]["sha256"],
        size=int(row["size"]),
        upload_time=datetime.fromisoformat(upload_time) if upload_time else None,
        yanked=row.get("yanked", False),
        requires_python=row.get("requires-python"),
        provenance=provenance if row.get("provenance") and provenance.is_file() else None,
    )


# --------------------------------------------------------------------------------------------------
# Synthetic projects (benchmarks)


def _synthetic_tags() -> Iterator[str]:
    yield "py3-none-any"
    platforms = ("manylinux_2_17_x86_64.manylinux2014_x86_64", "macosx_11_0_arm64", "win_amd64")
    minor = 8
    while True:
        for platform in platforms:
            yield f"cp3{minor}-cp3{minor}-{platform}"
        minor += 1


def _synthetic_filenames(dist: str, version: str, count: int) -> list[str]:
    names = [f"{dist}-{version}.tar.gz"]
    tags = _synthetic_tags()
    names.extend(f"{dist}-{version}-{next(tags)}.whl" for _ in range(count - 1))
    return names[:count]


def synthetic_project(
    index: UpstreamIndex,
    name: str,
    *,
    versions: int = 1000,
    files_per_version: int = 4,
    start: datetime = datetime(2020, 1, 1, tzinfo=UTC),
    step: timedelta = timedelta(days=1),
) -> list[UpstreamFile]:
    """Register ``versions`` x ``files_per_version`` small in-memory files for page benchmarks.

    Versions are ``1.<i>.0`` uploaded at ``start + i * step``; no file has provenance.
    """
    project, dist = canonicalize_name(name), dist_name(name)
    added: list[UpstreamFile] = []
    for i in range(versions):
        version = f"1.{i}.0"
        for filename in _synthetic_filenames(dist, version, files_per_version):
            content = f"synthetic {filename}\n".encode()
            added.append(
                UpstreamFile(
                    filename=filename,
                    project=project,
                    version=version,
                    path=None,
                    sha256=hashlib.sha256(content).hexdigest(),
                    size=len(content),
                    upload_time=start + i * step,
                    requires_python=">=3.8",
                    content=content,
                )
            )
    for file in added:
        index.add(file)
    return added
