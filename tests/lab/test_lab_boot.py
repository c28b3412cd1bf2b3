"""Two lab hosts booted from the lab's image by hand (no stack): network, ssh, teardown."""

from __future__ import annotations

import random
import string
import subprocess
import time
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

import pytest

from gestic.lab import host, image, names, network
from gestic.lab.program import settings_for
from gestic.model import load_model
from gestic.paths import cache_dir

from .labkit import ROOT

SEGMENT = "primary"
GATEWAY = IPv4Interface("10.213.1.1/24")
HOSTS = {"web-p1": IPv4Address("10.213.1.11"), "db-p1": IPv4Address("10.213.1.12")}


@pytest.fixture
def lab_name() -> str:
    return "t" + "".join(random.choices(string.ascii_lowercase + string.digits, k=3))


def _container_init(nspawn_pid: int) -> int:
    children = Path(f"/proc/{nspawn_pid}/task/{nspawn_pid}/children").read_text().split()
    return int(children[0])


def _lab_processes(lab: str) -> list[int]:
    marker = f"--machine={names.router_netns(lab)}-".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _ssh(lab: str, key: Path, address: IPv4Address, command: str) -> str:
    done = subprocess.run(
        ["ip", "netns", "exec", names.router_netns(lab), "ssh", "-i", str(key),
         "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
         f"{image.AUTOMATION_USER}@{address}", command],
        check=True, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    return done.stdout.strip()


@pytest.fixture
def ssh_key(tmp_path: Path) -> Path:
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


def _teardown(lab: str, state: Path) -> None:
    for name in HOSTS:
        host.stop_host(state_dir=state, name=name)
        network.detach_host(lab, name)
        host.remove_host_dir(state_dir=state, name=name)
    network.remove_segment(lab, SEGMENT)
    network.remove_router(lab)


def test_lab_boots_two_hosts_end_to_end(lab_name: str, tmp_path: Path, ssh_key: Path) -> None:
    lab, state = lab_name, tmp_path / "state"
    started = time.monotonic()
    # the lab model's image: the one the session lab uses (built once per machine, cached)
    lab_image = settings_for(
        load_model(ROOT / "inventory" / "lab"), state_dir=tmp_path, cache_dir=cache_dir()
    )
    rootfs = image.ensure_image(
        cache_dir=cache_dir(), suite=lab_image.suite, packages=lab_image.packages, progress=print
    )
    print(f"image ready in {time.monotonic() - started:.1f} s: {rootfs}")
    try:
        network.ensure_router(lab)
        network.ensure_segment(lab, SEGMENT, gateway=GATEWAY)
        network.ensure_segment(lab, SEGMENT, gateway=GATEWAY)  # idempotent
        assert network.segment_exists(lab, SEGMENT)
        pids = {}
        for name, address in HOSTS.items():
            netns = network.attach_host(
                lab, name, SEGMENT, address=IPv4Interface(f"{address}/24"), gateway=GATEWAY.ip
            )
            spec = host.HostSpec(
                lab=lab,
                name=name,
                image_rootfs=rootfs,
                state_dir=state,
                netns_path=netns,
                address=address,
                authorized_keys=ssh_key.with_suffix(".pub").read_text(),
                etc_hosts={h: str(a) for h, a in HOSTS.items()},
            )
            booting = time.monotonic()
            pids[name] = host.start_host(spec)
            print(f"{name}: ssh answers {time.monotonic() - booting:.2f} s after start")
            assert host.start_host(spec) == pids[name]  # idempotent
            assert host.host_pid(state_dir=state, name=name) == pids[name]

        for name, address in HOSTS.items():
            assert network.tcp_reachable(lab, address, 22, 2.0)
            assert _ssh(lab, ssh_key, address, "hostname") == name
            print(f"{name}: {host.host_memory_bytes(pids[name]) / 2**20:.1f} MiB (PSS)")
        assert set(network.lab_namespaces(lab)) == {
            names.router_netns(lab),
            *(names.host_netns(lab, h) for h in HOSTS),
        }

        # host A pings host B, from inside A (its own namespaces and its own ping)
        web_init = _container_init(pids["web-p1"])
        subprocess.run(
            ["nsenter", f"--target={web_init}", "--mount", "--net",
             "ping", "-c1", "-W2", str(HOSTS["db-p1"])],
            check=True, capture_output=True, timeout=10,
        )  # fmt: skip
        assert _ssh(lab, ssh_key, HOSTS["web-p1"], "sudo -n getent hosts db-p1").startswith(
            str(HOSTS["db-p1"])
        )
    finally:
        _teardown(lab, state)

    assert network.lab_namespaces(lab) == []
    assert host.lab_mounts(state) == []
    assert not [line for line in Path("/proc/self/mountinfo").read_text().splitlines()
                if str(state) in line]  # fmt: skip
    assert _lab_processes(lab) == []
    assert not list(Path("/sys/fs/cgroup").glob(f"*/gestic-{lab}-*"))
    assert not (state / "hosts").exists() or not any((state / "hosts").iterdir())
