"""What a bot gets from the environment it runs in: its robot variables (addresses from the
inventory, never from the manifest) and the partner's inbox its first step takes files from."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gestic.errors import IntakeError
from gestic.model import Model
from gestic.rpa.intake import Inbox
from gestic.rpa.manifest import Bot
from gestic.rpa.sftp_inbox import (
    KEY_ENV,
    KNOWN_HOSTS_ENV,
    InboxAddress,
    inbox_address,
    open_sftp_inbox,
)

__all__ = ["bot_variables", "inbox_of", "open_inbox"]


def service_addresses(model: Model) -> dict[str, str]:
    """Each service's address: its first host's (the model's checks ensure it exists)."""
    return {
        name: str(model.hosts[svc.hosts[0]].address)
        for name, svc in model.services.items()
        if svc.hosts and svc.hosts[0] in model.hosts
    }


def bot_variables(model: Model, bot: Bot) -> dict[str, str]:
    """The environment's robot variables of `bot` (gestic_rpa.variables), `{service}` resolved."""
    if model.rpa is None:
        return {}
    addresses = service_addresses(model)
    return {k: v.format_map(addresses) for k, v in model.rpa.variables.get(bot.name, {}).items()}


def inbox_of(model: Model, bot: Bot) -> InboxAddress | None:
    """Where the bot's first step takes its files in this environment (None: no inbox)."""
    name = bot.manifest.steps[0].inbox
    return inbox_address(model, name) if name is not None else None


@contextmanager
def open_inbox(
    address: InboxAddress, *, key_file: Path | None = None, known_hosts: Path | None = None
) -> Iterator[Inbox]:
    """The inbox over SFTP, with the collector's key and known_hosts (by default the files the
    rpa_scheduler role names in GESTIC_RPA_INBOX_KEY and GESTIC_RPA_INBOX_KNOWN_HOSTS)."""
    key = key_file or _from_env(KEY_ENV, address)
    known = known_hosts or _from_env(KNOWN_HOSTS_ENV, address)
    with open_sftp_inbox(address, key_file=key, known_hosts=known) as inbox:
        yield inbox


def _from_env(var: str, address: InboxAddress) -> Path:
    value = os.environ.get(var)
    if not value:
        raise IntakeError(
            f"{address.source}: {var} is not set (the rpa_scheduler role sets it on a bots "
            "host; elsewhere give --inbox-key and --inbox-known-hosts)"
        )
    return Path(value)
