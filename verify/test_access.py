"""Access (Gestión de Accesos y Retiro de Servicios): people's accounts match the declarations.

On every host: the accounts declared for it exist with their uid, groups, keys, expiry and sudo;
declared accounts without access here (removed, or for other hosts) are absent or locked with
no keys, groups or processes; the automation account is intact; no undeclared local account;
the host's access record says the same.
"""

from __future__ import annotations

import json
from datetime import date, timedelta

from testinfra.host import Host as InfraHost

from gestic.lab.image import AUTOMATION_USER
from gestic.model import Host, Model

NOLOGIN = {"/usr/sbin/nologin", "/sbin/nologin", "/bin/false", "/usr/bin/false"}
RECORD = "/etc/gestic/access.json"


def _today(host: InfraHost) -> date:
    return date.fromisoformat(host.check_output("date +%F"))


def _shadow(host: InfraHost, name: str) -> list[str]:
    return str(host.check_output(f"getent shadow {name}")).split(":")


def _expiry(fields: list[str]) -> date | None:
    return date(1970, 1, 1) + timedelta(days=int(fields[7])) if fields[7] else None


def _supplementary(host: InfraHost, name: str) -> set[str]:
    primary = host.check_output(f"id -gn {name}")
    return set(host.check_output(f"id -nG {name}").split()) - {primary}


def _fingerprints(host: InfraHost, home: str) -> set[str]:
    keys = host.file(f"{home}/.ssh/authorized_keys")
    if not keys.exists:
        return set()
    out = host.run(f"ssh-keygen -l -E sha256 -f {keys.path}").stdout
    return {line.split()[1] for line in out.splitlines() if line.strip()}


def _sudo_rules(host: InfraHost, name: str) -> str:
    out = host.check_output(f"sudo -n -l -U {name}")
    return out if "may run the following commands" in out else ""


def _uid_range(host: InfraHost) -> tuple[int, int]:
    found = {"UID_MIN": 1000, "UID_MAX": 60000}
    for line in host.file("/etc/login.defs").content_string.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in found:
            found[parts[0]] = int(parts[1])
    return found["UID_MIN"], found["UID_MAX"]


def test_declared_accounts_have_their_access(host: InfraHost, declared: Host, model: Model) -> None:
    problems = []
    for acct in model.granted_on(declared.name):
        user = host.user(acct.username)
        if not user.exists:
            problems.append(f"{acct.username}: missing")
            continue
        fields = _shadow(host, acct.username)
        sudo_declared = any(model.access_groups[g].sudo for g in acct.groups)
        checks = {
            "uid": (user.uid, acct.uid),
            "login shell": (user.shell not in NOLOGIN, True),
            "groups": (_supplementary(host, acct.username), set(acct.groups)),
            "keys": (_fingerprints(host, user.home), set(acct.fingerprints)),
            "expiry": (_expiry(fields), acct.expires),
            "sudo": (bool(_sudo_rules(host, acct.username)), sudo_declared),
            "authorized_keys2": (host.file(f"{user.home}/.ssh/authorized_keys2").exists, False),
        }
        problems += [
            f"{acct.username}: {what} is {found!r}, declared {want!r}"
            for what, (found, want) in checks.items()
            if found != want
        ]
    assert not problems, "\n".join(problems)


def test_accounts_without_access_here_are_locked(
    host: InfraHost, declared: Host, model: Model
) -> None:
    granted = {a.username for a in model.granted_on(declared.name)}
    today = _today(host)
    problems = []
    for acct in model.accounts.values():
        user = host.user(acct.username)
        if acct.username in granted or not user.exists:
            continue
        fields = _shadow(host, acct.username)
        expiry = _expiry(fields)
        if not fields[1].startswith("!"):
            problems.append(f"{acct.username}: password not locked")
        if user.shell not in NOLOGIN:
            problems.append(f"{acct.username}: login shell {user.shell}")
        if expiry is None or expiry > today:
            problems.append(f"{acct.username}: account not expired ({expiry})")
        if groups := _supplementary(host, acct.username):
            problems.append(f"{acct.username}: still in groups {sorted(groups)}")
        for name in ("authorized_keys", "authorized_keys2"):
            if host.file(f"{user.home}/.ssh/{name}").exists:
                problems.append(f"{acct.username}: {name} still present")
        if host.run(f"pgrep -u {acct.username}").rc == 0:
            problems.append(f"{acct.username}: processes still running")
        if _sudo_rules(host, acct.username):
            problems.append(f"{acct.username}: still has sudo")
    assert not problems, "\n".join(problems)


def test_automation_account_is_intact(host: InfraHost) -> None:
    user = host.user(AUTOMATION_USER)
    assert user.exists
    assert user.shell not in NOLOGIN
    fields = _shadow(host, AUTOMATION_USER)
    assert _expiry(fields) is None, "the automation account must never expire"
    assert _fingerprints(host, user.home), "the automation account lost its keys"
    assert "NOPASSWD: ALL" in _sudo_rules(host, AUTOMATION_USER)


def test_no_undeclared_local_accounts(host: InfraHost, model: Model) -> None:
    uid_min, uid_max = _uid_range(host)
    local = [
        line.split(":")[0]
        for line in host.check_output("getent passwd").splitlines()
        if uid_min <= int(line.split(":")[2]) <= uid_max
    ]
    undeclared = sorted(set(local) - set(model.accounts) - {AUTOMATION_USER})
    assert not undeclared, f"local accounts no declaration covers: {undeclared}"


def test_access_record_matches_the_host(host: InfraHost, declared: Host, model: Model) -> None:
    record = host.file(RECORD)
    assert record.exists
    assert (record.user, record.group, record.mode) == ("root", "root", 0o640)
    data = json.loads(record.content_string)
    assert data["host"] == declared.name
    assert data["undeclared"] == []
    found = {a["username"]: a for a in data["accounts"]}
    assert found[AUTOMATION_USER]["access"] == "automation"
    for acct in model.granted_on(declared.name):
        entry = found[acct.username]
        assert entry["access"] == "granted"
        assert not entry["locked"]
        assert {k["fingerprint"] for k in entry["keys"]} == set(acct.fingerprints)
        assert entry["groups"] == sorted(acct.groups)
    granted = {a.username for a in model.granted_on(declared.name)}
    for name, entry in found.items():
        if name in model.accounts and name not in granted:
            assert entry["access"] == "revoked"
            assert entry["locked"], f"{name} should be locked"
            assert entry["keys"] == []
