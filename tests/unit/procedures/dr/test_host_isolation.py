"""Isolation by routes on the recovered hosts (environments that are not a lab), against a
recording stand-in for SSH: the order of the routes and what release removes."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from gestic.errors import DrError
from gestic.procedures.dr.host_isolation import PROTO, HostIsolation


@dataclass
class FakeAccess:
    state_dir: Path
    peer: str = "10.213.1.13"
    routes: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    sent: list[tuple[str, str]] = field(default_factory=list)

    def run(
        self, host: str, command: str, *, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        self.sent.append((host, command))
        out = ""
        if "SSH_CONNECTION" in command:
            out = self.peer
        elif "route get" in command:
            out = json.dumps([{"dst": self.peer, "gateway": "10.213.2.1", "dev": "eth0"}])
        elif "route show" in command:
            out = json.dumps(self.routes.get(host, []))
        elif "route replace" in command:
            self.routes.setdefault(host, []).append({"dst": "x"})
        elif "route flush" in command:
            self.routes.pop(host, None)
        return subprocess.CompletedProcess(command, 0, out, "")


def test_the_ssh_peer_is_kept_before_anything_is_cut(tmp_path: Path) -> None:
    access = FakeAccess(tmp_path)
    iso = HostIsolation(access)  # type: ignore[arg-type]
    iso.isolate({"web-a1": IPv4Address("10.213.2.11")}, [IPv4Network("10.213.1.0/24")])
    script = next(c for h, c in access.sent if "route replace" in c)
    keep = script.index(f"{access.peer}/32 via 10.213.2.1 dev eth0 proto {PROTO}")
    cut = script.index(f"prohibit 10.213.1.0/24 proto {PROTO}")
    assert keep < cut  # the session that adds the routes survives them
    assert script.startswith("sudo sh -c ")
    assert iso.present()
    assert iso.release() == 1
    assert any(c == f"sudo ip route flush proto {PROTO}" for _h, c in access.sent)
    assert iso.present() == []
    assert iso.release() == 0  # idempotent


def test_release_finds_hosts_isolated_by_another_process(tmp_path: Path) -> None:
    HostIsolation(FakeAccess(tmp_path)).isolate(  # type: ignore[arg-type]
        {"web-a1": IPv4Address("10.213.2.11")}, [IPv4Network("10.213.1.0/24")]
    )
    later = FakeAccess(tmp_path, routes={"web-a1": [{"dst": "10.213.1.0/24"}]})
    assert HostIsolation(later).release() == 1  # type: ignore[arg-type]
    assert [h for h, c in later.sent if "flush" in c] == ["web-a1"]


def test_a_session_without_a_peer_address_is_refused(tmp_path: Path) -> None:
    access = FakeAccess(tmp_path, peer="")
    with pytest.raises(DrError, match="web-a1: cannot tell the SSH session's peer"):
        HostIsolation(access).isolate(  # type: ignore[arg-type]
            {"web-a1": IPv4Address("10.213.2.11")}, [IPv4Network("10.213.1.0/24")]
        )
    assert not any("route replace" in c for _h, c in access.sent)
