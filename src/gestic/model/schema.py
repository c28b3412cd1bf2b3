"""The model's schema: what each site, host, service and policy must declare."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,14}$")]
"""Host, site and service names: lowercase, start with a letter, at most 15 characters."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


class ImageSpec(_Frozen):
    suite: Literal["bookworm"] = "bookworm"
    extra_packages: tuple[str, ...] = ()


class Lab(_Frozen):
    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9]{1,6}$")]
    range: IPv4Network
    image: ImageSpec = ImageSpec()


class Model(_Frozen):
    """The whole environment: one inventory directory, validated."""

    environment: str
    sites: dict[str, Site]
    hosts: dict[str, Host]
    services: dict[str, Service]
    backup_policies: dict[str, BackupPolicy]
    lab: Lab | None = None

    def hosts_at(self, site: str) -> list[Host]:
        return [h for h in self.hosts.values() if h.site == site]

    def services_on(self, host: str) -> list[Service]:
        return [s for s in self.services.values() if host in s.hosts or host in s.dr_hosts]
