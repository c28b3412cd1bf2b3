"""The production stack's Pulumi program: the model's sites on their platforms.

Each model site runs on the platform its stack config names (`sites.<site>.platform`): vSphere
for the primary datacenter, AWS or a second vSphere for the DR site. Every model host becomes
one VM of its site with the model's size, address and labels (owner, backup policy, tier,
services, site and site role).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi

from gestic.errors import ProductionPlanError
from gestic.model import Model
from gestic.production.components import AwsSite, AwsSiteArgs, VsphereSite, VsphereSiteArgs
from gestic.production.config import ProductionConfig
from gestic.production.plan import plan


class ProductionDatacenter(pulumi.ComponentResource):
    """Every site of the model on its platform."""

    def __init__(
        self,
        model: Model,
        config: ProductionConfig,
        *,
        credentials: pulumi.Input[Mapping[str, Any]] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("gestic:production:Datacenter", model.environment, None, opts)
        missing = sorted(set(model.sites) - set(config.sites))
        extra = sorted(set(config.sites) - set(model.sites))
        if missing or extra:
            raise ProductionPlanError(
                "the stack config's sites must be the model's sites: "
                + "; ".join(
                    part
                    for part in (
                        f"missing {missing}" if missing else "",
                        f"unknown {extra}" if extra else "",
                    )
                    if part
                )
            )
        specs = plan(
            model,
            unserviced_backup_policy=config.unserviced_backup_policy,
            backup_exclusions=config.backup_exclusions,
        )
        child = pulumi.ResourceOptions(parent=self)
        networks = [str(s.network) for s in model.sites.values()]
        self.sites: dict[str, VsphereSite | AwsSite] = {}
        for site in model.sites.values():
            site_cfg = config.sites[site.name]
            vms = [specs[h.name] for h in model.hosts_at(site.name)]
            if site_cfg.vsphere is not None:
                site_credentials = (
                    _credentials_of(credentials, site.name) if credentials is not None else None
                )
                self.sites[site.name] = VsphereSite(
                    VsphereSiteArgs(
                        site=site,
                        settings=site_cfg.vsphere,
                        vms=vms,
                        credentials=site_credentials,
                    ),
                    opts=child,
                )
            elif site_cfg.aws is not None:
                if not site.network.subnet_of(site_cfg.aws.vpc_cidr):
                    raise ProductionPlanError(
                        f"site '{site.name}': network {site.network} is not inside "
                        f"sites.{site.name}.aws.vpcCidr {site_cfg.aws.vpc_cidr}"
                    )
                self.sites[site.name] = AwsSite(
                    AwsSiteArgs(
                        site=site,
                        settings=site_cfg.aws,
                        vms=vms,
                        management_cidrs=[str(c) for c in config.management_cidrs],
                        peer_networks=networks,
                        backup_policies=model.backup_policies,
                        environment=model.environment,
                    ),
                    opts=child,
                )
        self.specs = specs
        self.register_outputs({"sites": sorted(self.sites)})


def _credentials_of(
    credentials: pulumi.Input[Mapping[str, Any]], site: str
) -> pulumi.Output[Mapping[str, str]]:
    """One site's vCenter account out of the secret `credentials` object."""

    def pick(all_sites: Mapping[str, Any]) -> Mapping[str, str]:
        entry = all_sites.get(site)
        if not isinstance(entry, Mapping) or not {"user", "password"} <= set(entry):
            raise ProductionPlanError(
                f"secret config 'credentials.{site}' needs 'user' and 'password'"
            )
        return {"user": str(entry["user"]), "password": str(entry["password"])}

    return pulumi.Output.from_input(credentials).apply(pick)


def production_program(
    model: Model,
    config: ProductionConfig,
    *,
    credentials: pulumi.Input[Mapping[str, Any]] | None = None,
) -> ProductionDatacenter:
    """Declare the production datacenter and export each VM's site, size and labels."""
    dc = ProductionDatacenter(model, config, credentials=credentials)
    pulumi.export(
        "vms",
        {
            name: {
                "site": spec.site,
                "platform": config.sites[spec.site].platform,
                "cpus": spec.cpus,
                "memory_mb": spec.memory_mb,
                "disk_gb": spec.disk_gb,
                "labels": {k: list(v) for k, v in spec.labels.items()},
            }
            for name, spec in dc.specs.items()
        },
    )
    return dc
