"""The lab stack under Pulumi mocks: what the program declares for the model (no engine needed).

Under mocks a dynamic resource arrives as `pulumi-python:dynamic:Resource` and its provider
does not run; provider logic is exercised by the lab integration test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pytest

from gestic.model import Model, load_model

from ...paths import LAB_INVENTORY


class Recorder(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: dict[str, dict[str, Any]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources[args.name] = {"type": args.typ, "inputs": dict(args.inputs)}
        outputs = dict(args.inputs)
        if args.name == "host-image":
            outputs["rootfs"] = "/cache/images/x/rootfs"
        if args.name == "ssh-key":
            outputs["public_key"] = "ssh-ed25519 AAAA test"
        return f"{args.name}-id", outputs

    def call(
        self, args: pulumi.runtime.MockCallArgs
    ) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


@pytest.fixture(scope="module")
def model() -> Model:
    return load_model(LAB_INVENTORY, routes=[])


@pytest.fixture(scope="module")
def declared(model: Model) -> dict[str, dict[str, Any]]:
    mocks = Recorder()
    pulumi.runtime.set_mocks(mocks, preview=False)
    from gestic.lab.program import lab_program, settings_for  # noqa: PLC0415 (after set_mocks)

    settings = settings_for(model, state_dir=Path("/state"), cache_dir=Path("/cache"), lab="t1")

    @pulumi.runtime.test  # type: ignore[misc]
    def run() -> None:
        lab_program(model, settings)

    run()
    return mocks.resources


def test_every_host_is_a_machine_on_its_site(
    model: Model, declared: dict[str, dict[str, Any]]
) -> None:
    for host in model.hosts.values():
        machine = declared[f"{host.name}-machine"]
        assert machine["type"] == "pulumi-python:dynamic:Resource"
        inputs = machine["inputs"]
        site = model.sites[host.site]
        assert inputs["segment"] == site.name
        assert inputs["address"] == f"{host.address}/{site.network.prefixlen}"
        assert inputs["gateway"] == str(site.gateway.ip)
        assert inputs["lab"] == "t1"
        assert inputs["state_dir"] == "/state/lab/t1"
        assert inputs["image_rootfs"] == "/cache/images/x/rootfs"
        assert inputs["authorized_keys"] == "ssh-ed25519 AAAA test"
        assert inputs["etc_hosts"] == {h.name: str(h.address) for h in model.hosts.values()}


def test_one_segment_per_site_with_gateway(
    model: Model, declared: dict[str, dict[str, Any]]
) -> None:
    segments = {n: r for n, r in declared.items() if n.endswith("-segment")}
    assert set(segments) == {f"{s}-segment" for s in model.sites}
    for site in model.sites.values():
        assert segments[f"{site.name}-segment"]["inputs"]["gateway"] == str(site.gateway)


def test_components_group_the_datacenter(model: Model, declared: dict[str, dict[str, Any]]) -> None:
    assert declared["t1"]["type"] == "gestic:lab:Datacenter"
    assert {n for n, r in declared.items() if r["type"] == "gestic:lab:LabHost"} == set(model.hosts)
    assert {n for n, r in declared.items() if r["type"] == "gestic:lab:SiteNetwork"} == set(
        model.sites
    )


def test_image_carries_model_packages(declared: dict[str, dict[str, Any]]) -> None:
    inputs = declared["host-image"]["inputs"]
    assert "openssh-server" in inputs["packages"]
    assert "python3-apt" in inputs["packages"]
    assert inputs["cache_dir"] == "/cache"
    assert declared["ssh-key"]["inputs"]["path"] == "/state/lab/t1/id_ed25519"
