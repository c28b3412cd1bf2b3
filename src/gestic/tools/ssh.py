"""How every tool reaches an environment's hosts: one ssh_config per environment.

Ansible (`-F`), testinfra (`--ssh-config`), the backup and drill commands, log collection and
the tests all read the ssh_config an `SshAccess` writes, so a host is reached the same way by
all of them. `LabAccess` (gestic.lab.access) reaches the lab's namespaces; `InventoryAccess`
reaches any other environment from its inventory alone: addresses (`ansible_host` or
`gestic_address`), the automation account, a key or the ssh-agent, a ProxyJump bastion, the
environment's own ssh_config and its known_hosts (strict host key checking).
"""

from __future__ import annotations

import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from gestic.environments.custody import Secrets
from gestic.model import Model
from gestic.model.schema import Connection

# options of a connection that must answer now or fail (probes and login waits)
_ONE_SHOT = {"ControlMaster": "no", "ControlPath": "none", "BatchMode": "yes"}


@dataclass(frozen=True, kw_only=True)
class SshAccess(ABC):
    """One environment's SSH material under its state dir, and the operations on it."""

    state_dir: Path  # the environment's controller-side state (keys registry, PKI, ssh_config)
    multiplex: bool = True  # ControlMaster/ControlPersist (off only to measure what it saves)
    secrets: Secrets | None = None  # handed to every Ansible run of the environment

    @property
    @abstractmethod
    def name(self) -> str:
        """The environment (the lab's name for a lab): names the control socket dir."""

    @property
    def ssh_config(self) -> Path:
        return self.state_dir / "ssh_config"

    @property
    @abstractmethod
    def known_hosts(self) -> Path: ...

    strict_host_keys: bool = True
    """Whether Ansible must refuse an unknown host key (a lab's hosts are new on every build)."""

    @property
    def control_dir(self) -> Path:
        # short path: unix socket paths are limited to 108 bytes
        return Path("/run/gestic") / self.name

    @abstractmethod
    def render(self, model: Model) -> str:
        """The ssh_config text for every host of `model`."""

    @abstractmethod
    def route(self, host: str, model: Model) -> str:
        """How `host` is reached, for error messages (address, and bastion if any)."""

    def multiplexing(self) -> list[str]:
        if not self.multiplex:
            return ["  ControlMaster no", "  ControlPath none"]
        return [
            "  ControlMaster auto",
            f"  ControlPath {self.control_dir}/%C",
            "  ControlPersist 60s",
        ]

    def write(self, model: Model) -> Path:
        """Check the secrets, write the ssh_config (and the control socket dir); return its
        path. Called before every run: bad secrets stop it before anything changes."""
        if self.secrets is not None:
            self.secrets.check(model)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.control_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.ssh_config.write_text(self.render(model))
        return self.ssh_config

    def login_command(self, host: str, address: IPv4Address, *command: str) -> list[str]:
        """An ssh command line that logs the automation account in to `host` on its own
        connection (no multiplexing, no prompts), through the written ssh_config."""
        del address  # the ssh_config knows it
        options = [arg for k, v in {**_ONE_SHOT, "ConnectTimeout": "5"}.items()
                   for arg in ("-o", f"{k}={v}")]  # fmt: skip
        return ["ssh", "-F", str(self.ssh_config), *options, host, *(command or ("true",))]

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

    def run(
        self, host: str, command: str, *, timeout: float = 60, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a shell `command` on `host` as the automation account, through the written
        ssh_config (multiplexed, no prompts); `stdin` is its input (default: none)."""
        argv = ["ssh", "-F", str(self.ssh_config), "-o", "BatchMode=yes", host, command]
        if stdin is None:
            return subprocess.run(
                argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                check=False,
            )  # fmt: skip
        return subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )

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


@dataclass(frozen=True, kw_only=True)
class InventoryAccess(SshAccess):
    """Reach a non-lab environment as its inventory says (`gestic_connection`)."""

    environment: str
    connection: Connection
    inventory: Path  # the environment's inventory dir: relative paths start there

    @property
    def name(self) -> str:
        return self.environment

    def _path(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.inventory / path

    @property
    def known_hosts(self) -> Path:
        return self._path(self.connection.known_hosts)

    def route(self, host: str, model: Model) -> str:
        entry = model.hosts.get(host)
        address = (entry.ssh_host or str(entry.address)) if entry else "?"
        via = self.connection.bastion
        return f"{host} ({address})" + (f" via bastion {via.host}" if via else " (direct)")

    def render(self, model: Model) -> str:
        conn = self.connection
        lines = [f"# Written by gestic for environment '{self.name}'; regenerated on every run."]
        if conn.ssh_config:
            # first obtained value wins in ssh_config: the environment's own file comes first
            lines.append(f"Include {self._path(conn.ssh_config)}")
        lines.append("")
        jump = None
        if (bastion := conn.bastion) is not None:
            # under its own name (no HostName): the environment's ssh_config can say how the
            # bastion itself is reached (a HostName, a ProxyCommand) with `Host <name>`
            jump = bastion.host
            lines += [
                f"Host {jump}",
                f"  Port {bastion.port}",
                f"  User {bastion.user or conn.user}",
                *([f"  IdentityFile {self._path(bastion.identity_file)}", "  IdentitiesOnly yes"]
                  if bastion.identity_file else []),
                f"  HostKeyAlias {bastion.host}",
                "",
            ]  # fmt: skip
        for host in sorted(model.hosts.values(), key=lambda h: h.name):
            lines += [
                f"Host {host.name}",
                f"  HostName {host.ssh_host or host.address}",
                *([f"  Port {host.ssh_port}"] if host.ssh_port else []),
                f"  HostKeyAlias {host.name}",
                *([f"  ProxyJump {jump}"] if jump else []),
                "",
            ]
        lines += [
            "Host *",
            f"  User {conn.user}",
            *([f"  IdentityFile {self._path(conn.identity_file)}", "  IdentitiesOnly yes"]
              if conn.identity_file else []),
            *self.multiplexing(),
            "  ServerAliveInterval 5",
            "  ServerAliveCountMax 3",
            "  ConnectTimeout 10",
            # a production host whose key is not known is refused, never trusted on first use
            "  StrictHostKeyChecking yes",
            f"  UserKnownHostsFile {self.known_hosts}",
            "  PasswordAuthentication no",
            "  KbdInteractiveAuthentication no",
            "  LogLevel ERROR",
            "",
        ]  # fmt: skip
        return "\n".join(lines)
