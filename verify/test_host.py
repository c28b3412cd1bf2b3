"""Every host: booted systemd, its declared identity and address, SSH and the gestic record."""

from __future__ import annotations

import json

from testinfra.host import Host as InfraHost

from gestic.model import Host, Model


def test_systemd_is_up(host: InfraHost) -> None:
    state = host.run("systemctl is-system-running").stdout.strip()
    assert state in {"running", "degraded"}, f"systemd state is {state!r}"
    failed = host.run("systemctl list-units --failed --plain --no-legend").stdout.strip()
    assert failed == "", f"failed units:\n{failed}"


def test_hostname_is_declared(host: InfraHost, declared: Host) -> None:
    assert host.check_output("hostname") == declared.name


def test_address_is_declared(host: InfraHost, declared: Host) -> None:
    addresses = host.interface("eth0").addresses
    assert str(declared.address) in addresses


def test_sshd_runs(host: InfraHost) -> None:
    sshd = host.service("ssh")
    assert sshd.is_running
    assert host.socket("tcp://0.0.0.0:22").is_listening


def test_lab_peers_resolve(host: InfraHost, model: Model) -> None:
    for peer in model.hosts.values():
        assert host.addr(peer.name).ip_addresses == [str(peer.address)]


def test_gestic_record_matches_model(host: InfraHost, declared: Host, model: Model) -> None:
    record = host.file("/etc/gestic/host.json")
    assert record.exists
    assert record.mode == 0o644
    data = json.loads(record.content_string)
    assert data["site"] == declared.site
    assert data["groups"] == list(declared.groups)
    assert data["services"] == sorted(s.name for s in model.services_on(declared.name))
