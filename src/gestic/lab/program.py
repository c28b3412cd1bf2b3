"""The `lab` stack's Pulumi program: the model's sites and hosts as a real datacenter here."""

from __future__ import annotations

from pathlib import Path

import pulumi

from gestic.lab.components import LabDatacenter, LabSettings
from gestic.lab.image import IMAGE_PACKAGES
from gestic.model import Model


def settings_for(
    model: Model, *, state_dir: Path, cache_dir: Path, lab: str | None = None
) -> LabSettings:
    """The lab settings for `model`: lab name (overridable, e.g. by tests), dirs and packages."""
    if model.lab is None:
        raise ValueError(f"the '{model.environment}' inventory declares no gestic_lab")
    name = lab or model.lab.name
    return LabSettings(
        lab=name,
        state_dir=state_dir / "lab" / name,
        cache_dir=cache_dir,
        suite=model.lab.image.suite,
        packages=tuple(dict.fromkeys((*IMAGE_PACKAGES, *model.lab.image.extra_packages))),
    )


def lab_program(model: Model, settings: LabSettings) -> None:
    """Declare the lab datacenter and export each host's address, site and state."""
    dc = LabDatacenter(model, settings)
    pulumi.export("lab", settings.lab)
    pulumi.export(
        "hosts",
        {
            name: {
                "site": model.hosts[name].site,
                "address": host.address,
                "running": host.machine.running,  # type: ignore[attr-defined]
                "pid": host.machine.pid,  # type: ignore[attr-defined]
            }
            for name, host in dc.hosts.items()
        },
    )
