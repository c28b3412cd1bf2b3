"""Pulumi components of the lab datacenter: one network per site and one host per model host."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pulumi
from pulumi.dynamic import Resource, ResourceProvider

from gestic.lab import providers
from gestic.model import Host, Model, Site


@dataclass(frozen=True, kw_only=True)
class LabSettings:
    """Where and under which name the lab runs (the model says what it holds)."""

    lab: str
    state_dir: Path
    cache_dir: Path
    packages: tuple[str, ...]
    suite: str = "bookworm"


class _Dynamic(Resource):
    """A dynamic resource whose outputs are read by attribute (e.g. `.rootfs`, `.public_key`)."""

    def __init__(
        self,
        provider: ResourceProvider,
        name: str,
        props: dict[str, object],
        outputs: tuple[str, ...],
        opts: pulumi.ResourceOptions,
    ) -> None:
        super().__init__(provider, name, {**props, **dict.fromkeys(outputs)}, opts)


class SiteNetwork(pulumi.ComponentResource):
    """A site's segment: a bridge in the lab router namespace with the site gateway address."""

    def __init__(
        self, site: Site, *, lab: str, router: pulumi.Resource, opts: pulumi.ResourceOptions
    ) -> None:
        super().__init__("gestic:lab:SiteNetwork", site.name, None, opts)
        self.segment = _Dynamic(
            providers.SegmentProvider(),
            f"{site.name}-segment",
            {"lab": lab, "segment": site.name, "gateway": str(site.gateway), "router": router.urn},
            ("present",),
            pulumi.ResourceOptions(parent=self, depends_on=[router]),
        )
        self.register_outputs({"network": str(site.network), "gateway": str(site.gateway)})


@dataclass(frozen=True, kw_only=True)
class LabHostArgs:
    host: Host
    site: Site
    settings: LabSettings
    image_rootfs: pulumi.Input[str]
    authorized_keys: pulumi.Input[str]
    etc_hosts: dict[str, str] = field(default_factory=dict)


class LabHost(pulumi.ComponentResource):
    """A model host as a real Linux host: own network namespace and systemd, reachable by SSH."""

    def __init__(
        self, args: LabHostArgs, *, network: SiteNetwork, opts: pulumi.ResourceOptions
    ) -> None:
        super().__init__("gestic:lab:LabHost", args.host.name, None, opts)
        s = args.settings
        self.machine = _Dynamic(
            providers.HostProvider(),
            f"{args.host.name}-machine",
            {
                "lab": s.lab,
                "name": args.host.name,
                "segment": args.site.name,
                "address": f"{args.host.address}/{args.site.network.prefixlen}",
                "gateway": str(args.site.gateway.ip),
                "image_rootfs": args.image_rootfs,
                "state_dir": str(s.state_dir),
                "authorized_keys": args.authorized_keys,
                "etc_hosts": args.etc_hosts,
            },
            ("pid", "running", "netns_path"),
            pulumi.ResourceOptions(parent=self, depends_on=[network.segment]),
        )
        self.address = str(args.host.address)
        self.register_outputs({"address": self.address, "running": self.machine.running})  # type: ignore[attr-defined]


class LabDatacenter(pulumi.ComponentResource):
    """The whole lab: image, key pair, router, one network per site and every host."""

    def __init__(
        self, model: Model, settings: LabSettings, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("gestic:lab:Datacenter", settings.lab, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        image = _Dynamic(
            providers.HostImageProvider(),
            "host-image",
            {
                "suite": settings.suite,
                "packages": list(settings.packages),
                "cache_dir": str(settings.cache_dir),
            },
            ("rootfs", "present"),
            child,
        )
        key = _Dynamic(
            providers.KeyPairProvider(),
            "ssh-key",
            {
                "path": str(settings.state_dir / "id_ed25519"),
                "comment": f"gestic-lab-{settings.lab}",
            },
            ("public_key", "present"),
            child,
        )
        router = _Dynamic(
            providers.RouterProvider(), "router", {"lab": settings.lab}, ("present",), child
        )
        self.networks = {
            site.name: SiteNetwork(site, lab=settings.lab, router=router, opts=child)
            for site in model.sites.values()
        }
        etc_hosts = {h.name: str(h.address) for h in model.hosts.values()}
        self.hosts = {
            host.name: LabHost(
                LabHostArgs(
                    host=host,
                    site=model.sites[host.site],
                    settings=settings,
                    image_rootfs=image.rootfs,  # type: ignore[attr-defined]
                    authorized_keys=key.public_key,  # type: ignore[attr-defined]
                    etc_hosts=etc_hosts,
                ),
                network=self.networks[host.site],
                opts=child,
            )
            for host in model.hosts.values()
        }
        self.register_outputs({"hosts": {n: h.address for n, h in self.hosts.items()}})
