"""The lab's network: a router namespace with one bridge per site, and a veth per host.

Every command acts inside a namespace the lab created (`ip -n <ns>`, `ip netns exec`); the
root namespace's links, addresses and routes are never touched.
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import threading
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path
from typing import Any

from gestic.errors import LabError
from gestic.lab import names
from gestic.lab.image import require_root, run

NETNS_DIR = Path("/run/netns")
_CLONE_NEWNET = 0x40000000


def ensure_router(lab: str) -> None:
    """Create the lab's router namespace (lo up, IPv4 forwarding on inside it only)."""
    require_root("creating the lab router")
    ns = names.router_netns(lab)
    _ensure_netns(ns)
    # Forwarding is per namespace: this never changes the root namespace's setting.
    run(
        ["ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"],
        f"enabling IPv4 forwarding in {ns}",
    )


def remove_router(lab: str) -> None:
    """Delete the router namespace, and with it the lab's bridges (no error if absent)."""
    _delete_netns(names.router_netns(lab))


def ensure_segment(lab: str, segment: str, *, gateway: IPv4Interface) -> None:
    """Create (or repair) the segment's bridge in the router namespace with `gateway` on it."""
    ns = _require_router(lab)
    bridge = names.bridge(lab, segment)
    if _link(ns, bridge) is None:
        run(
            ["ip", "-n", ns, "link", "add", "name", bridge, "type", "bridge"],
            f"creating bridge {bridge} for segment {segment}",
        )
    _ensure_only_address(ns, bridge, gateway)
    run(["ip", "-n", ns, "link", "set", bridge, "up"], f"bringing bridge {bridge} up")


def segment_exists(lab: str, segment: str) -> bool:
    """True if the segment's bridge exists in the lab's router namespace."""
    ns = names.router_netns(lab)
    return netns_exists(ns) and _link(ns, names.bridge(lab, segment)) is not None


def remove_segment(lab: str, segment: str) -> None:
    """Delete the segment's bridge (no error if it or the router is absent)."""
    if segment_exists(lab, segment):
        ns = names.router_netns(lab)
        bridge = names.bridge(lab, segment)
        run(["ip", "-n", ns, "link", "del", bridge], f"deleting bridge {bridge}")


def attach_host(
    lab: str, host: str, segment: str, *, address: IPv4Interface, gateway: IPv4Address
) -> str:
    """Give `host` its own namespace wired to the segment's bridge; return the netns path.

    Idempotent: a correct attachment is left alone, a half-made one is repaired.
    """
    router = _require_router(lab)
    bridge = names.bridge(lab, segment)
    if _link(router, bridge) is None:
        raise LabError(f"segment {segment!r} of lab {lab!r} has no bridge {bridge} yet")
    hostns = names.host_netns(lab, host)
    _ensure_netns(hostns)
    veth = names.veth(lab, host)
    if not _veth_paired(router, veth, hostns):
        _recreate_veth(router, veth, hostns)
    run(
        ["ip", "-n", router, "link", "set", veth, "master", bridge, "up"],
        f"plugging {veth} into bridge {bridge}",
    )
    _ensure_only_address(hostns, "eth0", address)
    run(["ip", "-n", hostns, "link", "set", "eth0", "up"], f"bringing eth0 of {host} up")
    run(
        ["ip", "-n", hostns, "route", "replace", "default", "via", str(gateway), "dev", "eth0"],
        f"setting the default route of {host}",
    )
    return names.netns_path(hostns)


def detach_host(lab: str, host: str) -> None:
    """Delete the host's veth and network namespace (no error if absent)."""
    router = names.router_netns(lab)
    veth = names.veth(lab, host)
    if netns_exists(router) and _link(router, veth) is not None:
        run(["ip", "-n", router, "link", "del", veth], f"deleting veth {veth}")
    _delete_netns(names.host_netns(lab, host))


def lab_namespaces(lab: str) -> list[str]:
    """Existing network namespaces of this lab: its router and its hosts."""
    names.check_lab(lab)
    return [ns for ns in list_netns() if names.belongs_to_lab(lab, ns)]


def list_netns() -> list[str]:
    """Every named network namespace (the bind mounts `ip netns` keeps in /run/netns)."""
    try:
        return sorted(entry.name for entry in os.scandir(NETNS_DIR))
    except FileNotFoundError:
        return []


def netns_exists(ns: str) -> bool:
    """True if the named network namespace exists."""
    return (NETNS_DIR / ns).exists()


def tcp_reachable(lab: str, address: IPv4Address, port: int, timeout: float) -> bool:
    """True if a TCP connection to address:port succeeds from inside the lab's router."""
    ns = names.router_netns(lab)
    if not netns_exists(ns):
        return False
    sock = socket_in_netns(names.netns_path(ns))
    with sock:
        sock.settimeout(timeout)
        try:
            sock.connect((str(address), port))
        except OSError:
            return False
    return True


def socket_in_netns(netns_path: str) -> socket.socket:
    """A TCP socket created inside another network namespace.

    setns(CLONE_NEWNET) only moves the calling thread, so a throw-away thread enters the
    namespace and creates the socket; the socket keeps that namespace for its whole life.
    """
    result: list[socket.socket] = []
    errors: list[BaseException] = []

    def enter_and_create() -> None:
        try:
            with open(netns_path, "rb") as ns_file:
                libc = ctypes.CDLL(None, use_errno=True)
                if libc.setns(ns_file.fileno(), _CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({netns_path}): {os.strerror(err)}")
            result.append(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=enter_and_create, name="gestic-netns", daemon=True)
    worker.start()
    worker.join()
    if errors:
        raise LabError(f"cannot open a socket in {netns_path}: {errors[0]}") from errors[0]
    return result[0]


def _require_router(lab: str) -> str:
    ns = names.router_netns(lab)
    if not netns_exists(ns):
        raise LabError(f"lab {lab!r} has no router namespace {ns}: call ensure_router first")
    return ns


def _ensure_netns(ns: str) -> None:
    if not netns_exists(ns):
        try:
            run(["ip", "netns", "add", ns], f"creating network namespace {ns}")
        except LabError:
            if not netns_exists(ns):  # not merely lost a race with a concurrent caller
                raise
    run(["ip", "-n", ns, "link", "set", "lo", "up"], f"bringing lo up in {ns}")


def _delete_netns(ns: str) -> None:
    if netns_exists(ns):
        run(["ip", "netns", "del", ns], f"deleting network namespace {ns}")


def _links(ns: str, *args: str) -> list[dict[str, Any]]:
    out = run(["ip", "-n", ns, "-j", *args], f"listing links in {ns}")
    parsed: list[dict[str, Any]] = json.loads(out or "[]")
    return parsed


def _link(ns: str, ifname: str) -> dict[str, Any] | None:
    """The link's `ip -j link` record, or None if the namespace has no such link."""
    for link in _links(ns, "link", "show"):
        if link.get("ifname") == ifname:
            return link
    return None


def _veth_paired(router: str, veth: str, hostns: str) -> bool:
    """True if `veth` in the router and eth0 in the host namespace are two ends of one pair."""
    outer = _link(router, veth)
    inner = _link(hostns, "eth0")
    if outer is None or inner is None:
        return False
    return bool(
        outer.get("link_index") == inner.get("ifindex")
        and inner.get("link_index") == outer.get("ifindex")
    )


def _recreate_veth(router: str, veth: str, hostns: str) -> None:
    """Drop any half-made ends, then create the pair with its inner end born as eth0."""
    if _link(router, veth) is not None:
        run(["ip", "-n", router, "link", "del", veth], f"deleting stale veth {veth}")
    if _link(hostns, "eth0") is not None:
        run(["ip", "-n", hostns, "link", "del", "eth0"], f"deleting stale eth0 in {hostns}")
    run(
        ["ip", "-n", router, "link", "add", veth, "type", "veth",
         "peer", "name", "eth0", "netns", hostns],
        f"creating veth {veth} for {hostns}",
    )  # fmt: skip


def _ensure_only_address(ns: str, ifname: str, address: IPv4Interface) -> None:
    """Make `address` the interface's only global IPv4 address."""
    current = [
        IPv4Interface(f"{info['local']}/{info['prefixlen']}")
        for entry in _links(ns, "-4", "addr", "show", "dev", ifname)
        for info in entry.get("addr_info", [])
        if info.get("family") == "inet" and info.get("scope") == "global"
    ]
    if current == [address]:
        return
    if current:
        run(
            ["ip", "-n", ns, "-4", "addr", "flush", "dev", ifname, "scope", "global"],
            f"clearing wrong addresses {[str(a) for a in current]} on {ifname} in {ns}",
        )
    run(
        ["ip", "-n", ns, "addr", "add", str(address), "dev", ifname],
        f"adding {address} to {ifname} in {ns}",
    )
