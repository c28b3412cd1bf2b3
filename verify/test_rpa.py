"""The RPA scheduler on the `bots` hosts: gestic installed offline, the service running.

Role rpa_scheduler. Skipped on hosts outside the `bots` group. With a shared ledger
(gestic_rpa.ledger): the one SSH forward the controller needs, and the database's certificate.
"""

from __future__ import annotations

import pytest
from testinfra.host import Host as InfraHost

from gestic.model import Host, Model
from gestic.rpa.shared_ledger import shared_ledger

HOME = "/opt/gestic"
UNIT = "gestic-rpa-scheduler.service"
ACCOUNT = "gestic-rpa"


@pytest.fixture(autouse=True)
def _bots_only(declared: Host) -> None:
    if "bots" not in declared.groups:
        pytest.skip(f"{declared.name} is not in group bots")


def test_the_scheduler_runs_as_its_own_account(host: InfraHost) -> None:
    service = host.service(UNIT)
    assert service.is_enabled
    assert service.is_running
    main_pid = host.check_output(f"systemctl show -p MainPID --value {UNIT}")
    assert host.check_output(f"ps -o user= -p {main_pid}") == ACCOUNT
    assert host.user(ACCOUNT).shell == "/usr/sbin/nologin"


def test_the_environment_file_is_readable_only_by_root_and_the_service(host: InfraHost) -> None:
    env = host.file("/etc/gestic/rpa-scheduler.env")
    assert (env.user, env.group, env.mode) == ("root", ACCOUNT, 0o640)


def test_gestic_and_the_robots_run_from_the_current_release(host: InfraHost) -> None:
    for link in ("src", "venv", "robots-env"):
        assert host.file(f"{HOME}/{link}").is_symlink, link
    assert host.file(f"{HOME}/venv/.gestic-ready").exists
    assert host.file(f"{HOME}/robots-env/.gestic-ready").exists
    gestic = host.run(
        f"PYTHONPATH={HOME}/src/src {HOME}/venv/bin/python -c 'import gestic.rpa.runner'"
    )
    assert gestic.rc == 0, gestic.stderr
    robots = host.run(f"{HOME}/robots-env/bin/python -c 'import RPA.Robocorp.WorkItems, robot'")
    assert robots.rc == 0, robots.stderr
    # Installed from the wheelhouse: the robots' environment has no database driver.
    assert host.run(f"{HOME}/robots-env/bin/python -c 'import sqlalchemy'").rc != 0


def test_only_the_automation_account_may_forward_and_only_to_the_ledger(
    host: InfraHost, model: Model
) -> None:
    """gestic_rpa.ledger: the controller's SSH port forward through this host reaches the
    ledger's database port and nothing else; every other account keeps no forwarding."""
    ledger = shared_ledger(model)
    if ledger is None:
        pytest.skip("the environment declares no shared RPA ledger (gestic_rpa.ledger)")
    options = "host=admin.example,addr=192.0.2.11"
    automation = host.check_output(f"/usr/sbin/sshd -T -C user=gestic,{options}").splitlines()
    assert "allowtcpforwarding local" in automation
    assert f"permitopen {ledger.address}:{ledger.port}" in automation
    assert "permitlisten none" in automation
    assert "allowagentforwarding no" in automation
    assert "allowstreamlocalforwarding no" in automation
    other = host.check_output(f"/usr/sbin/sshd -T -C user=nobody,{options}").splitlines()
    assert "allowtcpforwarding no" in other
    assert host.file("/etc/gestic/rpa-ledger-ca.pem").contains("BEGIN CERTIFICATE")
