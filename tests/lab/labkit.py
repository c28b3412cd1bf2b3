"""Helpers for tests that run against the real lab (see the `lab` fixture in conftest.py)."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gestic.environments.context import Context
from gestic.tools.ansible.runner import ConvergeResult, run_playbook
from gestic.tools.testinfra import VerifyResult, run_verify

from ..paths import ROOT

__all__ = [
    "ROOT", "Lab", "authorized_partner_key", "converge", "declared_partners", "keypair",
    "login_argv", "login_as", "on_host", "run_on", "sftp_as", "verify",
]  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Lab:
    """A lab that is up and was converged once for this test session."""

    ctx: Context
    first_converge: ConvergeResult


Completed = subprocess.CompletedProcess[str]


def converge(
    ctx: Context,
    *,
    check: bool = False,
    limit: str | None = None,
    tags: str | None = None,
    inventory: Path | None = None,
    extravars: dict[str, Any] | None = None,
    playbook: str = "site.yml",
    failed: dict[str, list[str]] | None = None,
    strategy: str | None = None,
) -> ConvergeResult:
    """Run a playbook on the lab (`inventory`: another inventory dir, e.g. an edited copy).

    `failed`, if given, collects each host's failed tasks ("task: message").
    """

    def sink(event: dict[str, Any]) -> None:
        if failed is not None and event.get("event") == "runner_on_failed":
            data = event["event_data"]
            failed.setdefault(data["host"], []).append(
                f"{data['task']}: {data['res'].get('msg', '')}"
            )

    ctx.access.write(ctx.model)
    return run_playbook(
        playbooks_dir=ROOT / "playbooks",
        playbook=playbook,
        inventory=(inventory or ctx.inventory) / "hosts.yml",
        access=ctx.access,
        artifacts_dir=ctx.artifacts / "ansible",
        check=check,
        diff=check,
        limit=limit,
        tags=tags,
        extravars=extravars,
        event_sink=sink,
        strategy=strategy,
    )


def run_on(
    ctx: Context, host: str, command: str, *, timeout: float = 60, stdin: str | None = None
) -> Completed:
    """Run a shell `command` on a lab host as the automation account (the same ssh_config and
    options as every tool: `SshAccess.run`); its exit status and output, whatever they are."""
    return ctx.access.run(host, command, timeout=timeout, stdin=stdin)


def on_host(ctx: Context, host: str, command: str, *, timeout: float = 60) -> str:
    """Run `command` as root on a lab host over the automation account's SSH; its stdout
    (it must succeed)."""
    proc = run_on(ctx, host, f"sudo sh -c {shlex.quote(command)}", timeout=timeout)
    assert proc.returncode == 0, f"{host}: {command}: exited {proc.returncode}: {proc.stderr}"
    return proc.stdout


def login_argv(ctx: Context, host: str, user: str, key: Path, *command: str) -> list[str]:
    """The ssh command line that logs in to `host` as `user` with its own `key`, on a
    connection of its own (no shared master, no prompts), and runs `command` (or `id -un`)."""
    return [
        "ssh", "-F", str(ctx.access.ssh_config), "-i", str(key), "-l", user,
        "-o", "BatchMode=yes", "-o", "ControlMaster=no", "-o", "ControlPath=none",
        host, *(command or ("id", "-un")),
    ]  # fmt: skip


def login_as(ctx: Context, host: str, user: str, key: Path, *command: str) -> Completed:
    """Log in as `user` (see `login_argv`) and run `command`; its status and output."""
    argv = login_argv(ctx, host, user, key, *command)
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)


def verify(ctx: Context, *, checks: Path | None = None) -> VerifyResult:
    """Run the testinfra checks (all of verify/, or one file/dir) on every lab host."""
    return run_verify(
        checks_dir=checks or ROOT / "verify",
        inventory=ctx.inventory,
        model=ctx.model,
        access=ctx.access,
        artifacts_dir=ctx.artifacts / "verify",
        stream=False,
    )


def keypair(directory: Path, name: str) -> tuple[Path, str]:
    """A new ed25519 key pair in `directory`: the private key's path and the public line."""
    key = directory / name
    argv = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@gestic-test", "-f"]
    subprocess.run([*argv, str(key)], check=True)
    return key, key.with_suffix(".pub").read_text().strip()


def sftp_as(ctx: Context, host: str, user: str, key: Path, batch: str) -> Completed:
    """Run an sftp `batch` on `host` as `user` with its own `key` (see `login_argv`)."""
    argv = [
        "sftp", "-F", str(ctx.access.ssh_config), "-i", str(key), "-o", f"User={user}",
        "-o", "BatchMode=yes", "-o", "ControlMaster=no", "-o", "ControlPath=none",
        "-b", "-", host,
    ]  # fmt: skip
    return subprocess.run(
        argv, input=batch, capture_output=True, text=True, timeout=60, check=False
    )


def declared_partners(ctx: Context) -> list[dict[str, Any]]:
    """The SFTP partners the environment's inventory declares (role sftp)."""
    data = yaml.safe_load((ctx.inventory / "group_vars" / "transfer" / "sftp.yml").read_text())
    return list(data["sftp_partners"])


@contextmanager
def authorized_partner_key(ctx: Context, partner: str, directory: Path) -> Iterator[Path]:
    """A private key of the declared `partner`, authorized on the transfer host until the
    block ends (then the repository's inventory is converged back)."""
    key, public = keypair(directory, partner)
    partners = declared_partners(ctx)
    for entry in partners:
        if entry["name"] == partner:
            entry["public_keys"] = [*entry["public_keys"], public]
    result = converge(ctx, limit="transfer", tags="sftp", extravars={"sftp_partners": partners})
    assert result.ok, result.per_host
    try:
        yield key
    finally:
        back = converge(ctx, limit="transfer", tags="sftp")
        assert back.ok, back.per_host
        host = ctx.model.services["transferencia"].hosts[0]
        assert public.split()[1] not in on_host(ctx, host, f"cat /etc/ssh/sftp-keys/{partner}")
