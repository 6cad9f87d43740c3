"""Generated conda-forge-shaped repodata: many records with the fields conda-forge's `linux-64` has (name,
version, build, build_number, depends, constrains, license, md5, sha256, size, subdir, timestamp), for the
conda benchmark and the differential tests of the filter. Deterministic for a given seed.

API::

    forge_repodata(count, *, subdir="linux-64", seed=0, now=None, young=0.02) -> dict     # the document
    forge_bytes(count, **same) -> bytes                                                  # compact JSON
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
from typing import Any

__all__ = ["forge_bytes", "forge_repodata"]

_LICENSES = ("MIT", "BSD-3-Clause", "Apache-2.0", "GPL-3.0-or-later", "LGPL-2.1-or-later", "MPL-2.0", "ISC")
_FAMILIES = ("MIT", "BSD", "APACHE", "GPL3", "LGPL", "OTHER")
_LIBS = ("libgcc-ng >=12", "libstdcxx-ng >=12", "libzlib >=1.2.13,<2.0.0a0", "openssl >=3.2.1,<4.0a0",
         "libblas >=3.9.0,<4.0a0", "liblapack >=3.9.0,<4.0a0", "libffi >=3.4,<4.0a0", "xz >=5.2.6,<6.0a0",
         "bzip2 >=1.0.8,<2.0a0", "ncurses >=6.4,<7.0a0", "libsqlite >=3.45.1,<4.0a0", "tk >=8.6.13,<8.7.0a0")
_PYTHONS = ("3.9", "3.10", "3.11", "3.12")


def forge_repodata(
    count: int, *, subdir: str = "linux-64", seed: int = 0, now: dt.datetime | None = None, young: float = 0.02
) -> dict[str, Any]:
    """`count` records over about count/40 package names, 60% `.conda` and 40% `.tar.bz2`; times spread over
    eight years before `now`, a share `young` of them in the last 6 days (a 7d `minimumAge` denies those, and
    none of them comes of age within a day)."""
    rng = random.Random(seed)
    end = now or dt.datetime.now(dt.UTC)
    end_ms = int(end.timestamp() * 1000)
    span_ms = 8 * 365 * 86_400_000
    names = [f"{rng.choice(('py', 'lib', 'r-', 'ros-', ''))}pkg{i:05d}" for i in range(max(1, count // 40))]
    conda: dict[str, Any] = {}
    legacy: dict[str, Any] = {}
    for i in range(count):
        name = names[i % len(names)]
        version = f"{rng.randint(0, 30)}.{rng.randint(0, 40)}.{rng.randint(0, 20)}"
        python = rng.choice(_PYTHONS)
        build_number = rng.randint(0, 5)
        build = f"py{python.replace('.', '')}h{rng.getrandbits(32):08x}_{build_number}"
        ago = rng.randint(0, 6 * 86_400_000) if rng.random() < young else rng.randint(8 * 86_400_000, span_ms)
        digest = hashlib.sha256(f"{seed}/{i}".encode()).hexdigest()
        record: dict[str, Any] = {
            "build": build,
            "build_number": build_number,
            "depends": [*rng.sample(_LIBS, rng.randint(1, 5)), f"python >={python},<{python}.0a0",
                        f"python_abi {python}.* *_cp{python.replace('.', '')}"],
            "license": rng.choice(_LICENSES),
            "license_family": rng.choice(_FAMILIES),
            "md5": digest[:32],
            "name": name,
            "sha256": digest,
            "size": rng.randint(5_000, 50_000_000),
            "subdir": subdir,
            "timestamp": end_ms - ago,
            "version": version,
        }
        if rng.random() < 0.3:
            record["constrains"] = [f"{rng.choice(names)} >={rng.randint(0, 9)}.0"]
        filename = f"{name}-{version}-{build}"
        if i % 5 < 3:
            conda[filename + ".conda"] = record
        else:
            legacy[filename + ".tar.bz2"] = record
    return {"info": {"subdir": subdir}, "packages": legacy, "packages.conda": conda, "removed": [],
            "repodata_version": 1}


def forge_bytes(count: int, **options: Any) -> bytes:
    """`forge_repodata` as compact JSON, as channels serve it."""
    return json.dumps(forge_repodata(count, **options), separators=(",", ":")).encode()
