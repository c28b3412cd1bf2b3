"""Lab runtime primitives: pure parts without root, plus one real end-to-end boot (marker `lab`)."""

from __future__ import annotations

import json
import os
import shutil
import string
import subprocess
import sys
import time
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from gestic.errors import LabError, NotRootError
from gestic.lab import host, image, names, network

# --- names --------------------------------------------------------------------------------


@pytest.mark.parametrize("lab", ["lab", "t8k2", "a", "abcdef", "123456"])
def test_valid_lab_names(lab: str) -> None:
    assert names.check_lab(lab) == lab


@pytest.mark.parametrize("lab", ["", "abcdefg", "Lab", "la-b", "la_b", "lab ", "é"])
def test_invalid_lab_names(lab: str) -> None:
    with pytest.raises(LabError, match="invalid lab name"):
        names.router_netns(lab)


@pytest.mark.parametrize("name", ["web-p1", "db-a1", "x", "abcdefghijklmno", "a-b-c"])
def test_valid_host_names(name: str) -> None:
    assert names.check_host(name) == name


@pytest.mark.parametrize("name", ["", "-web", "web-", "Web", "abcdefghijklmnop", "w_b", "w.b"])
def test_invalid_host_names(name: str) -> None:
    with pytest.raises(LabError, match="invalid host name"):
        names.host_netns("lab", name)


def test_interface_names_fit_and_are_unique_across_labs() -> None:
    labs = ["lab", "t8k2", "abcdef", "a", "ab"]
    hosts = ["web-p1", "db-p1", "web-a1", "db-a1", "abcdefghijklmno", "a", "b-c"]
    segments = ["primary", "dr", "abcdefghijklmno"]
    veths = [names.veth(lab, h) for lab in labs for h in hosts]
    bridges = [names.bridge(lab, s) for lab in labs for s in segments]
    for ifname in veths + bridges:
        assert len(ifname) <= names.IFNAME_MAX, ifname
    assert len(set(veths + bridges)) == len(veths) + len(bridges)
    netns = [names.host_netns(lab, h) for lab in labs for h in hosts]
    netns += [names.router_netns(lab) for lab in labs]
    assert len(set(netns)) == len(netns)


def test_names_are_stable() -> None:
    assert names.router_netns("lab") == "gestic-lab"
    assert names.host_netns("lab", "web-p1") == "gestic-lab-web-p1"
    assert names.netns_path("gestic-lab") == "/run/netns/gestic-lab"
    assert names.veth("lab", "web-p1") == names.veth("lab", "web-p1")
    assert names.veth("lab", "web-p1").startswith("gvlab-")
    assert names.bridge("t8k2", "primary").startswith("gbt8k2-")
    assert names.machine("lab", "db-a1") == "gestic-lab-db-a1"


def test_namespace_ownership_is_exact() -> None:
    assert names.belongs_to_lab("t", "gestic-t")
    assert names.belongs_to_lab("t", "gestic-t-web-p1")
    assert not names.belongs_to_lab("t", "gestic-t8k2")
    assert not names.belongs_to_lab("t", "gestic-t8k2-web-p1")
    assert not names.belongs_to_lab("lab", "gestic-labx")
    assert not names.belongs_to_lab("lab", "other-lab")


# --- image --------------------------------------------------------------------------------


def test_image_id_is_stable_and_order_insensitive() -> None:
    first = image.image_id("bookworm", image.IMAGE_PACKAGES)
    assert first == image.image_id("bookworm", tuple(reversed(image.IMAGE_PACKAGES)))
    assert len(first) == 12
    assert all(c in string.hexdigits for c in first)


def test_image_id_changes_with_packages_and_suite() -> None:
    base = image.image_id("bookworm", image.IMAGE_PACKAGES)
    assert base != image.image_id("bookworm", (*image.IMAGE_PACKAGES, "vim-tiny"))
    assert base != image.image_id("bookworm", image.IMAGE_PACKAGES[1:])
    assert base != image.image_id("trixie", image.IMAGE_PACKAGES)


def test_image_packages_cover_what_hosts_need() -> None:
    needed = {"systemd", "systemd-sysv", "dbus", "openssh-server", "python3", "python3-apt"}
    needed |= {"sudo", "iproute2", "iputils-ping", "procps", "rsyslog", "cron", "logrotate"}
    assert needed <= set(image.IMAGE_PACKAGES)


def test_cached_image_is_returned_without_building(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = image.image_dir(tmp_path, "bookworm", image.IMAGE_PACKAGES)
    (built / "rootfs").mkdir(parents=True)
    (built / image.MARKER).write_text(json.dumps({"recipe": image.RECIPE_VERSION}))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # a build would need root
    assert image.ensure_image(cache_dir=tmp_path) == built / "rootfs"


def test_building_needs_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(NotRootError):
        image.ensure_image(cache_dir=tmp_path)


def test_building_needs_debootstrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(shutil, "which", lambda *_a, **_k: None)
    with pytest.raises(LabError, match="install the Debian package debootstrap"):
        image.ensure_image(cache_dir=tmp_path)


def test_run_reports_stderr() -> None:
    with pytest.raises(LabError, match=r"doing a thing.*exited 3: boom"):
        image.run(
            [sys.executable, "-c", "import sys; sys.stderr.write('boom'); sys.exit(3)"],
            "doing a thing",
        )


def test_no_mounts_under_a_fresh_dir(tmp_path: Path) -> None:
    assert image.mounts_under(tmp_path) == []
    assert host.lab_mounts(tmp_path) == []


# --- host helpers -------------------------------------------------------------------------


def _spec(tmp_path: Path) -> host.HostSpec:
    return host.HostSpec(
        lab="t8k2",
        name="web-p1",
        image_rootfs=tmp_path / "rootfs",
        state_dir=tmp_path / "state",
        netns_path="/run/netns/gestic-t8k2-web-p1",
        address=IPv4Address("10.213.1.11"),
        authorized_keys="ssh-ed25519 AAAA test",
        etc_hosts={"web-p1": "10.213.1.11", "db-p1": "10.213.1.12"},
    )


def test_nspawn_command_boots_without_system_bus(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    cmd = host.nspawn_command(spec)
    assert cmd[0] == "systemd-nspawn"
    for flag in ("--boot", "--register=no", "--keep-unit", "--console=read-only"):
        assert flag in cmd
    assert f"--directory={spec.host_dir / 'root'}" in cmd
    assert "--network-namespace-path=/run/netns/gestic-t8k2-web-p1" in cmd
    assert "--machine=gestic-t8k2-web-p1" in cmd
    assert cmd == host.nspawn_command(spec)  # stable UUID, stable command


def test_cmdline_validation_rejects_other_processes(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    merged = spec.host_dir / "root"
    ours = "\0".join(host.nspawn_command(spec, "/usr/bin/systemd-nspawn")).encode() + b"\0"
    assert host.is_nspawn_cmdline(ours, merged)
    # the launcher before its exec, another host's nspawn, a recycled PID, a zombie
    launcher = b"\0".join([b"/usr/bin/python3", b"-c", b"...", b"--", ours])
    assert not host.is_nspawn_cmdline(launcher, merged)
    assert not host.is_nspawn_cmdline(ours, merged.parent / "root2")
    assert not host.is_nspawn_cmdline(ours.replace(b"web-p1/root", b"db-p1/root"), merged)
    assert not host.is_nspawn_cmdline(b"/usr/sbin/sshd\0-D\0", merged)
    assert not host.is_nspawn_cmdline(b"", merged)


def test_hosts_file_names_every_lab_host() -> None:
    text = host.hosts_file("web-p1", {"web-p1": "10.213.1.11", "db-p1": "10.213.1.12"})
    lines = text.splitlines()
    assert lines[0] == "127.0.0.1\tlocalhost"
    assert not any(line.startswith("127.0.1.1") for line in lines)
    assert "10.213.1.12\tdb-p1" in lines
    assert "10.213.1.11\tweb-p1" in lines
    # a host the lab does not list still resolves its own name
    assert "127.0.1.1\tsolo" in host.hosts_file("solo", {}).splitlines()


def test_host_pid_is_none_without_pidfile_or_for_a_foreign_pid(tmp_path: Path) -> None:
    assert host.host_pid(state_dir=tmp_path, name="web-p1") is None
    hdir = host.host_dir(tmp_path, "web-p1")
    hdir.mkdir(parents=True)
    (hdir / host.PIDFILE).write_text(f"{os.getpid()}\n")  # alive, but not an nspawn
    assert host.host_pid(state_dir=tmp_path, name="web-p1") is None


def test_process_tree_and_memory_of_a_real_process() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        deadline = time.monotonic() + 10
        while child.pid not in host.process_tree(os.getpid()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert child.pid in host.process_tree(os.getpid())
        assert host.host_memory_bytes(child.pid) > 0
    finally:
        child.kill()
        child.wait()
    assert host.host_memory_bytes(child.pid) == 0


def test_tcp_reachable_is_false_without_the_lab() -> None:
    assert not network.tcp_reachable("zz9x", IPv4Address("10.213.1.1"), 22, 0.2)
