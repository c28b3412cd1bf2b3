"""Institutional services: the portal (web), the cartera database (db) and SFTP (transfer).

Each check applies to the hosts of one function group and is skipped on the others; the
"absent" checks make sure nginx and PostgreSQL only run where the model places them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from testinfra.host import Host as InfraHost

from gestic.model import Host, Model
from gestic.rpa.shared_ledger import shared_ledger

PORTAL_PORT = 80
PG_PORT = 5432
PG_SERVICE = "postgresql@15-main"
SFTP_GROUP = "sftp-partners"
SFTP_ROOT = "/srv/sftp"
SFTP_KEYS = "/etc/ssh/sftp-keys"
SFTP_DROPIN = "/etc/ssh/sshd_config.d/60-gestic-sftp.conf"
PORTAL_UPDATE_COLUMNS = {"full_name", "email", "phone", "address", "updated_at"}


def _only(declared: Host, group: str) -> None:
    if group not in declared.groups:
        pytest.skip(f"{declared.name} is not in group {group}")


def _psql(host: InfraHost, sql: str, database: str = "cartera") -> str:
    out = host.check_output("runuser -u postgres -- psql -X -q -At -d %s -c %s", database, sql)
    return str(out).strip()


@pytest.fixture(scope="session")
def partners() -> list[dict[str, Any]]:
    """The SFTP partners declared in the inventory under test."""
    path = Path(os.environ["GESTIC_INVENTORY"]) / "group_vars" / "transfer" / "sftp.yml"
    data = yaml.safe_load(path.read_text()) or {}
    return list(data.get("sftp_partners") or [])


# ------------------------------------------------------------------ portal


def test_portal_and_nginx_run(host: InfraHost, declared: Host) -> None:
    _only(declared, "web")
    for name in ("nginx", "portal"):
        service = host.service(name)
        assert service.is_running, f"{name} is not running"
        assert service.is_enabled, f"{name} does not start at boot"
    workers = [p for p in host.process.filter(user="portal") if "gunicorn" in p.args]
    assert len(workers) >= 2, "gunicorn (master + workers) does not run as the portal account"


def test_gunicorn_listens_on_loopback_only(host: InfraHost, declared: Host) -> None:
    _only(declared, "web")
    assert host.socket("tcp://127.0.0.1:8000").is_listening
    assert not host.socket("tcp://0.0.0.0:8000").is_listening
    assert host.socket(f"tcp://0.0.0.0:{PORTAL_PORT}").is_listening


def test_portal_health_through_nginx_reports_database_ok(host: InfraHost, declared: Host) -> None:
    _only(declared, "web")
    out = host.check_output(
        "curl -fsS --max-time 10 http://127.0.0.1:%s/api/health", str(PORTAL_PORT)
    )
    health = json.loads(out)
    assert health == {
        "status": "ok",
        "database": "ok",
        "site": declared.site,
        "host": declared.name,
    }


def test_portal_points_at_its_own_sites_database(
    host: InfraHost, declared: Host, model: Model
) -> None:
    _only(declared, "web")
    [db] = [h for h in model.hosts_at(declared.site) if "db" in h.groups]
    env = host.file("/etc/portal/portal.env").content_string
    assert f"PORTAL_DB_HOST={db.address}\n" in env
    assert "PORTAL_DB_SSLMODE=verify-full\n" in env
    assert "PASSWORD=" not in env.replace("PASSWORD_FILE=", "")


def test_portal_secrets_are_root_only(host: InfraHost, declared: Host) -> None:
    _only(declared, "web")
    for name in ("db-password", "secret-key"):
        secret = host.file(f"/etc/portal/secrets/{name}")
        assert secret.is_file
        assert (secret.user, secret.group, secret.mode) == ("root", "root", 0o600)
        assert secret.size >= 24
    app = host.file("/srv/portal/app/portal/app.py")
    assert (app.user, app.mode) == ("root", 0o644)


def test_nginx_runs_only_on_web_hosts(host: InfraHost, declared: Host) -> None:
    if "web" in declared.groups:
        pytest.skip(f"{declared.name} is a web host")
    assert not host.service("nginx").is_running
    assert not host.socket(f"tcp://0.0.0.0:{PORTAL_PORT}").is_listening


# ---------------------------------------------------------------- database


def test_postgresql_listens_on_the_declared_address(host: InfraHost, declared: Host) -> None:
    _only(declared, "db")
    assert host.service(PG_SERVICE).is_running
    assert host.socket(f"tcp://{declared.address}:{PG_PORT}").is_listening
    assert not host.socket(f"tcp://0.0.0.0:{PG_PORT}").is_listening
    assert _psql(host, "SHOW ssl", "postgres") == "on"


def test_cartera_tables_have_rows(host: InfraHost, declared: Host) -> None:
    _only(declared, "db")
    for table in ("beneficiaries", "loans", "payments"):
        count = int(_psql(host, f"SELECT count(*) FROM {table}"))
        assert count > 0, f"cartera.{table} is empty"
    assert int(_psql(host, "SELECT max(version) FROM schema_version")) >= 1


def test_only_the_sites_portal_hosts_the_monitoring_and_the_bots_may_connect(
    host: InfraHost, declared: Host, model: Model
) -> None:
    _only(declared, "db")
    rules = _psql(
        host,
        "SELECT type || ' ' || array_to_string(database, ',') || ' '"
        " || array_to_string(user_name, ',') || ' ' || address || ' ' || auth_method"
        " FROM pg_hba_file_rules"
        " WHERE type <> 'local' AND address NOT IN ('127.0.0.1', '::1')",
        "postgres",
    ).splitlines()
    expected = {
        f"hostssl cartera portal {h.address} scram-sha-256"
        for h in model.hosts_at(declared.site)
        if "web" in h.groups
    }
    assert expected, f"no web host at site {declared.site}"
    if model.monitoring is not None:  # the monitoring's SQL probe, from every site
        expected |= {
            f"hostssl cartera gestic_monitor {model.hosts[s].address} scram-sha-256"
            for s in model.monitoring.servers
        }
    ledger = shared_ledger(model)
    # the shared RPA ledger's database: on its host, and on the DR hosts it is recovered to
    serves = ledger is not None and (
        declared.name == ledger.host or declared.name in model.services[ledger.service].dr_hosts
    )
    if ledger is not None and serves:
        expected |= {
            f"hostssl {ledger.database} {ledger.role} {model.hosts[b].address} scram-sha-256"
            for b in ledger.bots_hosts
        }
    assert set(rules) == expected


def test_portal_role_has_least_privilege(host: InfraHost, declared: Host) -> None:
    _only(declared, "db")
    attrs = _psql(
        host,
        "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication"
        " FROM pg_roles WHERE rolname = 'portal'",
        "postgres",
    )
    assert attrs == "t|f|f|f|f"
    table_privileges = set(
        _psql(
            host,
            "SELECT table_name || ':' || privilege_type FROM information_schema.table_privileges"
            " WHERE grantee = 'portal'",
        ).splitlines()
    )
    assert table_privileges == {"beneficiaries:SELECT", "loans:SELECT", "payments:SELECT"}
    updatable = set(
        _psql(
            host,
            "SELECT column_name FROM information_schema.column_privileges"
            " WHERE grantee = 'portal' AND privilege_type = 'UPDATE'",
        ).splitlines()
    )
    assert updatable == PORTAL_UPDATE_COLUMNS
    secret = host.file("/etc/gestic/secrets/cartera-portal.password")
    assert (secret.user, secret.mode) == ("root", 0o600)


def test_postgresql_runs_only_on_db_hosts(host: InfraHost, declared: Host) -> None:
    if "db" in declared.groups:
        pytest.skip(f"{declared.name} is a db host")
    assert not host.service(PG_SERVICE).is_running
    assert not host.socket(f"tcp://127.0.0.1:{PG_PORT}").is_listening


# -------------------------------------------------------------------- sftp


def test_sshd_configuration_is_valid(host: InfraHost, declared: Host) -> None:
    _only(declared, "transfer")
    result = host.run("/usr/sbin/sshd -t")
    assert result.rc == 0, result.stderr


def test_sshd_has_the_partners_match_block(host: InfraHost, declared: Host) -> None:
    _only(declared, "transfer")
    dropin = host.file(SFTP_DROPIN)
    assert (dropin.user, dropin.mode) == ("root", 0o644)
    assert f"Match Group {SFTP_GROUP}\n" in dropin.content_string


def test_partners_get_sftp_only_in_their_chroot(
    host: InfraHost, declared: Host, partners: list[dict[str, Any]]
) -> None:
    _only(declared, "transfer")
    assert partners, "no sftp_partners declared"
    for partner in partners:
        name = partner["name"]
        effective = host.check_output(
            "/usr/sbin/sshd -T -C user=%s,host=partner.example,addr=192.0.2.10", name
        ).splitlines()
        assert f"chrootdirectory {SFTP_ROOT}/%u" in effective
        assert f"authorizedkeysfile {SFTP_KEYS}/%u" in effective
        assert "forcecommand internal-sftp -l INFO -f AUTHPRIV -u 0027 -d /" in effective
        assert "disableforwarding yes" in effective
        assert "permittty no" in effective
        assert "authenticationmethods publickey" in effective
        assert f"allowgroups {SFTP_GROUP}" in effective
    # the Match block does not reach the automation account
    automation = host.check_output(
        "/usr/sbin/sshd -T -C user=gestic,host=admin.example,addr=192.0.2.11"
    ).splitlines()
    assert "forcecommand none" in automation
    assert "chrootdirectory none" in automation


def _collected(model: Model) -> dict[tuple[str, str], str]:
    """(partner, folder) -> processed folder, for each inbox the bots take files from."""
    if model.rpa is None:
        return {}
    return {(i.partner, i.folder): i.processed for i in model.rpa.intake.inboxes.values()}


def test_partner_chroots_ownership_and_permissions(
    host: InfraHost, declared: Host, partners: list[dict[str, Any]], model: Model
) -> None:
    _only(declared, "transfer")
    collected = _collected(model)
    root = host.file(SFTP_ROOT)
    assert (root.user, root.group, root.mode) == ("root", "root", 0o755)
    for partner in partners:
        name = partner["name"]
        account = host.user(name)
        assert account.shell == "/usr/sbin/nologin"
        assert SFTP_GROUP in account.groups
        assert account.home == f"{SFTP_ROOT}/{name}"
        chroot = host.file(f"{SFTP_ROOT}/{name}")
        assert (chroot.user, chroot.group, chroot.mode) == ("root", "root", 0o755)
        directories = partner.get("directories") or [
            {"name": "entrada", "access": "write"},
            {"name": "salida", "access": "read"},
        ]
        for directory in directories:
            d = host.file(f"{SFTP_ROOT}/{name}/{directory['name']}")
            owner = name if directory["access"] == "write" else "root"
            mode = 0o770 if (name, directory["name"]) in collected else 0o750  # the collector's
            assert (d.user, d.group, d.mode) == (owner, name, mode), d.path
        log_socket = host.file(f"{SFTP_ROOT}/{name}/dev/log")
        assert log_socket.is_socket, f"no syslog socket in {name}'s chroot: transfers unlogged"


def test_the_bots_collector_gets_sftp_only_over_the_partners_it_takes_from(
    host: InfraHost, declared: Host, model: Model
) -> None:
    _only(declared, "transfer")
    if model.rpa is None or not model.rpa.intake.inboxes:
        pytest.skip("no inboxes declared (gestic_rpa.intake)")
    account = model.rpa.intake.account
    effective = host.check_output(
        "/usr/sbin/sshd -T -C user=%s,host=bots.example,addr=192.0.2.12", account
    ).splitlines()
    assert f"chrootdirectory {SFTP_ROOT}" in effective
    assert "forcecommand internal-sftp -l INFO -f AUTHPRIV -u 0027 -d /" in effective
    assert "disableforwarding yes" in effective
    assert "authenticationmethods publickey" in effective
    user = host.user(account)
    assert user.shell == "/usr/sbin/nologin"
    assert SFTP_GROUP not in user.groups  # not a partner: never retired as one
    for (partner, _folder), processed in _collected(model).items():
        assert partner in user.groups
        d = host.file(f"{SFTP_ROOT}/{partner}/{processed}")
        assert (d.user, d.group, d.mode) == (account, partner, 0o750), d.path
    assert host.file(f"{SFTP_ROOT}/dev/log").is_socket, "collector's transfers unlogged"


def test_partner_keys_are_root_owned_and_complete(
    host: InfraHost, declared: Host, partners: list[dict[str, Any]]
) -> None:
    _only(declared, "transfer")
    for partner in partners:
        keys = host.file(f"{SFTP_KEYS}/{partner['name']}")
        assert (keys.user, keys.group, keys.mode) == ("root", "root", 0o644)
        lines = [ln for ln in keys.content_string.splitlines() if not ln.startswith("#")]
        assert lines == [f"restrict {k.strip()}" for k in partner["public_keys"]]
