"""Test-failover isolation: cut recovered hosts off the primary site, nothing else.

`Isolation` is what drills and restore verifications use; `Context.isolation` picks the kind:
`RouterIsolation` for a lab (below), `HostIsolation` (gestic.procedures.dr.host_isolation) for
any other environment, whose network gestic does not own.

Like SRM's test recovery into an isolated network, a `--test` drill leaves production running
and recovers into DR hosts that cannot reach (or be reached from) the primary site. The lab's
router namespace routes between the site bridges; policy-routing rules (`ip rule ...
prohibit`) in that namespace drop the forwarded traffic between each isolated host and every
other site's network. Traffic inside a site's bridge (e.g. to the backup host) is switched,
not routed, so it still flows; the router's own connections (how gestic reaches the hosts
over SSH) come from the gateway addresses and are untouched. Only the lab's own namespace is
changed, never the machine's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Protocol

from gestic.lab import names
from gestic.lab.image import run
from gestic.lab.network import netns_exists

PREF = 900  # rule priority of gestic's isolation rules (below main's 32766)


class Isolation(Protocol):
    def isolate(self, hosts: dict[str, IPv4Address], other_networks: list[IPv4Network]) -> None:
        """Cut each of `hosts` off every network of `other_networks` (idempotent)."""

    def release(self) -> int:
        """Undo every isolation; return how many rules or routes were removed."""

    def present(self) -> list[str]:
        """The isolation rules or routes in place (empty when nothing is isolated)."""


@dataclass(frozen=True)
class RouterIsolation:
    """A lab's: policy-routing rules in its router namespace."""

    lab: str

    def isolate(self, hosts: dict[str, IPv4Address], other_networks: list[IPv4Network]) -> None:
        isolate(self.lab, hosts, other_networks)

    def release(self) -> int:
        return release(self.lab)

    def present(self) -> list[str]:
        return isolation_rules(self.lab)


def _rules(lab: str) -> list[dict[str, object]]:
    ns = names.router_netns(lab)
    if not netns_exists(ns):
        return []
    out = run(["ip", "-n", ns, "-j", "-4", "rule", "show"], f"listing rules in {ns}")
    rules: list[dict[str, object]] = json.loads(out or "[]")
    return [r for r in rules if r.get("priority") == PREF]


def _net(rule: dict[str, object], side: str) -> str:
    addr = str(rule.get(side, "all"))
    if addr == "all":
        return addr
    length = rule.get(f"{side}len", 32)
    return str(IPv4Network(f"{addr}/{length}", strict=False))


def isolation_rules(lab: str) -> list[str]:
    """The isolation rules present, as 'from X to Y' strings (empty when nothing is isolated)."""
    return [f"from {_net(r, 'src')} to {_net(r, 'dst')}" for r in _rules(lab)]


def isolate(lab: str, hosts: dict[str, IPv4Address], other_networks: list[IPv4Network]) -> None:
    """Drop forwarded traffic between each host and each of `other_networks` (idempotent)."""
    ns = names.router_netns(lab)
    present = set(isolation_rules(lab))
    for address in hosts.values():
        for net in other_networks:
            host = str(IPv4Network(f"{address}/32"))
            for src, dst in ((host, str(net)), (str(net), host)):
                if f"from {src} to {dst}" in present:
                    continue
                run(
                    ["ip", "-n", ns, "rule", "add", "pref", str(PREF), "from", src, "to", dst,
                     "prohibit"],
                    f"isolating {src} from {dst} in {ns}",
                )  # fmt: skip


def release(lab: str) -> int:
    """Remove every isolation rule; return how many there were."""
    ns = names.router_netns(lab)
    count = 0
    for rule in _rules(lab):
        src, dst = _net(rule, "src"), _net(rule, "dst")
        run(
            ["ip", "-n", ns, "rule", "del", "pref", str(PREF), "from", src, "to", dst, "prohibit"],
            f"removing isolation rule from {src} to {dst} in {ns}",
        )
        count += 1
    return count
