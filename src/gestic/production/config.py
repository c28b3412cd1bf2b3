"""The production stack's configuration: which platform each site runs on and where.

Non-secret settings live in `stacks/production/Pulumi.<stack>.yaml` under the `gestic-production:`
namespace. Credentials never do: the vSphere provider reads VSPHERE_USER / VSPHERE_PASSWORD, the
AWS provider its usual environment (or the CI's OIDC role); a per-site vSphere account can also
be kept as a Pulumi secret (`pulumi config set --secret --path credentials.<site>.password`).
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Annotated, Any, Literal

import pulumi
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from gestic.errors import ConfigError, YamlSourceError
from gestic.model.yamlsrc import Key, SourceMap, load_yaml

NAMESPACE = "gestic-production"
PROJECT = "gestic-production"

Text = Annotated[str, StringConstraints(min_length=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class VsphereSite(_Strict):
    """Where a site's VMs go in its vCenter (names of existing objects)."""

    server: Text
    datacenter: Text
    cluster: Text
    datastore: Text
    distributed_switch: Text = Field(alias="distributedSwitch")
    vlan_id: int = Field(alias="vlanId", ge=1, le=4094)
    template: Text
    folder: Text
    domain: Text
    dns_servers: tuple[IPv4Address, ...] = Field(alias="dnsServers", min_length=1)
    encryption_policy: Text = Field(alias="encryptionPolicy")
    allow_unverified_ssl: bool = Field(default=False, alias="allowUnverifiedSsl")


class AwsSite(_Strict):
    """A site in an AWS region: one VPC holding the site network as a subnet."""

    region: Text
    availability_zone: Text = Field(alias="availabilityZone")
    ami: Annotated[str, StringConstraints(pattern=r"^ami-[0-9a-f]{8,17}$")]
    vpc_cidr: IPv4Network = Field(alias="vpcCidr")
    volume_type: Literal["gp3", "io2"] = Field(default="gp3", alias="volumeType")


class SiteConfig(_Strict):
    platform: Literal["vsphere", "aws"]
    vsphere: VsphereSite | None = None
    aws: AwsSite | None = None


class ProductionConfig(_Strict):
    """Everything the production program needs besides the model."""

    sites: dict[str, SiteConfig]
    management_cidrs: tuple[IPv4Network, ...] = Field(alias="managementCidrs", min_length=1)
    unserviced_backup_policy: str | None = Field(default=None, alias="unservicedBackupPolicy")
    backup_exclusions: frozenset[str] = Field(default=frozenset(), alias="backupExclusions")


def _problems(exc: ValidationError, where: Any, prefix: Key) -> list[str]:
    found = []
    for err in exc.errors():
        key = (*prefix, *err["loc"])
        dotted = ".".join(str(k) for k in key)
        found.append(f"{where(key)}{NAMESPACE}:{dotted}: {err['msg']}")
    return found


def _cross_check(cfg: ProductionConfig, where: Any) -> list[str]:
    problems = []
    for name, site in cfg.sites.items():
        wanted = site.platform
        given = getattr(site, wanted)
        if given is None:
            key: Key = ("sites", name)
            problems.append(
                f"{where(key)}{NAMESPACE}:sites.{name}: platform is '{wanted}' "
                f"but there is no '{wanted}' section"
            )
        for other in {"vsphere", "aws"} - {wanted}:
            if getattr(site, other) is not None:
                key = ("sites", name, other)
                problems.append(
                    f"{where(key)}{NAMESPACE}:sites.{name}.{other}: "
                    f"section for a platform the site does not use ('{wanted}')"
                )
    return problems


def parse_config(values: dict[str, Any], *, smap: SourceMap | None = None) -> ProductionConfig:
    """Validate the `gestic-production:*` values (namespace already stripped)."""

    def where(key: Key) -> str:
        origin = smap.locate(("config", *key)) if smap is not None else None
        return f"{origin}: " if origin is not None else ""

    try:
        cfg = ProductionConfig.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(_problems(exc, where, ())) from exc
    if problems := _cross_check(cfg, where):
        raise ConfigError(problems)
    return cfg


def load_stack_file(path: Path) -> ProductionConfig:
    """Read `Pulumi.<stack>.yaml` (the non-secret config) with file and line in every error."""
    smap = SourceMap()
    try:
        data = load_yaml(path, smap=smap)
    except YamlSourceError as exc:
        raise ConfigError([str(exc)]) from exc
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
        raise ConfigError([f"{path}:1: expected a mapping with a 'config' key"])
    values: dict[str, Any] = {}
    for key, value in data["config"].items():
        namespace, _, name = str(key).partition(":")
        if namespace != NAMESPACE:
            continue  # provider settings (e.g. aws:region) are not ours
        values[name] = value
        # the source map keys the namespaced name; index it also by the bare name
        for origin_key, origin in list(smap.origins.items()):
            if origin_key[:2] == ("config", key):
                smap.origins[("config", name, *origin_key[2:])] = origin
    return parse_config(values, smap=smap)


def from_pulumi(config: pulumi.Config) -> ProductionConfig:
    """Read the stack's config through the engine (the program does this once, at the top)."""
    values: dict[str, Any] = {}
    for name in ("sites", "managementCidrs", "backupExclusions"):
        if (obj := config.get_object(name)) is not None:
            values[name] = obj
    if (policy := config.get("unservicedBackupPolicy")) is not None:
        values["unservicedBackupPolicy"] = policy
    return parse_config(values)
