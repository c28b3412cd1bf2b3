"""Pulumi dynamic providers for the lab: each resource is a real Linux object on this machine.

Every provider implements create/read/diff/update/delete. `read` reports what really exists
(so `pulumi refresh` notices a host stopped by hand through `running: false`), `diff` turns a
missing object into an update that recreates it, and every operation is idempotent so a run
interrupted halfway is repaired by the next one.
"""

from __future__ import annotations

import subprocess
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path
from typing import Any

from pulumi.dynamic import (
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from gestic.errors import LabError
from gestic.lab import host as lab_host
from gestic.lab import image as lab_image
from gestic.lab import network as lab_network
from gestic.lab.access import LabAccess

Props = dict[str, Any]
LOGIN_TIMEOUT_S = 90.0


def _changed(olds: Props, news: Props, keys: tuple[str, ...]) -> list[str]:
    return [k for k in keys if olds.get(k) != news.get(k)]


def _diff(
    olds: Props, news: Props, *, replace: tuple[str, ...], update: tuple[str, ...]
) -> DiffResult:
    """Replace on identity inputs; update on the others or when the object is gone."""
    replaces = _changed(olds, news, replace)
    updates = _changed(olds, news, update)
    gone = olds.get("present") is False or olds.get("running") is False
    return DiffResult(
        changes=bool(replaces or updates or gone),
        replaces=replaces,
        delete_before_replace=True,
    )


class HostImageProvider(ResourceProvider):
    """The debootstrap host image, a cache shared by every lab: delete keeps it on disk."""

    def _build(self, props: Props) -> Props:
        rootfs = lab_image.ensure_image(
            cache_dir=Path(props["cache_dir"]),
            suite=props["suite"],
            packages=tuple(props["packages"]),
        )
        return {**props, "rootfs": str(rootfs), "present": True}

    def create(self, props: Props) -> CreateResult:
        image_id = lab_image.image_id(props["suite"], props["packages"])
        return CreateResult(id_=image_id, outs=self._build(props))

    def read(self, id_: str, props: Props) -> ReadResult:
        rootfs = str(props.get("rootfs") or "")
        present = bool(rootfs) and (Path(rootfs).parent / lab_image.MARKER).is_file()
        return ReadResult(id_=id_, outs={**props, "present": present})

    def diff(self, _id: str, olds: Props, news: Props) -> DiffResult:
        return _diff(olds, news, replace=("suite", "packages", "cache_dir"), update=())

    def update(self, _id: str, _olds: Props, news: Props) -> UpdateResult:
        return UpdateResult(outs=self._build(news))

    def delete(self, _id: str, _props: Props) -> None:
        return None


class KeyPairProvider(ResourceProvider):
    """The lab's SSH key pair; the private key stays in the lab state dir, never in Pulumi state."""

    def _ensure(self, props: Props) -> Props:
        key = Path(props["path"])
        key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not key.is_file():
            subprocess.run(
                [
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    props["comment"],
                    "-f",
                    str(key),
                ],
                check=True,
            )
        public = Path(f"{key}.pub").read_text().strip()
        return {**props, "public_key": public, "present": True}

    def create(self, props: Props) -> CreateResult:
        return CreateResult(id_=props["path"], outs=self._ensure(props))

    def read(self, id_: str, props: Props) -> ReadResult:
        present = Path(props["path"]).is_file() and Path(f"{props['path']}.pub").is_file()
        return ReadResult(id_=id_, outs={**props, "present": present})

    def diff(self, _id: str, olds: Props, news: Props) -> DiffResult:
        return _diff(olds, news, replace=("path",), update=("comment",))

    def update(self, _id: str, _olds: Props, news: Props) -> UpdateResult:
        return UpdateResult(outs=self._ensure(news))

    def delete(self, _id: str, props: Props) -> None:
        for suffix in ("", ".pub"):
            Path(f"{props['path']}{suffix}").unlink(missing_ok=True)


class RouterProvider(ResourceProvider):
    """The lab's router namespace, which holds one bridge per site and forwards between them."""

    def create(self, props: Props) -> CreateResult:
        lab_network.ensure_router(props["lab"])
        return CreateResult(id_=props["lab"], outs={**props, "present": True})

    def read(self, id_: str, props: Props) -> ReadResult:
        present = bool(lab_network.lab_namespaces(props["lab"]))
        return ReadResult(id_=id_, outs={**props, "present": present})

    def diff(self, _id: str, olds: Props, news: Props) -> DiffResult:
        return _diff(olds, news, replace=("lab",), update=())

    def update(self, _id: str, _olds: Props, news: Props) -> UpdateResult:
        lab_network.ensure_router(news["lab"])
        return UpdateResult(outs={**news, "present": True})

    def delete(self, _id: str, props: Props) -> None:
        lab_network.remove_router(props["lab"])


class SegmentProvider(ResourceProvider):
    """A site's network: a bridge in the router namespace carrying the site's gateway address."""

    def _ensure(self, props: Props) -> Props:
        lab_network.ensure_segment(
            props["lab"], props["segment"], gateway=IPv4Interface(props["gateway"])
        )
        return {**props, "present": True}

    def create(self, props: Props) -> CreateResult:
        return CreateResult(id_=f"{props['lab']}/{props['segment']}", outs=self._ensure(props))

    def read(self, id_: str, props: Props) -> ReadResult:
        present = lab_network.segment_exists(props["lab"], props["segment"])
        return ReadResult(id_=id_, outs={**props, "present": present})

    def diff(self, _id: str, olds: Props, news: Props) -> DiffResult:
        return _diff(olds, news, replace=("lab", "segment"), update=("gateway", "router"))

    def update(self, _id: str, _olds: Props, news: Props) -> UpdateResult:
        return UpdateResult(outs=self._ensure(news))

    def delete(self, _id: str, props: Props) -> None:
        lab_network.remove_segment(props["lab"], props["segment"])


def _host_spec(props: Props, netns_path: str) -> lab_host.HostSpec:
    return lab_host.HostSpec(
        lab=props["lab"],
        name=props["name"],
        image_rootfs=Path(props["image_rootfs"]),
        state_dir=Path(props["state_dir"]),
        netns_path=netns_path,
        address=IPv4Interface(props["address"]).ip,
        authorized_keys=props["authorized_keys"],
        etc_hosts=dict(props["etc_hosts"]),
    )


class HostProvider(ResourceProvider):
    """A lab host: a network namespace on its site's bridge and systemd-nspawn booting systemd."""

    def _ensure(self, props: Props) -> Props:
        netns_path = lab_network.attach_host(
            props["lab"],
            props["name"],
            props["segment"],
            address=IPv4Interface(props["address"]),
            gateway=IPv4Address(props["gateway"]),
        )
        spec = _host_spec(props, netns_path)
        pid = lab_host.start_host(spec)
        lab_host.write_identity(spec)
        # port 22 answering is not enough: wait until the automation account can log in
        access = LabAccess(lab=props["lab"], state_dir=Path(props["state_dir"]))
        refused = access.wait_for_login({spec.name: spec.address}, timeout=LOGIN_TIMEOUT_S)
        if refused:
            raise LabError(
                f"host {spec.name}: sshd answers but the automation account cannot log in "
                f"within {LOGIN_TIMEOUT_S:.0f} s: {refused[spec.name]}"
            )
        return {**props, "netns_path": netns_path, "pid": pid, "running": True}

    def create(self, props: Props) -> CreateResult:
        # a new host generates new SSH host keys: forget the old ones of that name
        LabAccess(lab=props["lab"], state_dir=Path(props["state_dir"])).forget_host(props["name"])
        try:
            outs = self._ensure(props)
        except LabError:
            # leave nothing half-made: the next run recreates the host from scratch
            self.delete("", props)
            raise
        return CreateResult(id_=f"{props['lab']}/{props['name']}", outs=outs)

    def read(self, id_: str, props: Props) -> ReadResult:
        pid = lab_host.host_pid(state_dir=Path(props["state_dir"]), name=props["name"])
        return ReadResult(id_=id_, outs={**props, "pid": pid or 0, "running": pid is not None})

    def diff(self, _id: str, olds: Props, news: Props) -> DiffResult:
        return _diff(
            olds,
            news,
            replace=("lab", "name", "segment", "address", "gateway", "image_rootfs", "state_dir"),
            update=("etc_hosts", "authorized_keys"),
        )

    def update(self, _id: str, _olds: Props, news: Props) -> UpdateResult:
        return UpdateResult(outs=self._ensure(news))

    def delete(self, _id: str, props: Props) -> None:
        state_dir = Path(props["state_dir"])
        lab_host.stop_host(state_dir=state_dir, name=props["name"])
        lab_network.detach_host(props["lab"], props["name"])
        lab_host.remove_host_dir(state_dir=state_dir, name=props["name"])
