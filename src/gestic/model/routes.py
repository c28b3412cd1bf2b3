"""Read the machine's own IPv4 routes (root namespace, read-only) to keep the lab clear of them."""

from __future__ import annotations

import json
import shutil
import subprocess
from ipaddress import IPv4Network
from pathlib import Path


def _from_proc(path: Path = Path("/proc/net/route")) -> list[IPv4Network]:
    routes: list[IPv4Network] = []
    for line in path.read_text().splitlines()[1:]:
        fields = line.split()
        dest, mask = (bytes.fromhex(f)[::-1] for f in (fields[1], fields[7]))
        network = IPv4Network(
            (int.from_bytes(dest, "big"), bin(int.from_bytes(mask, "big")).count("1"))
        )
        if network.prefixlen:
            routes.append(network)
    return routes


def machine_routes() -> list[IPv4Network]:
    """Every non-default IPv4 route of this machine's root namespace, in all tables."""
    ip = shutil.which("ip")
    if ip is None:
        return _from_proc()
    out = subprocess.run(
        [ip, "-j", "-4", "route", "show", "table", "all"],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        return _from_proc()
    routes: list[IPv4Network] = []
    for entry in json.loads(out.stdout or "[]"):
        dst = entry.get("dst", "default")
        if dst != "default":
            routes.append(IPv4Network(dst, strict=False))
    return routes


def overlaps(candidate: IPv4Network, routes: list[IPv4Network]) -> list[IPv4Network]:
    """Routes among `routes` that share addresses with `candidate`."""
    return [r for r in routes if r.overlaps(candidate)]
