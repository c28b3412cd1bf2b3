"""A partner's SFTP folder as an intake inbox: the transfer host's collector account.

The bots host logs in to the transfer service's host as the collector account (role sftp,
`sftp_collectors`): chrooted in the partners' root, a member of each partner's group it takes
from, so it may read what the partner delivered and move it into the processed folder, and
nothing else. The host key is checked against a known_hosts file (never trusted on first use)
and the key is the collector's private key from the environment's secrets.

Where the inbox is comes from the environment's model (`gestic_rpa.intake`): the transfer
service's first host and its address, the partner's account and folders.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Final

import paramiko

from gestic.errors import IntakeError
from gestic.model import Model
from gestic.rpa.intake import InboxFile, resent_name

CONNECT_TIMEOUT_S: Final = 20.0
#: The scheduler's environment names the collector's key and the transfer host's known key.
KEY_ENV: Final = "GESTIC_RPA_INBOX_KEY"
KNOWN_HOSTS_ENV: Final = "GESTIC_RPA_INBOX_KNOWN_HOSTS"


@dataclass(frozen=True, kw_only=True)
class InboxAddress:
    """Where an inbox is: host, port, account and the folders inside the account's chroot."""

    name: str
    host: str
    port: int
    account: str
    folder: PurePosixPath
    processed: PurePosixPath
    settle_s: float

    @property
    def source(self) -> str:
        return f"sftp://{self.account}@{self.host}:{self.port}{self.folder}"


def inbox_address(model: Model, name: str, *, port: int = 22) -> InboxAddress:
    """The inbox `name` of the environment's model (gestic_rpa.intake.inboxes)."""
    rpa = model.rpa
    inbox = rpa.intake.inboxes.get(name) if rpa else None
    if rpa is None or inbox is None:
        known = ", ".join(sorted(rpa.intake.inboxes)) if rpa else ""
        raise IntakeError(
            f"environment {model.environment!r} declares no inbox {name!r} "
            f"(gestic_rpa.intake.inboxes: {known or 'none'})"
        )
    service = model.services[rpa.intake.service]  # the model's checks ensure it and its hosts
    host = model.hosts[service.hosts[0]]
    partner = PurePosixPath("/", inbox.partner)
    return InboxAddress(
        name=name,
        host=str(host.address),
        port=port,
        account=rpa.intake.account,
        folder=partner / inbox.folder,
        processed=partner / inbox.processed,
        settle_s=rpa.intake.settle_seconds,
    )


class SftpInbox:
    """The Inbox protocol over an open SFTP session (see `open_sftp_inbox`)."""

    def __init__(self, address: InboxAddress, sftp: paramiko.SFTPClient) -> None:
        self.address = address
        self._sftp = sftp

    @property
    def source(self) -> str:
        return self.address.source

    def listing(self) -> list[InboxFile]:
        try:
            entries = self._sftp.listdir_attr(str(self.address.folder))
        except OSError as exc:
            raise IntakeError(f"{self.source}: cannot list the inbox: {exc}") from exc
        found = [
            InboxFile(e.filename, e.st_size or 0, float(e.st_mtime or 0))
            for e in entries
            if e.st_mode is not None and stat.S_ISREG(e.st_mode)
        ]
        return sorted(found, key=lambda f: (f.mtime, f.name))

    def read(self, name: str) -> bytes:
        with self._sftp.open(str(self.address.folder / name), "rb") as handle:
            data: bytes = handle.read()
        return data

    def _exists(self, path: PurePosixPath) -> bool:
        try:
            self._sftp.stat(str(path))
        except FileNotFoundError:
            return False
        return True

    def archive(self, name: str, digest: str) -> str:
        dest = self.address.processed / name
        if self._exists(dest):
            dest = self.address.processed / resent_name(name, digest)
        # posix-rename: one rename(2) in the chroot; a file another producer moved first is
        # FileNotFoundError, as the protocol wants.
        self._sftp.posix_rename(str(self.address.folder / name), str(dest))
        return dest.name


@contextmanager
def open_sftp_inbox(
    address: InboxAddress, *, key_file: Path, known_hosts: Path
) -> Iterator[SftpInbox]:
    """Log in to the inbox's host as the collector; the host key must be in `known_hosts`."""
    for what, path in (("collector key", key_file), ("known_hosts", known_hosts)):
        if not path.is_file():
            raise IntakeError(f"{address.source}: the {what} {path} does not exist")
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            address.host,
            port=address.port,
            username=address.account,
            key_filename=str(key_file),
            allow_agent=False,
            look_for_keys=False,
            timeout=CONNECT_TIMEOUT_S,
            banner_timeout=CONNECT_TIMEOUT_S,
            auth_timeout=CONNECT_TIMEOUT_S,
        )
        sftp = client.open_sftp()
    except (paramiko.SSHException, OSError) as exc:
        client.close()
        raise IntakeError(f"{address.source}: cannot log in: {exc}") from exc
    try:
        yield SftpInbox(address, sftp)
    finally:
        sftp.close()
        client.close()
