"""How tools reach the lab hosts over SSH: one ssh_config per lab, read by Ansible and testinfra.

Lab hosts live in network namespaces the lab created; the root namespace has no route to them
(and gets none). SSH goes through a ProxyCommand that opens the TCP connection from inside the
lab's router namespace. Connections are multiplexed (ControlPersist) and kept alive so a host
that is cut off fails fast instead of hanging a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gestic.lab import names
from gestic.lab.image import AUTOMATION_USER
from gestic.model import Model


@dataclass(frozen=True, kw_only=True)
class LabAccess:
    """Paths of one lab's SSH material."""

    lab: str
    state_dir: Path  # the lab's own state dir (<state>/lab/<lab>)
    multiplex: bool = True  # ControlMaster/ControlPersist (off only to measure what it saves)

    @property
    def key(self) -> Path:
        return self.state_dir / "id_ed25519"

    @property
    def ssh_config(self) -> Path:
        return self.state_dir / "ssh_config"

    @property
    def known_hosts(self) -> Path:
        return self.state_dir / "known_hosts"

    @property
    def control_dir(self) -> Path:
        # short, per-lab path: unix socket paths are limited to 108 bytes and two labs may
        # use the same host names and addresses
        return Path("/run/gestic") / self.lab

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
            *(
                [
                    "  ControlMaster auto",
                    f"  ControlPath {self.control_dir}/%C",
                    "  ControlPersist 60s",
                ]
                if self.multiplex
                else ["  ControlMaster no", "  ControlPath none"]
            ),
            "  ServerAliveInterval 5",
            "  ServerAliveCountMax 3",
            "  ConnectTimeout 10",
            "  StrictHostKeyChecking accept-new",
            f"  UserKnownHostsFile {self.known_hosts}",
            "  LogLevel ERROR",
            "",
        ]
        return "\n".join(lines)

    def write(self, model: Model) -> Path:
        """Write the ssh_config (and the control socket dir); return its path."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.control_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.ssh_config.write_text(self.render(model))
        return self.ssh_config

    def forget_host(self, host: str) -> None:
        """Drop a host's known key (a recreated host generates a new one)."""
        if not self.known_hosts.is_file():
            return
        kept = [ln for ln in self.known_hosts.read_text().splitlines() if not _names_host(ln, host)]
        self.known_hosts.write_text("".join(f"{ln}\n" for ln in kept))


def _names_host(line: str, host: str) -> bool:
    first = line.split(" ", 1)[0]
    return host in first.split(",")
