"""A pylock.toml naming files of a test upstream (`UpstreamIndex`) by their download URLs through gate."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.support.pypi_model import UpstreamIndex


def write_pylock(path: Path, index: UpstreamIndex, base: str, only: set[str] | None = None) -> Path:
    """A PEP 751 lock of every file of `index` (or of the filenames in `only`) with its sha256, each under
    `<base>files/<project>/<filename>`; sdists in `[packages.sdist]`, everything else as a wheel."""
    lines = ['lock-version = "1.0"', 'created-by = "test"']
    for project in index.projects():
        for file in index.files(project):
            if only is not None and file.filename not in only:
                continue
            data = file.read_bytes()
            assert data is not None, file.filename
            lines += ["[[packages]]", f'name = "{project}"', f'version = "{file.version}"',
                      "[packages.sdist]" if file.filename.endswith(".tar.gz") else "[[packages.wheels]]",
                      f'name = "{file.filename}"', f'url = "{base}files/{project}/{file.filename}"',
                      f'hashes = {{sha256 = "{hashlib.sha256(data).hexdigest()}"}}']
    path.write_text("\n".join(lines) + "\n")
    return path
