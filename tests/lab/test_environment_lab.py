"""A second environment that is not the lab as far as gestic knows: the lab's hosts reached only
through a bastion (the `bastion` role on svc-p1, key-only ProxyJump), with its own
ansible-vault secrets, driven from a second checkout of the repository as its users drive it
(`gestic --env pruebas ...`).

It converges the session lab (nothing may change: same secrets, different custodian path),
verifies the bastion and a host behind it, backs a service up, verifies a restore and runs a
test-mode drill through the bastion (isolated by routes on the recovered host); a wrong bastion
gives one error that names the host, its address and the route tried.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from ansible.parsing.vault import VaultLib, VaultSecret

from gestic.environments.context import Context
from gestic.environments.custody import (
    LabSecrets,
    required,
)
from gestic.lab import names
from gestic.lab.access import LabAccess
from gestic.procedures.dr import isolation
from gestic.procedures.dr.host_isolation import PROTO
from gestic.store.ledger import SUCCEEDED
from gestic.tools.ssh import InventoryAccess

from ..paths import LAB_INVENTORY, ROOT
from .labkit import Lab, on_host

BASTION = "svc-p1"
BASTION_NAME = "salto.lab"  # how the environment names its jump host
SERVICE = "portal"
ENV = "pruebas"  # the environment's name: inventory/pruebas of the second checkout


@dataclass(frozen=True)
class SecondEnvironment:
    inventory: Path
    checkout: Path
    env: dict[str, str]  # what a user of that environment exports


def _write_environment(lab: Lab, base: Path, *, name: str = ENV, bastion_port: int = 22) -> Path:
    """An inventory (environment `name`) of the lab's hosts reached only through the bastion."""
    ctx = lab.ctx
    access = ctx.access
    assert isinstance(access, LabAccess)
    inv = base / name
    shutil.copytree(LAB_INVENTORY, inv)
    (inv / "group_vars" / "all" / "lab.yml").unlink()  # not a lab: no namespaces, no stack
    address = ctx.model.hosts[BASTION].address
    # how the bastion itself is reached from this machine: the environment's own ssh_config
    # (here, from the lab's router namespace; in the institution, its public address)
    (inv / "ssh_config").write_text(
        f"Host {BASTION_NAME}\n"
        f"  HostName {address}\n"
        f"  ProxyCommand ip netns exec {names.router_netns(ctx.access.name)} nc %h %p\n"
    )
    known = [
        ln for ln in access.known_hosts.read_text().splitlines() if ln and not ln.startswith("#")
    ]
    bastion_key = next(ln for ln in known if ln.split()[0].split(",")[0] == BASTION)
    known.append(" ".join([BASTION_NAME, *bastion_key.split()[1:3]]))
    (inv / "known_hosts").write_text("\n".join(known) + "\n")
    connection = {
        "user": "gestic",
        "identity_file": str(access.key),  # the automation key, also allowed to jump
        "known_hosts": "known_hosts",
        "ssh_config": "ssh_config",
        "bastion": {"host": BASTION_NAME, "user": "salto", "port": bastion_port},
    }
    conn_file = inv / "group_vars" / "all" / "connection.yml"
    conn_file.write_text(conn_file.read_text() + yaml.safe_dump({"gestic_connection": connection}))
    return inv


@pytest.fixture(scope="module")
def second(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecondEnvironment]:
    base = tmp_path_factory.mktemp("second-env")
    # a second checkout of the repository, with the environment in its inventory/ (`--env`)
    checkout = base / "checkout"
    shutil.copytree(
        ROOT,
        checkout,
        ignore=shutil.ignore_patterns(".git", ".gestic", ".nox", "__pycache__", "*.egg-info"),
    )
    # a checkout is a git work tree; the robots' release is built from the files git sees, and
    # the environment below is excluded, so the release is the lab's own and changes nothing
    for git in (["init", "-q"], ["add", "-A"]):
        subprocess.run(["git", "-C", str(checkout), *git], check=True, capture_output=True)
    (checkout / ".git" / "info" / "exclude").write_text(f"/inventory/{ENV}/\n")
    inv = _write_environment(lab, checkout / "inventory", name=ENV)
    # its own vault, holding the same secrets as the lab (one custodian, two ways to it)
    vault_password = secrets.token_urlsafe(24)
    password_file = base / "vault-password"
    password_file.write_text(vault_password + "\n")
    password_file.chmod(0o600)
    lab_secrets = LabSecrets(file=lab.ctx.access.state_dir / "secrets.yml").ensure(lab.ctx.model)
    vault = VaultLib([("default", VaultSecret(vault_password.encode()))])
    # every secret the lab's model needs (whatever is added later), as the lab holds it
    held = {var: lab_secrets[var] for var in required(lab.ctx.model)}
    (inv / "group_vars" / "all" / "vault.yml").write_bytes(vault.encrypt(yaml.safe_dump(held)))
    env = {
        "GESTIC_ROOT": str(checkout),
        # another machine: a state dir of its own, empty. Nothing the converge needs is kept on
        # the controller (the hosts hold their keys; the secrets are in the vault), so it must
        # find every host as it is. The ledger (GESTIC_LEDGER_URL) is the one shared database.
        "GESTIC_STATE_DIR": str(base / "state"),
        "GESTIC_VAULT_PASSWORD_FILE": str(password_file),
    }
    try:
        with pytest.MonkeyPatch.context() as patch:  # put back when the module is done
            for key, value in env.items():
                patch.setenv(key, value)
            yield SecondEnvironment(inventory=inv, checkout=checkout, env=env)
    finally:
        shutil.rmtree(base / "state", ignore_errors=True)


def _context(lab: Lab, second: SecondEnvironment) -> Context:
    """The second environment as its own machine sees it (its own state dir)."""
    state = Path(second.env["GESTIC_STATE_DIR"])
    return Context(inventory=second.inventory, state=state, cache=lab.ctx.cache)


def _gestic(
    second: SecondEnvironment, *args: str, inventory: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`gestic --env pruebas ...` as its users run it, from the second checkout."""
    chosen = ["--inventory", str(inventory)] if inventory else ["--env", ENV]
    return subprocess.run(
        [sys.executable, "-m", "gestic", *chosen, *args],
        capture_output=True, text=True, check=False, cwd=second.checkout,
        env={**os.environ, **second.env},
    )  # fmt: skip


def test_converge_through_the_bastion_from_a_second_checkout_changes_nothing(
    lab: Lab, second: SecondEnvironment
) -> None:
    ctx = _context(lab, second)
    assert not ctx.is_lab
    assert ctx.root == second.checkout
    assert isinstance(ctx.access, InventoryAccess)
    since = on_host(lab.ctx, BASTION, "date +%s").strip()
    done = _gestic(second, "converge")
    assert done.returncode == 0, done.stdout + done.stderr
    run = lab.ctx.ledger.runs(kind="converge", target=ENV, limit=1)[0]
    assert run.status == SUCCEEDED, run.summary
    assert run.changed == 0, run.details.get("changed_tasks")
    assert set(run.details["per_host"]) == set(lab.ctx.model.hosts)
    config = ctx.access.ssh_config.read_text()
    assert f"ProxyJump {BASTION_NAME}" in config
    # every host was reached through the jump account: sshd logged each forwarding
    jumps = "grep -c 'Accepted publickey for salto' || true"
    log = on_host(lab.ctx, BASTION, f"journalctl -q -o cat --since @{since} _COMM=sshd | {jumps}")
    assert int(log.strip() or 0) >= 1, "the bastion logged no jump"


def test_verify_and_back_up_through_the_bastion(lab: Lab, second: SecondEnvironment) -> None:
    # the bastion itself and a host behind it: every host's checks are test_lab_integration's,
    # and the converge above already reached every host through the bastion
    checked = [BASTION, "db-p1"]
    verified = _gestic(second, "verify", *(f"--host={host}" for host in checked))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    run = lab.ctx.ledger.runs(kind="verify", target=ENV, limit=1)[0]
    assert run.status == SUCCEEDED, run.summary
    assert run.details["hosts"] == sorted(checked)
    done = _gestic(second, "backup", "run", SERVICE)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"ok {SERVICE}: snapshot" in done.stdout


def test_restore_verification_and_a_test_drill_isolate_with_host_routes(
    lab: Lab, second: SecondEnvironment, tmp_path: Path
) -> None:
    """Not a lab: no router of gestic's to isolate with, so routes on the recovered host do it
    (the bastion's address kept), and nothing of them is left afterwards."""
    verified = _gestic(second, "backup", "verify", SERVICE)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    evidence = tmp_path / "evidence"
    drill = _gestic(
        second, "drill", "--scenario", "host-loss", "--host", "web-p1",
        "--test", "--auto-approve", "--evidence-dir", str(evidence),
    )  # fmt: skip
    assert drill.returncode == 0, drill.stdout + drill.stderr
    records = list(evidence.rglob("drill.json"))
    assert records, drill.stdout
    record = json.loads(records[0].read_text())
    assert record["ok"]
    assert [s["service"] for s in record["services"]] == [SERVICE]
    recovered = record["services"][0]["host"]
    # the host routes were used (and removed), not the lab's router rules
    assert on_host(lab.ctx, recovered, f"ip route show proto {PROTO}").strip() == ""
    assert not isolation.isolation_rules(lab.ctx.access.name)
    undone = record["cleanup"]["undone"]
    assert any(u.endswith("isolation rules removed") for u in undone), undone
    real = _gestic(second, "drill", "--scenario", "host-loss", "--host",
                   "web-p1", "--auto-approve")  # fmt: skip
    assert real.returncode != 0
    assert "gestic does that only in a lab" in " ".join((real.stdout + real.stderr).split())


def test_an_unreachable_host_names_its_address_and_the_bastion_tried(
    lab: Lab, second: SecondEnvironment, tmp_path: Path
) -> None:
    # nothing listens on port 2; another environment name, so that no multiplexed connection
    # of the good one (ControlPersist, under /run/gestic/<env>) is reused
    inv = _write_environment(lab, tmp_path, name="pruebas-mal", bastion_port=2)
    shutil.copy(second.inventory / "group_vars" / "all" / "vault.yml", inv / "group_vars" / "all")
    done = _gestic(second, "converge", "--limit", "web-p1", "--tags", "baseline", inventory=inv)
    assert done.returncode == 1
    out = " ".join((done.stdout + done.stderr).split())
    address = lab.ctx.model.hosts["web-p1"].address
    assert f"web-p1 ({address}) via bastion {BASTION_NAME}: cannot be reached" in out, out
