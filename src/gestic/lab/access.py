"""How tools reach the lab hosts over SSH: one ssh_config per lab, read by Ansible and testinfra.

Lab hosts live in network namespaces the lab created; the root namespace has no route to them
(and gets none). SSH goes through a ProxyCommand that opens the TCP connection from inside the
lab's router namespace. Connections are multiplexed (ControlPersist) and kept alive so a host
that is cut off fails fast instead of hanging a run.
"""

from __future__ import annotations

import fcntl
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from gestic.lab import names
from gestic.lab.image import AUTOMATION_USER
from gestic.model import Model
from gestic.tools.ssh import SshAccess


@dataclass(frozen=True, kw_only=True)
class LabAccess(SshAccess):
    """Paths of one lab's SSH material (`state_dir` is the lab's own: <state>/lab/<lab>)."""

    lab: str
    strict_host_keys: bool = False  # hosts are recreated: their keys are learnt (accept-new)

    @property
    def name(self) -> str:
        return self.lab

    @property
    def key(self) -> Path:
        return self.state_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.state_dir / "known_hosts"

    def route(self, host: str, model: Model) -> str:
        entry = model.hosts.get(host)
        address = entry.address if entry else "?"
        return f"{host} ({address}) via the lab router namespace {names.router_netns(self.lab)}"

    def render(self, model: Model) -> str:
        router = names.router_netns(self.lab)
        lines = [f"# Written by gestic for lab '{self.lab}'; regenerated on every run.", ""]
        for host in sorted(model.hosts.values(), key=lambda h: h.name):
            lines += [
                f"Host {host.name}",
                f"  HostName {host.address}",
                f"  HostKeyAlias {host.name}",
                "",
            ]
        lines += [
            "Host *",
            f"  User {AUTOMATION_USER}",
            f"  IdentityFile {self.key}",
            "  IdentitiesOnly yes",
            f"  ProxyCommand ip netns exec {router} nc %h %p",
            *self.multiplexing(),
            "  ServerAliveInterval 5",
            "  ServerAliveCountMax 3",
            "  ConnectTimeout 10",
            "  StrictHostKeyChecking accept-new",
            f"  UserKnownHostsFile {self.known_hosts}",
            "  LogLevel ERROR",
            "",
        ]
        return "\n".join(lines)

    def login_command(self, host: str, address: IPv4Address, *command: str) -> list[str]:
        """An ssh command line that logs the automation account in to `host` on its own
        connection (no multiplexing, no prompts), without needing the written ssh_config."""
        router = names.router_netns(self.lab)
        options = {
            "User": AUTOMATION_USER,
            "IdentityFile": str(self.key),
            "IdentitiesOnly": "yes",
            "ProxyCommand": f"ip netns exec {router} nc %h %p",
            "HostKeyAlias": host,
            "ControlMaster": "no",
            "ControlPath": "none",
            "BatchMode": "yes",
            "ConnectTimeout": "5",
            "StrictHostKeyChecking": "accept-new",
            "UserKnownHostsFile": str(self.known_hosts),
            "LogLevel": "ERROR",
        }
        return [
            "ssh",
            "-F",
            "none",
            *(arg for key, value in options.items() for arg in ("-o", f"{key}={value}")),
            str(address),
            *(command or ("true",)),
        ]

    def forget_host(self, host: str) -> None:
        """Drop a host's known key (a recreated host generates a new one).

        Hosts are created in parallel: the read-modify-write holds a lock, or one host's
        rewrite could bring back another's old key (seen as "Host key verification failed").
        """
        if not self.known_hosts.is_file():
            return
        with open(self.state_dir / "known_hosts.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            lines = self.known_hosts.read_text().splitlines()
            kept = [ln for ln in lines if not _names_host(ln, host)]
            if kept != lines:
                tmp = self.known_hosts.with_suffix(".tmp")
                tmp.write_text("".join(f"{ln}\n" for ln in kept))
                tmp.replace(self.known_hosts)


def _names_host(line: str, host: str) -> bool:
    first = line.split(" ", 1)[0]
    return host in first.split(",")
