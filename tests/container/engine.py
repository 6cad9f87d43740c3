"""A private Docker engine for the image's smoke test: `dockerd` on its own socket, data-root and exec-root
under a temporary directory, touching no host networking (no bridge, no iptables, no IP forwarding), and a
Debian base image made with `debootstrap` and `docker import`. Only what is started here is stopped."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DEBIAN_MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = "python3,python3-venv,ca-certificates"


ENABLE = "GATE_CONTAINER_TEST"  # set by .ci/run: the build downloads wheels (PyPI) and a base (Debian)


class EngineUnavailableError(Exception):
    """dockerd was installed but could not start here (no privileges for it, no storage driver, ...)."""


def unavailable() -> str | None:
    """Why a private engine cannot be started here, or None."""
    if os.environ.get(ENABLE) != "1":
        return (f"{ENABLE}=1 is not set: the image is built in CI (.ci/run sets it), which may download from the "
                "package registries; local test runs never reach the network")
    if os.geteuid() != 0:
        return "a Docker engine needs root here (no rootless setup): not root"
    missing = [tool for tool in ("dockerd", "docker", "debootstrap") if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not installed (.ci/run installs docker.io and debootstrap)"
    return None


class Engine:
    """The `docker` client bound to one private daemon."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{root}/docker.sock", "DOCKER_BUILDKIT": "0"}

    def run(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["docker", *args], capture_output=True, text=True, env=self.env, timeout=timeout,
                                check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n"
                                 f"{result.stderr}")
        return result


@contextmanager
def private_engine() -> Iterator[Engine]:
    """Start dockerd under a fresh short temporary directory (unix socket paths are short), wait until it
    answers, and on exit remove every container, stop the daemon by PID and delete the directory."""
    root = Path(tempfile.mkdtemp(prefix="gate-dockerd-", dir="/tmp"))
    log = (root / "dockerd.log").open("w")
    daemon = subprocess.Popen(
        ["dockerd", "--host", f"unix://{root}/docker.sock", "--data-root", f"{root}/data", "--exec-root",
         f"{root}/exec", "--pidfile", f"{root}/dockerd.pid", "--bridge=none", "--iptables=false",
         "--ip-forward=false", "--ip-masq=false"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    engine = Engine(root)
    try:
        deadline = time.monotonic() + 120
        while engine.run("version", timeout=30, check=False).returncode != 0:
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise EngineUnavailableError(f"dockerd did not start:\n{(root / 'dockerd.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield engine
    finally:
        try:
            ids = engine.run("ps", "--all", "--quiet", timeout=30, check=False).stdout.split()
            if ids:
                engine.run("rm", "--force", *ids, timeout=120, check=False)
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait(timeout=30)
            log.close()
            unmount_under(root)
            shutil.rmtree(root, ignore_errors=True)


def unmount_under(root: Path) -> None:
    """Unmount what the stopped daemon left mounted under `root` (its network namespace file), deepest first."""
    points = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for point in sorted((p for p in points if p.startswith(f"{root}/")), key=len, reverse=True):
        subprocess.run(["umount", point], capture_output=True, timeout=60, check=False)


def debian_base(engine: Engine, work: Path, tag: str = "gate-test-base:bookworm") -> str:
    """A minimal Debian bookworm with python3, venv and CA certificates as image `tag` (debootstrap, then
    `docker import`); made once per `work` directory."""
    tarball = work / "base.tar"
    if not tarball.exists():
        rootfs = work / "rootfs"
        made = subprocess.run(["debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", "bookworm",
                               str(rootfs), DEBIAN_MIRROR], capture_output=True, text=True, timeout=900, check=False)
        if made.returncode != 0:
            raise AssertionError(f"debootstrap exited {made.returncode}:\n{(made.stdout + made.stderr)[-4000:]}")
        shutil.rmtree(rootfs / "var" / "cache" / "apt" / "archives", ignore_errors=True)
        subprocess.run(["tar", "--create", "--file", str(tarball), "--directory", str(rootfs), "."], check=True,
                       timeout=300)
        shutil.rmtree(rootfs)
    engine.run("import", str(tarball), tag, timeout=300)
    return tag
