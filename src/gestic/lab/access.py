"""How tools reach the lab hosts over SSH: one ssh_config per lab, read by Ansible and testinfra.

Lab hosts live in network namespaces the lab created; the root namespace has no route to them
(and gets none). SSH goes through a ProxyCommand that opens the TCP connection from inside the
lab's router namespace. Connections are multiplexed (ControlPersist) and kept alive so a host
that is cut off fails fast instead of hanging a run.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address
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

    def wait_for_login(
        self, hosts: Mapping[str, IPv4Address], *, timeout: float = 60
    ) -> dict[str, str]:
        """Wait until the automation account can really log in to each host; return the hosts
        that never let it in within `timeout`, with ssh's last message.

        A host whose port 22 answers is not yet usable: a booting systemd keeps /run/nologin
        (pam_nologin refuses every account but root) until systemd-user-sessions has run, and
        sshd may still be starting or restarting.
        """
        deadline = time.monotonic() + timeout
        waiting = dict(hosts)
        errors: dict[str, str] = {}
        while waiting:
            for host, address in list(waiting.items()):
                try:
                    done = subprocess.run(
                        self.login_command(host, address),
                        stdin=subprocess.DEVNULL,
                        capture_output=True,
                        text=True,
                        timeout=20,
                        check=False,
                    )
                except subprocess.TimeoutExpired:
                    errors[host] = "ssh login timed out"
                    continue
                if done.returncode == 0:
                    del waiting[host]
                    errors.pop(host, None)
                else:
                    lines = (done.stderr or done.stdout).strip().splitlines()
                    errors[host] = lines[-1] if lines else f"ssh exited {done.returncode}"
            if not waiting or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        return {host: errors.get(host, "no answer") for host in waiting}

    def drop_masters(self, hosts: list[str]) -> None:
        """Close the multiplexed SSH connections (ControlMaster) to `hosts`, if any: after a
        host restarts, a master still attached to its previous boot only fails new sessions."""
        if not self.ssh_config.is_file():
            return
        for host in hosts:
            subprocess.run(
                ["ssh", "-F", str(self.ssh_config), "-O", "exit", host],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=20,
                check=False,
            )

    def forget_host(self, host: str) -> None:
        """Drop a host's known key (a recreated host generates a new one)."""
        if not self.known_hosts.is_file():
            return
        kept = [ln for ln in self.known_hosts.read_text().splitlines() if not _names_host(ln, host)]
        self.known_hosts.write_text("".join(f"{ln}\n" for ln in kept))


def _names_host(line: str, host: str) -> bool:
    first = line.split(" ", 1)[0]
    return host in first.split(",")
