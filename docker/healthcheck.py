"""The image's HEALTHCHECK: GET /-/health on the address gate serve actually listens on.

Whatever `--host`/`--port` the container was started with, the probe asks the kernel: it finds the TCP
sockets in LISTEN state held by this user's processes (/proc/PID/fd -> /proc/PID/net/tcp{,6}) and asks the
first one. Exit 0 healthy, 1 otherwise (no listening socket, no answer, or not 200). Standard library only.
"""

from __future__ import annotations

import ipaddress
import os
import sys
import urllib.request
from pathlib import Path

LISTEN = "0A"


def socket_inodes() -> dict[str, str]:
    """Socket inode -> PID, over every process this user may look into."""
    found: dict[str, str] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or proc.name == str(os.getpid()):
            continue
        try:
            for fd in (proc / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    found[target[8:-1]] = proc.name
        except OSError:  # another user's process, or gone
            continue
    return found


def address(hex_address: str) -> str:
    """/proc/net/tcp's little-endian hex address, as a host to connect to (a wildcard is loopback)."""
    raw = bytes.fromhex(hex_address)
    host = ipaddress.ip_address(b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4)))
    if host.is_unspecified:
        return "127.0.0.1" if host.version == 4 else "[::1]"
    return str(host) if host.version == 4 else f"[{host}]"


def listening() -> list[str]:
    """`host:port` of every listening TCP socket of this user's processes."""
    inodes = socket_inodes()
    found: list[str] = []
    for inode, pid in inodes.items():
        for table in ("tcp", "tcp6"):
            try:
                lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                fields = line.split()
                if fields[3] == LISTEN and fields[9] == inode:
                    host, port = fields[1].rsplit(":", 1)
                    found.append(f"{address(host)}:{int(port, 16)}")
    return found


def main() -> int:
    addresses = listening()
    if not addresses:
        print("unhealthy: gate serve listens on no TCP port", file=sys.stderr)
        return 1
    url = f"http://{sorted(addresses)[0]}/-/health"
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
        with opener.open(url, timeout=10) as response:
            print(f"{url}: {response.status} {response.read(200).decode(errors='replace')}")
            return 0 if response.status == 200 else 1
    except OSError as err:
        print(f"unhealthy: {url}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
