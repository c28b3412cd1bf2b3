"""Kernel object names of a lab: namespaces, bridges, veths and nspawn machines.

Interface names are limited to 15 characters (IFNAMSIZ - 1), so host and segment names enter
them as a short hash. The lab name never contains '-', so the '-' after it keeps the names of
two labs running at once (e.g. "lab" and "t8k2") apart.
"""

from __future__ import annotations

import hashlib
import re

from gestic.errors import LabError

PREFIX = "gestic"
IFNAME_MAX = 15

_LAB_RE = re.compile(r"[a-z0-9]{1,6}")
# A host or segment name: DNS-label-like, 1-15 chars, no leading/trailing '-'.
_SHORT_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,13}[a-z0-9])?")


def check_lab(lab: str) -> str:
    """Return `lab` if it is a valid lab name (1-6 chars [a-z0-9]), else raise LabError."""
    if not _LAB_RE.fullmatch(lab):
        raise LabError(f"invalid lab name {lab!r}: use 1-6 characters from [a-z0-9]")
    return lab


def _check_short(name: str, what: str) -> str:
    if not _SHORT_RE.fullmatch(name):
        raise LabError(
            f"invalid {what} name {name!r}: use 1-15 characters from [a-z0-9-], "
            "not starting or ending with '-'"
        )
    return name


def check_host(host: str) -> str:
    """Return `host` if it is a valid host name (1-15 chars [a-z0-9-]), else raise LabError."""
    return _check_short(host, "host")


def check_segment(segment: str) -> str:
    """Return `segment` if it is a valid segment name (same rule as host names)."""
    return _check_short(segment, "segment")


def short_hash(text: str, length: int = 6) -> str:
    """A stable hex digest prefix, used to fit names into 15-character interface names."""
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def router_netns(lab: str) -> str:
    """The network namespace holding the lab's bridges: `gestic-<lab>`."""
    return f"{PREFIX}-{check_lab(lab)}"


def host_netns(lab: str, host: str) -> str:
    """The network namespace of one host: `gestic-<lab>-<host>`."""
    return f"{router_netns(lab)}-{check_host(host)}"


def netns_path(netns: str) -> str:
    """Where `ip netns` keeps the bind mount of a named network namespace."""
    return f"/run/netns/{netns}"


def bridge(lab: str, segment: str) -> str:
    """The segment's bridge in the router namespace: `gb<lab>-<hash6>` (at most 15 chars)."""
    return f"gb{check_lab(lab)}-{short_hash(check_segment(segment))}"


def veth(lab: str, host: str) -> str:
    """The router-side end of a host's veth pair: `gv<lab>-<hash6>` (at most 15 chars)."""
    return f"gv{check_lab(lab)}-{short_hash(check_host(host))}"


def machine(lab: str, host: str) -> str:
    """The systemd-nspawn machine name of a host: `gestic-<lab>-<host>`."""
    return host_netns(lab, host)


def belongs_to_lab(lab: str, netns: str) -> bool:
    """True for the router namespace of `lab` and its hosts' namespaces, nothing else."""
    router = router_netns(lab)
    return netns == router or netns.startswith(router + "-")
