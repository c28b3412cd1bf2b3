"""The shared RPA ledger (`gestic_rpa.ledger`): the work-item queue and the scheduler's run
ledger in one PostgreSQL database that the bots hosts and the controller share, so that
`gestic rpa report` counts the scheduled runs.

Where it is comes from the model alone: the database `database` on the first host of the
PostgreSQL service `service`, at that host's inventory address and the port of the service's
postgresql probe, as the login role `role`; its password is the custodian's
`gestic_database_passwords.<role>` (the lab's secrets, or the environment's vault). The
database role creates it; the rpa_scheduler role writes the same URL into the bots hosts'
environment. TLS is verified against the database host's own certificate (`verify-full`,
checked against the host's inventory name, which the certificate carries).

The controller does not reach the database network itself (a lab's addresses exist only in
its namespaces; an institution's only behind its bastion): `open_shared_ledger` forwards a
local port through the environment's ssh access to a bots host, whose address the database
already lets in, and gives the URL through it.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from sqlalchemy.engine import URL

from gestic.environments.custody import DATABASE_PASSWORDS
from gestic.errors import RpaError, SecretsError
from gestic.model import Model
from gestic.tools.ports import LOCALHOST
from gestic.tools.ssh import SshAccess
from gestic.tools.ssh_tunnel import forward

BOTS_GROUP = "bots"
CA_ON_BOTS_HOST = "/etc/gestic/rpa-ledger-ca.pem"
"""Where the rpa_scheduler role keeps the database host's certificate on each bots host."""
DRIVER = "postgresql+psycopg"
_SSL_REQUEST = struct.pack("!ii", 8, 80877103)  # PostgreSQL's SSLRequest message


@dataclass(frozen=True, kw_only=True)
class SharedLedger:
    """The shared ledger's database, resolved from the model."""

    service: str
    host: str  # the database host's inventory name (its TLS certificate's name)
    address: IPv4Address
    port: int
    database: str
    role: str
    bots_hosts: tuple[str, ...]  # who connects directly; the controller forwards through one

    @property
    def via(self) -> str:
        """The bots host the controller's port forward goes through."""
        if not self.bots_hosts:
            raise RpaError(
                f"gestic_rpa.ledger: no host in group `{BOTS_GROUP}`: the controller reaches the "
                f"ledger on {self.host} through a bots host, which the database lets in"
            )
        return self.bots_hosts[0]


def shared_ledger(model: Model) -> SharedLedger | None:
    """The shared ledger the model declares, or None (SQLite in each state dir)."""
    declared = model.rpa.ledger if model.rpa is not None else None
    if declared is None:
        return None
    service = model.services[declared.service]  # the loader checked it is there
    assert service.probe is not None  # and a postgresql one: the loader checked both
    host = model.hosts[service.hosts[0]]
    return SharedLedger(
        service=service.name,
        host=host.name,
        address=host.address,
        port=service.probe.port,
        database=declared.database,
        role=declared.role,
        bots_hosts=tuple(sorted(h.name for h in model.hosts.values() if BOTS_GROUP in h.groups)),
    )


def ledger_url(
    ledger: SharedLedger,
    password: str,
    *,
    sslrootcert: Path | str,
    port: int | None = None,
    hostaddr: str | None = None,
) -> str:
    """The SQLAlchemy URL of the shared ledger (with its password: a secret).

    By default the database host's own address and port (a bots host connects directly);
    through a port forward, `hostaddr` 127.0.0.1 and the local `port`. libpq connects to
    `hostaddr` and checks the certificate against the host's name either way. The
    rpa_scheduler role builds the same URL (its `rpa_scheduler_ledger_model_url`)."""
    return URL.create(
        DRIVER,
        username=ledger.role,
        password=password,
        host=ledger.host,
        port=port or ledger.port,
        database=ledger.database,
        query={
            "hostaddr": hostaddr or str(ledger.address),
            "sslmode": "verify-full",
            "sslrootcert": str(sslrootcert),
        },
    ).render_as_string(hide_password=False)


def password(ledger: SharedLedger, access: SshAccess, model: Model) -> str:
    """The ledger role's password from the environment's custodian."""
    if access.secrets is None:
        raise SecretsError(f"environment '{access.name}' has no secrets custodian")
    value = (access.secrets.values(model).get(DATABASE_PASSWORDS) or {}).get(ledger.role)
    if not isinstance(value, str) or not value:
        raise SecretsError(f"{DATABASE_PASSWORDS}.{ledger.role}: missing or empty")
    return value


def postgres_answers(port: int) -> str | None:
    """None if a PostgreSQL server answers on 127.0.0.1:`port` (its SSLRequest reply), else
    why not: an SSH server that refuses the forward closes the connection at once."""
    try:
        sock = socket.create_connection((LOCALHOST, port), timeout=10)
    except OSError as exc:
        return f"PostgreSQL does not answer through it: {exc}"
    with sock:
        try:
            sock.sendall(_SSL_REQUEST)
            reply = sock.recv(1)
        except ConnectionError:  # closed or reset: the forward's channel was refused
            reply = b""
        except OSError as exc:
            return f"PostgreSQL does not answer through it: {exc}"
    if reply in (b"S", b"N"):
        return None
    return (
        "the connection was closed without an answer from PostgreSQL: the SSH server refused "
        "to forward (AllowTcpForwarding/PermitOpen for the automation account) or nothing "
        "listens there"
    )


def fetch_ca(ledger: SharedLedger, access: SshAccess, dest: Path) -> Path:
    """The database host's certificate as the bots host trusts it, copied to `dest`."""
    done = access.run(ledger.via, f"cat {CA_ON_BOTS_HOST}", timeout=60)
    if done.returncode != 0 or "BEGIN CERTIFICATE" not in done.stdout:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise RpaError(
            f"cannot read the ledger database's certificate {ledger.via}:{CA_ON_BOTS_HOST}: "
            f"{said[-1] if said else f'ssh exited {done.returncode}'} (converge the "
            "rpa_scheduler role: `gestic converge --tags database,rpa_scheduler`)"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(done.stdout)
    return dest


@contextlib.contextmanager
def open_shared_ledger(
    ledger: SharedLedger, *, access: SshAccess, model: Model, state_dir: Path
) -> Iterator[str]:
    """The shared ledger's URL on the controller, through an SSH port forward to a bots host
    (open while the body runs; TunnelError if it cannot be opened)."""
    access.write(model)  # the ssh_config, and the custodian checked
    secret = password(ledger, access, model)
    ca = fetch_ca(ledger, access, state_dir / "rpa-ledger" / f"{ledger.host}-ca.pem")
    with forward(
        access.ssh_config, ledger.via, str(ledger.address), ledger.port, check=postgres_answers
    ) as local_port:
        yield ledger_url(ledger, secret, sslrootcert=ca, port=local_port, hostaddr=LOCALHOST)
