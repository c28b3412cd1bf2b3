"""The model's schema: what each site, host, service and policy must declare."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from datetime import date, datetime
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_ssh_public_key
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    StringConstraints,
    model_validator,
)

from gestic.model.base import Frozen as _Frozen
from gestic.model.base import Name, TimeZoneName
from gestic.model.rpa_schema import Rpa


class Site(_Frozen):
    name: Name
    role: Literal["primary", "dr"]
    description: str
    network: IPv4Network

    @property
    def gateway(self) -> IPv4Interface:
        """The site's gateway: its network's first address."""
        return IPv4Interface(f"{self.network.network_address + 1}/{self.network.prefixlen}")


class Size(_Frozen):
    cpus: int = Field(default=1, ge=1, le=64)
    memory_mb: int = Field(default=1024, ge=256)
    disk_gb: int = Field(default=20, ge=5)


class Host(_Frozen):
    name: Name
    site: Name
    address: IPv4Address
    owner: str
    groups: tuple[str, ...]
    size: Size = Size()
    ssh_host: str | None = None  # ansible_host, when SSH reaches it by another name or address
    ssh_port: int | None = Field(default=None, ge=1, le=65535)  # ansible_port


# --- how a non-lab environment is reached (gestic_connection) -------------------------------

SshToken = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:@%+/~-]+$")]
"""A host name, address or path written into an ssh_config: no spaces, quotes or newlines."""


class Bastion(_Frozen):
    """The jump host (ProxyJump) through which every host of the environment is reached."""

    host: SshToken
    user: SshToken | None = None  # default: the connection's user
    port: int = Field(default=22, ge=1, le=65535)
    identity_file: SshToken | None = None  # default: the connection's key or the ssh-agent


class Connection(_Frozen):
    """How gestic, Ansible and testinfra reach a non-lab environment's hosts.

    Relative paths are relative to the inventory directory; `~` is expanded. Without
    `identity_file` the ssh-agent's keys are offered. Host keys are checked strictly against
    `known_hosts` (one line per host, under its inventory name).
    """

    user: SshToken = "gestic"
    identity_file: SshToken | None = None
    known_hosts: SshToken = "known_hosts"
    bastion: Bastion | None = None
    ssh_config: SshToken | None = None  # the environment's own ssh_config, included first


class Retention(_Frozen):
    hourly: int = Field(default=0, ge=0)
    daily: int = Field(default=0, ge=0)
    weekly: int = Field(default=0, ge=0)
    monthly: int = Field(default=0, ge=0)


class BackupPolicy(_Frozen):
    name: Name
    schedule: str = Field(min_length=1)
    retention: Retention
    copies: int = Field(ge=1)


class ServiceBackup(_Frozen):
    policy: Name
    paths: tuple[str, ...] = ()
    databases: tuple[str, ...] = ()


class Probe(_Frozen):
    """How the monitoring tells, from outside the service's hosts, whether it answers: an HTTP
    GET of `path` (2xx), a real SQL query on `database`, an SSH banner, or a TCP connect."""

    kind: Literal["http", "postgresql", "ssh", "tcp"]
    port: int = Field(ge=1, le=65535)
    path: str = Field(default="/", pattern=r"^/")
    database: str | None = None

    @model_validator(mode="after")
    def _fields_for_kind(self) -> Probe:
        if (self.kind == "postgresql") != (self.database is not None):
            raise ValueError("a postgresql probe needs `database`, and only it takes one")
        if self.kind != "http" and self.path != "/":
            raise ValueError("only an http probe takes `path`")
        return self


class Service(_Frozen):
    name: Name
    description: str
    owner: str
    tier: int = Field(ge=1, le=3)
    hosts: tuple[Name, ...] = Field(min_length=1)
    dr_hosts: tuple[Name, ...] = ()
    rto_minutes: int = Field(gt=0)
    rpo_minutes: int = Field(gt=0)
    backup: ServiceBackup
    probe: Probe | None = None


def _aware(value: Any) -> Any:
    """Times of a maintenance window carry their offset (2026-12-05T22:00:00-05:00)."""
    if isinstance(value, datetime) and value.tzinfo is None:
        raise ValueError("give the time with its UTC offset, e.g. 2026-12-05T22:00:00-05:00")
    if isinstance(value, str) and not re.search(r"(Z|[+-][0-9]{2}:?[0-9]{2})$", value):
        raise ValueError(f"{value!r}: give the time with its UTC offset (…T22:00:00-05:00)")
    return value


AwareTime = Annotated[datetime, BeforeValidator(_aware)]


class MaintenanceWindow(_Frozen):
    """Approved maintenance: the services' downtime inside it is not counted as unavailable."""

    start: AwareTime
    end: AwareTime
    services: tuple[Name, ...] = ()  # empty: every service
    reason: str = Field(min_length=1)
    change: str | None = None  # the change request that approved it

    @model_validator(mode="after")
    def _ordered(self) -> MaintenanceWindow:
        if self.end <= self.start:
            raise ValueError("a maintenance window must end after it starts")
        return self

    def covers(self, service: str) -> bool:
        return not self.services or service in self.services


class Monitoring(_Frozen):
    """The monitoring stack (Gestión del Servicio de la Infraestructura): Prometheus,
    blackbox_exporter and Alertmanager on `servers` (one per site, so the measurement survives
    the loss of a site; the first is read first), node_exporter on every host."""

    servers: tuple[Name, ...] = Field(min_length=1)
    scrape_interval_seconds: int = Field(default=15, ge=1, le=300)
    retention_days: int = Field(default=400, ge=1)
    timezone: str = "America/Bogota"
    targets: dict[int, float]
    """Availability target per service tier, in percent (e.g. {1: 99.5, 2: 99.0})."""
    maintenance_windows: tuple[MaintenanceWindow, ...] = ()

    @model_validator(mode="after")
    def _valid(self) -> Monitoring:
        if len(set(self.servers)) != len(self.servers):
            raise ValueError("servers: a host is listed twice")
        for tier, target in self.targets.items():
            if not 0 < target < 100:
                raise ValueError(f"targets: tier {tier}: {target} is not a percentage in (0, 100)")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone: unknown time zone {self.timezone!r}") from None
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


AbsolutePath = Annotated[str, StringConstraints(pattern=r"^/[^\s'\"]*[^/\s'\"]$")]
"""An absolute path without spaces or quotes and without a trailing slash."""


# --- log centralisation and review (gestic_logging) -----------------------------------------


class LogReview(_Frozen):
    """`gestic logs review`: its calendar, and when repeated failures single a source out.
    The automation accounts' routine logins (public key) and sudo are counted apart."""

    timezone: TimeZoneName = "America/Bogota"
    failure_threshold: int = Field(default=5, ge=1)
    automation_accounts: tuple[str, ...] = ("gestic",)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class Logging(_Frozen):
    """Log centralisation (Procedimiento Revisión de Logs): every host forwards over TLS to the
    `logs` host, which keeps `<remote_dir>/<host>/<facility>.log` for `retention_days`."""

    port: int = Field(default=6514, ge=1, le=65535)
    remote_dir: AbsolutePath = "/var/log/remote"
    retention_days: int = Field(default=365, ge=1)
    queue_max_disk: Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]*[kmg]?$")] = "1g"
    """Disk the forwarding queue may use while the log host is unreachable (rsyslog size)."""
    cert_days: int = Field(default=825, ge=1)
    review: LogReview = LogReview()


# --- vulnerability tests (gestic_vulnscan) --------------------------------------------------


class Vulnscan(_Frozen):
    """The lowest lynis hardening index a host may have (Procedimiento Pruebas de
    Vulnerabilidad): below it, the converge fails."""

    min_index: int = Field(ge=0, le=100, strict=True)


# --- backup repositories (gestic_backup_repositories, gestic_backup_maintenance) ------------

OnCalendar = Annotated[str, StringConstraints(pattern=r"^[^\n%]*\S$", min_length=1)]
"""A systemd OnCalendar expression (written into a timer unit)."""


class BackupRepository(_Frozen):
    """A restic repository reached over SFTP: `<root>/<service>` on `host`. The first is the
    primary; the next ones hold the copies (`restic copy`)."""

    name: Name
    host: Name
    root: AbsolutePath
    description: str = ""


class BackupMaintenance(_Frozen):
    """The host that applies the retention, makes the copies and checks the repositories."""

    host: Name
    schedule: OnCalendar
    check_schedule: OnCalendar
    check_read_data_subset: Annotated[
        str, StringConstraints(pattern=r"^([0-9]+(\.[0-9]+)?%|[0-9]+/[0-9]+|[0-9]+[KMGT]?)$")
    ]
    """What `restic check --read-data-subset` reads: a percentage, n/t or a size."""


class ImageSpec(_Frozen):
    suite: Literal["bookworm"] = "bookworm"
    extra_packages: tuple[str, ...] = ()


class Lab(_Frozen):
    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9]{1,6}$")]
    range: IPv4Network
    image: ImageSpec = ImageSpec()


# --- accounts (Gestión de Accesos y Retiro de Servicios) ------------------------------------

AccountName = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_-]{0,31}$")]
"""Local user and group names: lowercase letter or '_' first, then [a-z0-9_-], at most 32."""

KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
             "ssh-rsa")  # fmt: skip
"""SSH public key types accepted for people (ssh-rsa only from 3072 bits; never ssh-dss)."""
RSA_MIN_BITS = 3072


def _iso_date(value: Any) -> Any:
    """Dates are written YYYY-MM-DD (YAML reads them as dates, quoted they are strings)."""
    if isinstance(value, datetime):
        raise ValueError("expected a date (YYYY-MM-DD), not a date and time")
    if isinstance(value, date):
        return value
    if isinstance(value, str) and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        return value  # pydantic checks it is a real calendar date
    raise ValueError(f"expected a date written YYYY-MM-DD, got {value!r}")


IsoDate = Annotated[date, BeforeValidator(_iso_date)]


def _public_key(value: str) -> str:
    """An OpenSSH public key line: '<type> <base64> [comment]', of an accepted type and size."""
    if "PRIVATE KEY" in value:
        raise ValueError("this is a PRIVATE key: never put it in the inventory (use the .pub)")
    parts = value.split()
    if len(parts) < 2:
        raise ValueError("expected an OpenSSH public key: '<type> <base64> [comment]'")
    kind = parts[0]
    if kind not in KEY_TYPES:
        raise ValueError(f"key type {kind!r} is not accepted (accepted: {', '.join(KEY_TYPES)})")
    try:
        key = load_ssh_public_key(f"{kind} {parts[1]}".encode())
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"not a valid {kind} public key ({exc})") from None
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < RSA_MIN_BITS:
        raise ValueError(f"ssh-rsa key of {key.key_size} bits: at least {RSA_MIN_BITS} required")
    return " ".join(parts)


PublicKey = Annotated[str, AfterValidator(_public_key)]


def key_fingerprint(key: str) -> str:
    """The SHA256 fingerprint of a public key line, as `ssh-keygen -l` prints it."""
    blob = base64.b64decode(key.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


class AccessGroup(_Frozen):
    """A local group the access role manages; `sudo` groups get administrator rights."""

    name: AccountName
    description: str = Field(min_length=1)
    sudo: bool = False


class Account(_Frozen):
    """One person's access: where, with which groups and keys, until when, and by which ticket.

    `state: removed` (Retiro de Servicios) locks the account wherever it exists; it then needs
    only `removed_on`, `ticket` (the removal request) and `hosts`. `expires` is the first day
    the account no longer works (as `chage -E`).
    """

    username: AccountName
    name: str | None = Field(default=None, min_length=1)
    role: str | None = Field(default=None, min_length=1)
    uid: int | None = Field(default=None, ge=1000, le=59999)
    groups: tuple[AccountName, ...] = ()
    hosts: tuple[str, ...] = Field(min_length=1)
    keys: tuple[PublicKey, ...] = ()
    expires: IsoDate | None = None
    state: Literal["present", "removed"] = "present"
    removed_on: IsoDate | None = None
    ticket: str = Field(pattern=r"^\S(.*\S)?$")
    reason: str | None = None

    @model_validator(mode="after")
    def _fields_for_state(self) -> Account:
        if self.state == "present":
            missing = [f for f in ("name", "uid", "expires") if getattr(self, f) is None]
            missing += [] if self.keys else ["keys"]
            if missing:
                raise ValueError(f"a present account needs: {', '.join(missing)}")
            if self.removed_on is not None:
                raise ValueError("removed_on is only for accounts with state: removed")
        elif self.removed_on is None:
            raise ValueError("a removed account needs removed_on (the date access was removed)")
        return self

    @property
    def fingerprints(self) -> tuple[str, ...]:
        return tuple(key_fingerprint(k) for k in self.keys)

    def applies_to(self, host: Host) -> bool:
        """Whether the account's `hosts` (host names, groups or 'all') include `host`."""
        return any(e in {"all", host.name, *host.groups} for e in self.hosts)


class Model(_Frozen):
    """The whole environment: one inventory directory, validated."""

    environment: str
    sites: dict[str, Site]
    hosts: dict[str, Host]
    services: dict[str, Service]
    backup_policies: dict[str, BackupPolicy]
    lab: Lab | None = None
    connection: Connection | None = None
    monitoring: Monitoring | None = None
    logging: Logging = Logging()
    rpa: Rpa | None = None
    vulnscan: Vulnscan | None = None
    backup_repositories: tuple[BackupRepository, ...] = ()
    backup_maintenance: BackupMaintenance | None = None
    vault_files: tuple[str, ...] = ()
    """group_vars/all files encrypted with ansible-vault (the environment's secrets)."""
    accounts: dict[str, Account] = Field(default_factory=dict)
    access_groups: dict[str, AccessGroup] = Field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    """Problems that do not stop anything (e.g. an expired account), each with file and line."""

    def granted_on(self, host: str) -> list[Account]:
        """Present accounts whose `hosts` include `host`: the people with access there."""
        target = self.hosts[host]
        return [a for a in self.accounts.values() if a.state == "present" and a.applies_to(target)]

    def hosts_of(self, account: Account) -> list[str]:
        """The hosts an account's `hosts` entries cover (whatever its state)."""
        return sorted(h.name for h in self.hosts.values() if account.applies_to(h))

    def hosts_at(self, site: str) -> list[Host]:
        return [h for h in self.hosts.values() if h.site == site]

    def services_on(self, host: str) -> list[Service]:
        return [s for s in self.services.values() if host in s.hosts or host in s.dr_hosts]


S = TypeVar("S")


def required(
    model: Model, section: S | None, *, var: str, need: str, error: Callable[[str], Exception]
) -> S:
    """A section of `model` that a command cannot do without, or `error` naming its setting.

    (A section is optional in the model when an environment may go without it; a bad value in
    it is reported with the model's other problems, when the model is read.)
    """
    if section is None:
        raise error(
            f"environment '{model.environment}' declares no {var} in its group_vars/all: {need}"
        )
    return section
