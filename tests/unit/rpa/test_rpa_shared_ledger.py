"""The shared RPA ledger (gestic_rpa.ledger): the model's setting, the URL built from it (by
gestic and by the rpa_scheduler role alike), the custodian's password, and the SSH port
forward the controller reaches it through (its error paths, with stand-in ssh commands)."""

from __future__ import annotations

import os
import socket
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from jinja2.nativetypes import NativeEnvironment
from sqlalchemy.engine import make_url

from gestic.cli.rpa_context import RpaContext
from gestic.environments.context import Context
from gestic.environments.custody import DATABASE_PASSWORDS, LabSecrets, required
from gestic.errors import ModelError, TunnelError
from gestic.model import load_model
from gestic.rpa.robots_env import ROBOTS_ENV_ENV
from gestic.rpa.shared_ledger import ledger_url, postgres_answers, shared_ledger
from gestic.store.ledger import LEDGER_URL_ENV
from gestic.tools import pgcluster
from gestic.tools.ssh_tunnel import forward

from ...paths import LAB_INVENTORY, ROOT

RPA_YML = Path("group_vars") / "all" / "rpa.yml"


def _problems(root: Path) -> list[str]:
    with pytest.raises(ModelError) as info:
        load_model(root, check_machine=False)
    return info.value.problems


def _set_ledger(inv: Path, ledger: object) -> Path:
    file = inv / RPA_YML
    data = yaml.safe_load(file.read_text())
    data["gestic_rpa"]["ledger"] = ledger
    file.write_text(yaml.safe_dump(data, sort_keys=False))
    return file


# --- the model's setting -------------------------------------------------------------------


def test_the_lab_declares_its_ledger_on_the_database_service() -> None:
    ledger = shared_ledger(load_model(LAB_INVENTORY, check_machine=False))
    assert ledger is not None
    assert (ledger.service, ledger.host, str(ledger.address), ledger.port) == (
        "cartera-db", "db-p1", "10.213.1.21", 5432,
    )  # fmt: skip
    assert (ledger.database, ledger.role) == ("gestic", "gestic")
    assert ledger.bots_hosts == ("svc-p1", "web-a1")  # one bots host per site
    assert ledger.via == "svc-p1"


def test_production_keeps_sqlite_and_needs_no_ledger_password() -> None:
    model = load_model(ROOT / "inventory" / "production", check_machine=False)
    assert model.rpa is not None
    assert model.rpa.ledger is None
    assert shared_ledger(model) is None
    assert DATABASE_PASSWORDS not in required(model)


@pytest.mark.parametrize("empty", [None, {}, ""])
def test_an_empty_ledger_is_no_shared_ledger(lab_inventory: Path, empty: object) -> None:
    _set_ledger(lab_inventory, empty)
    model = load_model(lab_inventory, check_machine=False)
    assert shared_ledger(model) is None
    assert DATABASE_PASSWORDS not in required(model)


@pytest.mark.parametrize(
    ("ledger", "key", "message"),
    [
        ({"service": "nope"}, "gestic_rpa.ledger.service", "unknown service 'nope'"),
        ({"service": "portal"}, "gestic_rpa.ledger.service", "not a PostgreSQL service"),
        (
            {"service": "cartera-db", "database": "cartera"},
            "gestic_rpa.ledger.database",
            "the service's own database",
        ),
        ({"service": "cartera-db", "role": "Gestic"}, "gestic_rpa.ledger.role", "pattern"),
        ({"service": "cartera-db", "dtabase": "x"}, "gestic_rpa.ledger.dtabase", "not permitted"),
    ],
)
def test_a_bad_ledger_names_file_key_and_line(
    lab_inventory: Path, ledger: dict[str, str], key: str, message: str
) -> None:
    file = _set_ledger(lab_inventory, ledger)
    [problem] = [p for p in _problems(lab_inventory) if key in p and message in p]
    assert problem.startswith(f"{file}:"), problem
    assert int(problem.split(":")[1]) > 1, problem  # the line of the key
    assert message in problem, problem


def test_a_ledger_service_off_the_db_hosts_is_refused(lab_inventory: Path) -> None:
    services = lab_inventory / "group_vars" / "all" / "services.yml"
    text = services.read_text().replace("    hosts: [db-p1]\n", "    hosts: [svc-p1]\n", 1)
    services.write_text(text)
    [problem] = [p for p in _problems(lab_inventory) if "gestic_rpa.ledger" in p]
    assert "runs on 'svc-p1', which is not in group `db`" in problem


# --- its URL -------------------------------------------------------------------------------


def test_the_url_connects_to_the_host_address_and_verifies_its_name() -> None:
    ledger = shared_ledger(load_model(LAB_INVENTORY, check_machine=False))
    assert ledger is not None
    url = make_url(ledger_url(ledger, "s3cret/+@", sslrootcert="/etc/gestic/rpa-ledger-ca.pem"))
    assert url.drivername == "postgresql+psycopg"
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "gestic", "s3cret/+@", "db-p1", 5432, "gestic",
    )  # fmt: skip
    assert dict(url.query) == {
        "hostaddr": "10.213.1.21",
        "sslmode": "verify-full",
        "sslrootcert": "/etc/gestic/rpa-ledger-ca.pem",
    }
    forwarded = make_url(
        ledger_url(ledger, "pw", sslrootcert="/tmp/ca.pem", port=40001, hostaddr="127.0.0.1")
    )
    assert (forwarded.host, forwarded.port, forwarded.query["hostaddr"]) == (
        "db-p1", 40001, "127.0.0.1",
    )  # fmt: skip


def _role_vars(role: str, inventory: Path, extra: dict[str, Any]) -> dict[str, Any]:
    """A role's defaults and vars rendered in order (a native Jinja2 stand-in for Ansible's
    templating) against the inventory's group_vars and hosts."""
    env = NativeEnvironment()
    env.filters["urlencode"] = env.filters["urlencode"]  # Jinja2's, as Ansible's
    scope: dict[str, Any] = {}
    for file in sorted((inventory / "group_vars" / "all").glob("*.yml")):
        scope.update(yaml.safe_load(file.read_text()) or {})
    hosts = yaml.safe_load((inventory / "hosts.yml").read_text())["all"]["children"]
    scope["hostvars"] = {
        name: values for site in ("principal", "alterno")
        for name, values in hosts[site]["hosts"].items()
    }  # fmt: skip
    scope.update(extra)
    base = ROOT / "playbooks" / "roles" / role
    for part in ("defaults", "vars"):
        for name, value in (yaml.safe_load((base / part / "main.yml").read_text()) or {}).items():
            if name in extra:
                continue
            scope[name] = env.from_string(value).render(scope) if isinstance(value, str) else value
    return scope


def test_the_scheduler_role_builds_the_same_url_as_gestic() -> None:
    password = "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6"
    scope = _role_vars(
        "rpa_scheduler", LAB_INVENTORY, {"gestic_database_passwords": {"gestic": password}}
    )
    ledger = shared_ledger(load_model(LAB_INVENTORY, check_machine=False))
    assert ledger is not None
    ours = make_url(ledger_url(ledger, password, sslrootcert=scope["rpa_scheduler_ledger_ca"]))
    theirs = make_url(scope["rpa_scheduler_ledger_model_url"])
    assert theirs == ours


def test_the_scheduler_role_builds_no_url_without_a_ledger(lab_inventory: Path) -> None:
    _set_ledger(lab_inventory, None)
    scope = _role_vars("rpa_scheduler", lab_inventory, {})
    assert scope["rpa_scheduler_ledger_model_url"] == ""


# --- the custodian -------------------------------------------------------------------------


def test_the_lab_generates_the_ledger_password_once(tmp_path: Path) -> None:
    model = load_model(LAB_INVENTORY, check_machine=False)
    assert required(model)[DATABASE_PASSWORDS] == ["gestic"]
    store = LabSecrets(file=tmp_path / "secrets.yml")
    first = store.values(model)[DATABASE_PASSWORDS]["gestic"]
    assert len(first) >= 24
    assert stat.S_IMODE(store.file.stat().st_mode) == 0o600
    assert store.values(model)[DATABASE_PASSWORDS]["gestic"] == first  # never regenerated
    store.rotate(model, ["gestic"], var=DATABASE_PASSWORDS)
    rotated = store.values(model)[DATABASE_PASSWORDS]
    assert rotated["gestic"] != first
    assert store.read()["gestic_backup_passwords"]  # the other secrets stay


# --- which database the RPA commands use ---------------------------------------------------


def test_gestic_ledger_url_wins_over_the_declared_ledger(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(LEDGER_URL_ENV, f"sqlite:///{tmp_path / 'x.db'}")
    rpa = RpaContext(Context(inventory=LAB_INVENTORY, state=tmp_path, cache=tmp_path), None)
    assert rpa.ledger_url == f"sqlite:///{tmp_path / 'x.db'}"  # no port forward opened


def test_a_bots_host_without_url_keeps_its_sqlite(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(LEDGER_URL_ENV, raising=False)
    monkeypatch.setenv(ROBOTS_ENV_ENV, str(tmp_path / "robots-env"))
    monkeypatch.setenv("GESTIC_STATE_DIR", str(tmp_path))
    rpa = RpaContext(Context(inventory=LAB_INVENTORY, state=tmp_path, cache=tmp_path), None)
    assert rpa.ledger_url.startswith("sqlite:///")


# --- the port forward ----------------------------------------------------------------------


def _fake_ssh(tmp_path: Path, body: str) -> str:
    """An executable standing in for ssh: Python `body` with `argv` (ssh's arguments) and
    `port` (the local port of -L)."""
    script = tmp_path / "fake-ssh"
    script.write_text(
        f"#!{sys.executable}\n"
        "import socket, sys, time\n"
        "argv = sys.argv[1:]\n"
        "port = int(argv[argv.index('-L') + 1].split(':')[1])\n"
        f"{body}\n"
    )
    script.chmod(0o755)
    return str(script)


def test_a_forward_ssh_refuses_names_the_host_and_what_ssh_said(tmp_path: Path) -> None:
    ssh = _fake_ssh(
        tmp_path,
        "print('ssh: connect to host svc-p1 port 22: Connection refused', file=sys.stderr)\n"
        "sys.exit(255)",
    )
    with (
        pytest.raises(TunnelError, match="through svc-p1") as info,
        forward(tmp_path / "ssh_config", "svc-p1", "10.213.1.21", 5432, ssh=ssh),
    ):
        pytest.fail("the body must not run")
    assert "ssh exited 255: ssh: connect to host svc-p1 port 22: Connection refused" in str(
        info.value
    )


def test_a_forward_that_never_listens_times_out(tmp_path: Path) -> None:
    ssh = _fake_ssh(tmp_path, "time.sleep(60)")
    with (
        pytest.raises(TunnelError, match=r"not open after 0\.5 s"),
        forward(tmp_path / "c", "svc-p1", "10.213.1.21", 5432, ssh=ssh, timeout=0.5),
    ):
        pytest.fail("the body must not run")


def _listening_ssh(tmp_path: Path, reply: str) -> str:
    """A stand-in ssh that listens on the -L port and answers each connection with `reply`
    (empty: closes it at once, as sshd's refused forward does), writing its PID."""
    return _fake_ssh(
        tmp_path,
        f"open({str(tmp_path / 'pid')!r}, 'w').write(str(__import__('os').getpid()))\n"
        "srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "srv.bind(('127.0.0.1', port)); srv.listen()\n"
        "while True:\n"
        "    conn, _ = srv.accept()\n"
        f"    data = {reply!r}.encode()\n"
        "    if data:\n"
        "        conn.recv(8); conn.sendall(data)\n"
        "    conn.close()",
    )


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_refused_forward_is_caught_by_the_check_and_ssh_is_stopped(tmp_path: Path) -> None:
    ssh = _listening_ssh(tmp_path, "")
    with (
        pytest.raises(TunnelError, match="refused to forward"),
        forward(tmp_path / "c", "svc-p1", "10.213.1.21", 5432, ssh=ssh, check=postgres_answers),
    ):
        pytest.fail("the body must not run")
    assert _gone(int((tmp_path / "pid").read_text()))


def test_a_forward_yields_its_port_and_stops_ssh_by_pid(tmp_path: Path) -> None:
    ssh = _listening_ssh(tmp_path, "N")  # a PostgreSQL server without TLS answers N
    with forward(
        tmp_path / "c", "svc-p1", "10.213.1.21", 5432, ssh=ssh, check=postgres_answers
    ) as port:
        pid = int((tmp_path / "pid").read_text())
        assert not _gone(pid)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    assert _gone(pid)


def test_postgres_answers_a_real_server(pg_cluster: pgcluster.PgCluster) -> None:
    port = make_url(pg_cluster.url("postgres")).port
    assert port is not None
    assert postgres_answers(port) is None


def test_postgres_answers_names_a_closed_port() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: refused
        assert "does not answer" in (postgres_answers(port) or "")


def test_the_ledger_must_be_backed_up_with_its_service(lab_inventory: Path) -> None:
    services = lab_inventory / "group_vars" / "all" / "services.yml"
    text = services.read_text().replace("databases: [cartera, gestic]", "databases: [cartera]")
    services.write_text(text)
    [problem] = [p for p in _problems(lab_inventory) if "is not backed up with it" in p]
    assert problem.startswith(f"{services}:"), problem
    assert "gestic_services.cartera-db.backup.databases" in problem
    assert "'gestic'" in problem
