"""Test-failover isolation on the recovered hosts themselves, for environments gestic does not
build (the institution's datacenter, or the tests' second environment).

gestic owns no router there, so each isolated host gets routes of its own: `prohibit` for every
network it must not reach, and a host route for the one address it must keep, the peer of the
automation account's SSH session (the bastion, or the controller). The exemption is added first,
so the session that adds the prohibit routes survives them. Every route carries the routing
protocol number PROTO, so `release` flushes exactly gestic's routes and nothing else. Which
hosts were isolated is kept in the environment's state dir, so a cleanup after an interrupted
run (or from another process) finds them.

Routes are not firewall rules: a host restarted during the drill comes back without them (the
drill then fails its probes rather than running unisolated traffic through its old routes).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, ip_address
from pathlib import Path
from typing import Any

from gestic.errors import DrError
from gestic.tools.ssh import SshAccess

PROTO = 213
"""The routing protocol number that marks gestic's isolation routes (free in rt_protos)."""


@dataclass(frozen=True)
class HostIsolation:
    access: SshAccess

    @property
    def _state(self) -> Path:
        return self.access.state_dir / "dr" / "isolated-hosts.json"

    def _hosts(self) -> list[str]:
        try:
            hosts: list[str] = json.loads(self._state.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return []
        return hosts

    def _remember(self, hosts: list[str]) -> None:
        self._state.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._state.with_suffix(".tmp")
        tmp.write_text(json.dumps(sorted(set(hosts))))
        tmp.replace(self._state)

    def _run(self, host: str, command: str, what: str) -> str:
        done = self.access.run(host, command)
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise DrError(f"{host}: {what}: {detail[0]}")
        return done.stdout

    def _routes(self, host: str) -> list[dict[str, Any]]:
        out = self._run(host, f"ip -j -4 route show proto {PROTO}", "listing isolation routes")
        routes: list[dict[str, Any]] = json.loads(out or "[]")
        return routes

    def isolate(self, hosts: dict[str, IPv4Address], other_networks: list[IPv4Network]) -> None:
        self._remember([*self._hosts(), *hosts])  # first: a failure below is still released
        for host in hosts:
            peer = self._run(host, 'printf %s "${SSH_CONNECTION%% *}"', "finding the SSH peer")
            try:
                ip_address(peer)
            except ValueError as exc:
                raise DrError(f"{host}: cannot tell the SSH session's peer ({peer!r})") from exc
            via = json.loads(self._run(host, f"ip -j -4 route get {peer}", "routing the peer"))
            hop = via[0] if via else {}
            gateway = ["via", hop["gateway"]] if hop.get("gateway") else []
            device = ["dev", hop["dev"]] if hop.get("dev") else []
            keep = ["ip", "route", "replace", f"{peer}/32", *gateway, *device, "proto", str(PROTO)]
            cut = [["ip", "route", "replace", "prohibit", str(net), "proto", str(PROTO)]
                   for net in other_networks]  # fmt: skip
            script = " && ".join(shlex.join(cmd) for cmd in (keep, *cut))
            self._run(host, f"sudo sh -c {shlex.quote(script)}", "adding isolation routes")

    def release(self) -> int:
        count = 0
        for host in self._hosts():
            routes = self._routes(host)
            if routes:
                self._run(host, f"sudo ip route flush proto {PROTO}", "removing isolation routes")
                count += len(routes)
        self._state.unlink(missing_ok=True)
        return count

    def present(self) -> list[str]:
        return [
            f"{host}: {route.get('type', 'unicast')} {route.get('dst')}"
            for host in self._hosts()
            for route in self._routes(host)
        ]
