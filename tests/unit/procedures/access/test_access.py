"""Access: the accounts model (good and bad declarations), the role's planning module, the report.

No lab here: the role's module is tested through its functions with made-up local accounts, and
the report from sample host records (tests/unit/data/access-*.json, taken from a lab and altered).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gestic.cli.main import cli
from gestic.errors import GesticError, ModelError
from gestic.model import Model, load_model
from gestic.model.schema import key_fingerprint
from gestic.procedures.access.records import parse_record, read_record_dir
from gestic.procedures.access.report import (
    build_report,
    report_json,
    revocation_issues,
    write_report,
)
from gestic.store.ledger import Ledger

from ....paths import LAB_INVENTORY, ROOT, UNIT_DATA

TODAY = date(2026, 11, 24)
DATA = UNIT_DATA
MODULE_PATH = ROOT / "playbooks" / "roles" / "access" / "library" / "gestic_access.py"
MRODRIGUEZ_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOHO38wZ5oSB1kJonB1Ra6QaDMItJGh3rgyptI3dER7Y "
    "mrodriguez@icetex.gov.co"
)
# the header of a private key, split so secret scanners do not flag this test (it holds no key)
FAKE_PRIVATE = "OPENSSH " + "PRIVATE"
LGOMEZ_KEY_BODY = "AAAAC3NzaC1lZDI1NTE5AAAAICVrNoRPVp0hjuw99zqPuhpRpqQ0arUZofYffzss5GQK"


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gestic_access_module", MODULE_PATH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


ga = _module()


def _lab_model(today: date = TODAY, root: Path = LAB_INVENTORY) -> Model:
    return load_model(root, routes=[], today=today)


def _accounts_file(root: Path) -> Path:
    return root / "group_vars" / "all" / "accounts.yml"


def _edit(file: Path, old: str, new: str) -> None:
    text = file.read_text(encoding="utf-8")
    assert old in text, f"fixture text {old!r} not in {file}"
    file.write_text(text.replace(old, new, 1), encoding="utf-8")


def _line_of(file: Path, needle: str) -> int:
    lines = file.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if needle in line)


def _problems(root: Path, today: date = TODAY) -> list[str]:
    with pytest.raises(ModelError) as info:
        load_model(root, routes=[], today=today)
    return info.value.problems


# --- the model ------------------------------------------------------------------------------


def test_lab_accounts_load() -> None:
    model = _lab_model()
    assert set(model.accounts) == {"mrodriguez", "lgomez", "cdiaz", "jperez"}
    assert [a.username for a in model.granted_on("svc-p1")] == ["mrodriguez", "cdiaz"]
    assert [a.username for a in model.granted_on("web-a1")] == ["mrodriguez", "lgomez"]
    assert model.hosts_of(model.accounts["cdiaz"]) == ["bkp-a1", "svc-p1"]
    jperez = model.accounts["jperez"]
    assert (jperez.state, jperez.removed_on, jperez.ticket) == (
        "removed",
        date(2026, 10, 31),
        "CHG-2026-118",
    )
    assert jperez.username not in {a.username for h in model.hosts for a in model.granted_on(h)}
    # the same fingerprint `ssh-keygen -l` prints for this key
    assert model.accounts["mrodriguez"].fingerprints[0] == (
        "SHA256:fVBbXLT2rO8lO/0hoN1e2/Amyg225fH7QkaSiR7dyRI"
    )
    assert model.access_groups["gestic-admins"].sudo
    assert not model.access_groups["ssh-users"].sudo
    assert model.warnings == ()


def test_production_accounts_load() -> None:
    model = load_model(LAB_INVENTORY.parent / "production", check_machine=False, today=TODAY)
    assert "web-p2" in model.hosts_of(model.accounts["lgomez"])
    assert [a.username for a in model.granted_on("db-p1")] == ["mrodriguez", "afranco"]


def test_key_fingerprint_of_a_known_key() -> None:
    assert key_fingerprint(MRODRIGUEZ_KEY) == "SHA256:fVBbXLT2rO8lO/0hoN1e2/Amyg225fH7QkaSiR7dyRI"


def _rsa_key(bits: int) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key()
    return key.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()


BAD_ACCOUNTS = [
    pytest.param(
        "hosts: [backup, svc-p1]",
        "hosts: [backup, svc-p9]",
        "gestic_accounts.cdiaz.hosts.1: unknown host or host group 'svc-p9'",
        "hosts: [backup, svc-p9]",
        id="unknown-host",
    ),
    pytest.param(
        LGOMEZ_KEY_BODY,
        LGOMEZ_KEY_BODY[:-6],
        "gestic_accounts.lgomez.keys.0: Value error, not a valid ssh-ed25519 public key",
        LGOMEZ_KEY_BODY[:-6],
        id="truncated-key",
    ),
    pytest.param(
        f"ssh-ed25519 {LGOMEZ_KEY_BODY}",
        f"ssh-rsa {LGOMEZ_KEY_BODY}",
        "gestic_accounts.lgomez.keys.0: Value error, not a valid ssh-rsa public key",
        f"ssh-rsa {LGOMEZ_KEY_BODY}",
        id="key-type-mismatch",
    ),
    pytest.param(
        f"ssh-ed25519 {LGOMEZ_KEY_BODY}",
        f"ssh-dss {LGOMEZ_KEY_BODY}",
        "key type 'ssh-dss' is not accepted",
        f"ssh-dss {LGOMEZ_KEY_BODY}",
        id="dsa-key",
    ),
    pytest.param(
        f"- ssh-ed25519 {LGOMEZ_KEY_BODY} lgomez@icetex.gov.co",
        f'- "-----BEGIN {FAKE_PRIVATE} KEY----- b3BlbnNzaC1rZXktdjEAAAAA"',
        "this is a PRIVATE key: never put it in the inventory",
        f"BEGIN {FAKE_PRIVATE} KEY",
        id="private-key",
    ),
    pytest.param(
        'expires: "2027-03-31"',
        "expires: 31/03/2027",
        "gestic_accounts.lgomez.expires: Value error, expected a date written YYYY-MM-DD",
        "expires: 31/03/2027",
        id="date-format",
    ),
    pytest.param(
        'expires: "2027-03-31"',
        'expires: "2027-02-30"',
        "gestic_accounts.lgomez.expires: Input should be a valid date",
        'expires: "2027-02-30"',
        id="impossible-date",
    ),
    pytest.param(
        'expires: "2027-03-31"',
        "expires: 2027-03-31",
        "gestic_accounts.lgomez.expires: an unquoted YAML date: quote it",
        "expires: 2027-03-31",
        id="unquoted-date",
    ),
    pytest.param(
        "uid: 2003",
        "uid: 2002  # taken",
        "gestic_accounts.cdiaz.uid: uid 2002 is also used by account 'lgomez'",
        "# taken",
        id="duplicate-uid",
    ),
    pytest.param(
        "uid: 2003",
        "uid: 999",
        "gestic_accounts.cdiaz.uid: Input should be greater than or equal to 1000",
        "uid: 999",
        id="system-uid",
    ),
    pytest.param(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBi7MJPAIyvkTeQ8U1qtO0+Sx57b5dmH636YVpeuTLsU",
        f"ssh-ed25519 {LGOMEZ_KEY_BODY}",
        "gestic_accounts.cdiaz.keys.0: key SHA256:UnAHGpVdgEfvIHi3y042CVpusM9Tk+bD4WFrFMw6Fns "
        "is declared also for account 'lgomez'",
        f"ssh-ed25519 {LGOMEZ_KEY_BODY} cdiaz",
        id="shared-key",
    ),
    pytest.param(
        '    removed_on: "2026-10-31"\n',
        "",
        "gestic_accounts.jperez: Value error, a removed account needs removed_on",
        "  jperez:",
        id="removed-without-date",
    ),
    pytest.param(
        "    uid: 2003\n",
        "",
        "gestic_accounts.cdiaz: Value error, a present account needs: uid",
        "  cdiaz:",
        id="present-without-uid",
    ),
    pytest.param(
        '    expires: "2027-01-31"\n',
        '    expires: "2027-01-31"\n    removed_on: "2026-11-01"\n',
        "gestic_accounts.cdiaz: Value error, removed_on is only for accounts with state: removed",
        "  cdiaz:",
        id="present-with-removal-date",
    ),
    pytest.param(
        "  jperez:\n",
        "  gestic:\n",
        "gestic_accounts.gestic: 'gestic' is the automation account",
        "  gestic:",
        id="automation-account",
    ),
    pytest.param(
        "groups: [ssh-users]\n    hosts: [web, db]",
        "groups: [ssh-users, wheel]\n    hosts: [web, db]",
        "gestic_accounts.lgomez.groups.1: unknown group 'wheel' (declare it in "
        "gestic_access_groups)",
        "groups: [ssh-users, wheel]",
        id="unknown-group",
    ),
    pytest.param(
        "    uid: 2003\n",
        "    uid: 2003\n    username: camilo\n",
        "gestic_accounts.cdiaz.username: username 'camilo' differs from its key",
        "username: camilo",
        id="username-mismatch",
    ),
    pytest.param(
        "    uid: 2003\n",
        "    uid: 2003\n    password: secreto\n",
        "gestic_accounts.cdiaz.password: Extra inputs are not permitted",
        "password: secreto",
        id="unknown-field",
    ),
    pytest.param(
        "    ticket: CHG-2026-118\n",
        "    ticket: '  '\n",
        "gestic_accounts.jperez.ticket: String should match pattern",
        "ticket: '  '",
        id="blank-ticket",
    ),
]


@pytest.mark.parametrize(("old", "new", "message", "needle"), BAD_ACCOUNTS)
def test_bad_account_names_file_line_and_key(
    lab_inventory: Path, old: str, new: str, message: str, needle: str
) -> None:
    accounts = _accounts_file(lab_inventory)
    _edit(accounts, old, new)
    problems = _problems(lab_inventory)
    line = _line_of(accounts, needle)
    assert any(p.startswith(f"{accounts}:{line}: ") and message in p for p in problems), problems


def test_weak_rsa_key_is_rejected_and_strong_accepted(lab_inventory: Path) -> None:
    accounts = _accounts_file(lab_inventory)
    _edit(accounts, f"ssh-ed25519 {LGOMEZ_KEY_BODY}", _rsa_key(2048))
    (problem,) = _problems(lab_inventory)
    assert "gestic_accounts.lgomez.keys.0: Value error, ssh-rsa key of 2048 bits" in problem
    strong = _rsa_key(3072)
    accounts.write_text(accounts.read_text().replace(_line_with(accounts, "ssh-rsa"), strong))
    model = _lab_model(root=lab_inventory)
    assert model.accounts["lgomez"].keys == (strong,)


def _line_with(file: Path, needle: str) -> str:
    line = next(ln for ln in file.read_text().splitlines() if needle in ln)
    return line.split("- ", 1)[1]


def test_duplicate_username_is_reported_with_line(lab_inventory: Path) -> None:
    accounts = _accounts_file(lab_inventory)
    _edit(accounts, "  jperez:\n", "  lgomez:\n")
    (problem,) = _problems(lab_inventory)
    assert problem.startswith(f"{accounts}:{_line_of(accounts, 'name: Juan') - 1}: ")
    assert "duplicate key 'lgomez'" in problem


def test_removal_date_in_the_future_is_an_error() -> None:
    problems = _problems(LAB_INVENTORY, today=date(2026, 10, 30))
    accounts = _accounts_file(LAB_INVENTORY)
    line = _line_of(accounts, 'removed_on: "2026-10-31"')
    assert problems == [
        f"{accounts}:{line}: gestic_accounts.jperez.removed_on: removal date 2026-10-31 is in the "
        "future: keep the account present with expires: 2026-10-31 until then"
    ]


def test_expired_present_account_is_a_warning_not_an_error() -> None:
    model = _lab_model(today=date(2027, 4, 1))
    accounts = _accounts_file(LAB_INVENTORY)
    cdiaz, lgomez = (
        _line_of(accounts, f'expires: "{day}"') for day in ("2027-01-31", "2027-03-31")
    )
    expected = {
        f"{accounts}:{cdiaz}: gestic_accounts.cdiaz.expires: "
        "account expired on 2027-01-31: renew it (expires) or remove it (state: removed)",
        f"{accounts}:{lgomez}: gestic_accounts.lgomez.expires: "
        "account expired on 2027-03-31: renew it (expires) or remove it (state: removed)",
    }
    assert set(model.warnings) == expected
    assert _lab_model(today=date(2027, 1, 30)).warnings == ()


def test_inventory_without_accounts_still_loads(lab_inventory: Path) -> None:
    _accounts_file(lab_inventory).unlink()
    model = _lab_model(root=lab_inventory)
    assert model.accounts == {}
    assert model.granted_on("web-p1") == []


# --- the role's module (planning, reading) ----------------------------------------------------


def _raw_accounts() -> dict[str, Any]:
    """gestic_accounts as Ansible hands it to the module (YAML dates as dates)."""
    data = yaml.safe_load(_accounts_file(LAB_INVENTORY).read_text(encoding="utf-8"))
    accounts: dict[str, Any] = data["gestic_accounts"]
    return accounts


def _local(name: str, uid: int, **kw: Any) -> Any:
    defaults: dict[str, Any] = {
        "gecos": name,
        "home": f"/home/{name}",
        "shell": "/bin/bash",
    }
    return ga.Local(username=name, uid=uid, **{**defaults, **kw})


SVC_SCOPE = ["principal", "logs", "transfer", "bots", "svc-p1"]


def _plan(locals_: dict[str, Any], **kw: Any) -> Any:
    args: dict[str, Any] = {
        "accounts": _raw_accounts(),
        "scope": SVC_SCOPE,
        "host": "svc-p1",
        "automation_user": "gestic",
        "locals_": locals_,
        "uid_min": 1000,
        "today": TODAY,
        "now": datetime(2026, 11, 24, 12, 0, tzinfo=UTC),
    }
    return ga.plan(**{**args, **kw})


def test_plan_grants_locks_and_reports() -> None:
    locals_ = {
        "gestic": _local("gestic", 990, sudo_rules=("(ALL : ALL) NOPASSWD: ALL",)),
        "mrodriguez": _local("mrodriguez", 2001, groups=("ssh-users",)),
        "lgomez": _local("lgomez", 2002, processes=2),  # present, but not for svc-p1
        "jperez": _local("jperez", 2004),  # removed
        "intruso": _local("intruso", 3000),  # no declaration
    }
    result = _plan(locals_)
    assert result.problems == []
    assert [(g["username"], g["exists"]) for g in result.grant] == [
        ("cdiaz", False),
        ("mrodriguez", True),
    ]
    mrodriguez = result.grant[1]
    assert mrodriguez["groups"] == ["gestic-admins", "ssh-users"]
    assert mrodriguez["expires"] == (date(2027, 6, 30) - date(1970, 1, 1)).days * 86400
    assert mrodriguez["comment"] == "María Rodríguez"
    assert len(mrodriguez["keys"]) == 2
    assert [r["username"] for r in result.revoke] == ["jperez", "lgomez"]
    assert result.end_sessions == ["lgomez"]
    assert result.undeclared == ["intruso"]
    kinds = {a["username"]: a["access"] for a in result.record["accounts"]}
    assert kinds == {
        "gestic": "automation",
        "intruso": "undeclared",
        "jperez": "revoked",
        "lgomez": "revoked",
        "mrodriguez": "granted",
    }
    lgomez = next(a for a in result.record["accounts"] if a["username"] == "lgomez")
    assert lgomez["processes"] == 2
    assert lgomez["state"] == "present"  # declared present, but for other hosts
    assert result.record["undeclared"] == ["intruso"]
    assert result.record["updated_at"] == "2026-11-24T12:00:00+00:00"


def test_plan_ages_passwords_only_where_there_is_one() -> None:
    locals_ = {
        "mrodriguez": _local("mrodriguez", 2001, password_locked=False, password_set=True),
        "cdiaz": _local("cdiaz", 2003, password_locked=True, password_set=True),  # was removed
    }
    grant = {g["username"]: g["password_set"] for g in _plan(locals_).grant}
    assert grant == {"mrodriguez": True, "cdiaz": False}
    assert ga.password_state("$y$j9T$salt$hash") == (False, True)
    assert ga.password_state("!$y$j9T$salt$hash") == (True, True)  # usermod -L
    assert ga.password_state("!") == (True, False)  # useradd without a password
    assert ga.password_state("*") == (True, False)
    assert ga.password_state("") == (True, False)


def test_plan_stops_on_clashes_with_the_host() -> None:
    accounts = {
        **_raw_accounts(),
        "postgres": {"hosts": ["all"], "state": "removed", "ticket": "X-1"},
        "gestic": {"hosts": ["all"], "state": "removed", "ticket": "X-2"},
    }
    locals_ = {
        "mrodriguez": _local("mrodriguez", 2999),  # declared uid 2001
        "otro": _local("otro", 2003),  # holds cdiaz's uid
        "postgres": _local("postgres", 110),
    }
    result = _plan(locals_, accounts=accounts)
    assert sorted(result.problems) == [
        "'gestic' is the automation account: it is never declared",
        "'mrodriguez' has uid 2999 on svc-p1 but is declared with uid 2001",
        "'postgres' is a system account on svc-p1 (uid 110): the access role manages people's "
        "accounts only",
        "uid 2003 of 'cdiaz' belongs to 'otro' on svc-p1",
    ]
    assert result.grant == []
    assert result.revoke == []


def test_record_keeps_its_date_until_something_changes() -> None:
    locals_ = {"mrodriguez": _local("mrodriguez", 2001)}
    first = _plan(locals_).record
    later = datetime(2026, 12, 1, tzinfo=UTC)
    assert _plan(locals_, previous=first, now=later).record == first
    changed = {"mrodriguez": _local("mrodriguez", 2001, groups=("ssh-users",))}
    again = _plan(changed, previous=first, now=later).record
    assert again["updated_at"] == "2026-12-01T00:00:00+00:00"


def test_locked_needs_password_shell_and_expiry() -> None:
    past = date(1970, 1, 2)
    locked = _local("x", 2000, shell="/usr/sbin/nologin", password_locked=True, expires=past)
    assert locked.locked(TODAY)
    assert not _local("x", 2000, shell="/bin/bash", expires=past).locked(TODAY)
    assert not _local("x", 2000, shell="/usr/sbin/nologin", expires=None).locked(TODAY)
    unlocked_pw = _local("x", 2000, shell="/usr/sbin/nologin", password_locked=False, expires=past)
    assert not unlocked_pw.locked(TODAY)


def test_readers_parse_what_the_tools_print(tmp_path: Path) -> None:
    assert ga.uid_range("UID_MIN\t\t 1000\nUID_MAX 60000\n# UID_MIN 5\n") == (1000, 60000)
    assert ga.uid_range("") == (1000, 60000)
    shadow = ga.parse_shadow("a:!:20781:1:90:7::1:\nb:$y$hash:20781:0:99999:7:::\nc:*:1::::::\n")
    assert shadow == {"a": ("!", date(1970, 1, 2)), "b": ("$y$hash", None), "c": ("*", None)}
    keygen = (
        "256 SHA256:IqvZWVWay9TgIWJJwL4do3qbBXOY2/m1JxRtj6CN664 cdiaz@x y (ED25519)\n"
        "3072 SHA256:abc no comment (RSA)\n"
    )
    assert ga.parse_fingerprints(keygen) == [
        {"fingerprint": "SHA256:IqvZWVWay9TgIWJJwL4do3qbBXOY2/m1JxRtj6CN664",
         "type": "ED25519", "comment": "cdiaz@x y"},
        {"fingerprint": "SHA256:abc", "type": "RSA", "comment": "no comment"},
    ]  # fmt: skip
    allowed = (
        "Matching Defaults entries for gestic on svc-p1:\n    env_reset, use_pty\n\n"
        "User gestic may run the following commands on svc-p1:\n"
        "    (ALL : ALL) NOPASSWD: ALL\n"
    )
    assert ga.parse_sudo(allowed) == ["(ALL : ALL) NOPASSWD: ALL"]
    assert ga.parse_sudo("User nobody is not allowed to run sudo on svc-p1.\n") == []
    proc = tmp_path / "proc"
    for pid, uids in (("1", "0\t0\t0\t0"), ("20", "2002\t2002\t2002\t2002"),
                      ("21", "0\t2002\t0\t0"), ("self", "2002\t2002\t2002\t2002")):  # fmt: skip
        (proc / pid).mkdir(parents=True)
        (proc / pid / "status").write_text(f"Name:\tx\nUid:\t{uids}\n")
    assert ga.count_processes(2002, str(proc)) == 2
    assert ga.count_processes(2003, str(proc)) == 0


# --- the report -----------------------------------------------------------------------------


def _sample_texts() -> dict[str, str]:
    return {
        p.name.removeprefix("access-").removesuffix(".json"): p.read_text(encoding="utf-8")
        for p in sorted(DATA.glob("access-*.json"))
    }


def _findings(report: Any) -> set[tuple[str, str, str, str | None]]:
    return {(f.severity, f.code, f.host, f.username) for f in report.findings}


def test_report_flags_incomplete_removals_undeclared_accounts_and_drift() -> None:
    report = build_report(_lab_model(), _sample_texts(), {"bkp-a1": "UNREACHABLE"}, today=TODAY)
    assert _findings(report) == {
        ("critical", "no_record", "bkp-a1", None),
        ("critical", "revocation_incomplete", "db-p1", "jperez"),
        ("critical", "undeclared", "web-p1", "tmp-proveedor"),
        ("critical", "extra_keys", "svc-p1", "cdiaz"),
        ("critical", "extra_groups", "svc-p1", "cdiaz"),
        ("critical", "unexpected_sudo", "svc-p1", "cdiaz"),
        ("warning", "not_applied", "db-a1", "lgomez"),
        ("warning", "undeclared_locked", "svc-p1", "antiguo"),
    }
    incomplete = next(f for f in report.findings if f.code == "revocation_incomplete")
    assert incomplete.params["issues"] == ["not_locked", "keys", "groups"]
    assert incomplete.message("es") == (
        "retiro incompleto: no bloqueada, conserva llaves SSH, conserva grupos"
    )
    assert incomplete.message("en") == "removal incomplete: not locked, still has SSH keys, "  \
        "still in groups"  # fmt: skip
    assert report.findings[0].severity == "critical"
    assert report.summary() == {
        "hosts": 6,
        "hosts_recorded": 5,
        "people_with_access": 5,
        "removed_accounts_found": 2,
        "removed_accounts_locked": 1,
        "undeclared_accounts": 2,
        "findings": {"critical": 6, "warning": 2, "info": 0},
    }
    jperez = next(p for p in report.people if p.username == "jperez")
    assert jperez.hosts == {
        "db-p1": "not_locked",
        "svc-p1": "absent",
        "web-p1": "absent",
        "bkp-a1": "unknown",
        "db-a1": "absent",
        "web-a1": "locked",
    }
    assert [p.username for p in report.people if p.state == "undeclared"] == [
        "antiguo",
        "tmp-proveedor",
    ]


def test_report_warns_of_expiring_and_expired_accounts() -> None:
    soon = date(2027, 1, 10)
    report = build_report(_lab_model(soon), _sample_texts(), today=soon)
    expiring = [f for f in report.findings if f.code == "expiring"]
    assert [(f.host, f.username, f.params["days"]) for f in expiring] == [("svc-p1", "cdiaz", 21)]
    assert expiring[0].message("es") == "la cuenta vence el 2027-01-31 (en 21 días)"
    late = date(2027, 4, 1)
    report = build_report(_lab_model(late), _sample_texts(), today=late)
    expired = sorted((f.host, f.username) for f in report.findings if f.code == "expired")
    assert ("web-p1", "lgomez") in expired
    assert ("svc-p1", "cdiaz") in expired
    assert len(report.warnings) == 2  # the model's own warnings travel with the report


def test_report_rejects_records_it_cannot_trust() -> None:
    texts = _sample_texts()
    texts["web-p1"], texts["db-p1"] = texts["db-p1"], "not json"
    report = build_report(_lab_model(), texts, today=TODAY)
    errors = {h.name: h.error for h in report.hosts if h.record is None}
    assert errors["web-p1"] == "invalid record: record of host 'db-p1', expected 'web-p1'"
    assert str(errors["db-p1"]).startswith("invalid record: not JSON")
    assert errors["bkp-a1"] == "not collected"
    with pytest.raises(ValueError, match=r"accounts\[0\] \(x\): unknown access kind"):
        parse_record(
            json.dumps({"schema": 1, "host": "h", "undeclared": [],
                        "accounts": [{"username": "x", "access": "root"}]}),
            "h",
        )  # fmt: skip
    good = json.loads(_sample_texts()["web-a1"])
    good["accounts"][0]["expires"] = "31/12/2027"
    with pytest.raises(ValueError, match=r"accounts\[0\] \(gestic\): expires '31/12/2027'"):
        parse_record(json.dumps(good), "web-a1")
    with pytest.raises(ValueError, match="record schema 2"):
        parse_record(json.dumps({"schema": 2, "host": "h"}), "h")


def test_revocation_issues() -> None:
    assert revocation_issues({"locked": True, "keys": [], "groups": [], "sudo": False}) == []
    assert revocation_issues({"locked": True, "keys": [], "groups": [], "processes": 3}) == [
        "processes"
    ]


def test_report_files_in_spanish_and_english(tmp_path: Path) -> None:
    texts = _sample_texts()
    report = build_report(_lab_model(), texts, {"bkp-a1": "UNREACHABLE"}, today=TODAY)
    paths = write_report(report, tmp_path / "es", texts=texts)
    assert [p.name for p in paths] == [
        "access-report.json",
        "access-inventory.csv",
        "access-people.csv",
        "access-report.html",
        "records",
    ]
    data = json.loads((tmp_path / "es" / "access-report.json").read_text(encoding="utf-8"))
    # what the access review bot (robots/revision-accesos) reads
    web = {a["username"]: a for a in data["hosts"]["web-p1"]["accounts"]}
    assert (web["tmp-proveedor"]["uid"], web["tmp-proveedor"]["locked"]) == (2050, False)
    assert web["lgomez"]["groups"] == ["ssh-users"]
    assert data["hosts"]["bkp-a1"] == {
        "site": "alterno", "recorded": False, "error": "UNREACHABLE", "updated_at": None,
        "accounts": [], "undeclared": [],
    }  # fmt: skip
    assert {f["code"] for f in data["findings"]} >= {"revocation_incomplete", "undeclared"}
    rows = list(csv.DictReader((tmp_path / "es" / "access-inventory.csv").open(encoding="utf-8")))
    jperez = next(r for r in rows if r["host"] == "db-p1" and r["username"] == "jperez")
    assert (jperez["access"], jperez["locked"], jperez["findings"]) == (
        "revoked",
        "no",
        "revocation_incomplete",
    )
    people = list(csv.DictReader((tmp_path / "es" / "access-people.csv").open(encoding="utf-8")))
    lgomez = next(p for p in people if p["username"] == "lgomez")
    assert lgomez["hosts_with_access"] == "db-p1 web-p1 web-a1"
    assert (tmp_path / "es" / "records" / "access-web-p1.json").read_text() == texts["web-p1"]
    html = (tmp_path / "es" / "access-report.html").read_text(encoding="utf-8")
    assert '<html lang="es">' in html
    assert "Inventario de accesos a la plataforma tecnológica" in html
    assert "retiro incompleto: no bloqueada" in html
    assert "NO bloqueada" in html
    assert "<th>Llaves SSH (huella)</th>" in html
    write_report(report, tmp_path / "en", lang="en")
    english = (tmp_path / "en" / "access-report.html").read_text(encoding="utf-8")
    assert "Access inventory of the technology platform" in english
    assert "removal incomplete: not locked" in english
    assert not (tmp_path / "en" / "records").exists()


def test_report_escapes_what_hosts_wrote(tmp_path: Path) -> None:
    texts = _sample_texts()
    texts["web-p1"] = texts["web-p1"].replace("Soporte proveedor", "<script>alert(1)</script>")
    write_report(build_report(_lab_model(), texts, today=TODAY), tmp_path)
    html = (tmp_path / "access-report.html").read_text(encoding="utf-8")
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_unknown_language_writes_nothing(tmp_path: Path) -> None:
    report = build_report(_lab_model(), _sample_texts(), today=TODAY)
    with pytest.raises(GesticError, match="unknown language 'fr'"):
        write_report(report, tmp_path / "out", lang="fr")
    assert not (tmp_path / "out").exists()


def test_report_json_sorts_findings_by_severity() -> None:
    report = build_report(_lab_model(), _sample_texts(), {"bkp-a1": "UNREACHABLE"}, today=TODAY)
    severities = [f["severity"] for f in report_json(report, "en")["findings"]]
    assert severities == sorted(severities, key=["critical", "warning", "info"].index)


def _clean_record(model: Model, host: str) -> dict[str, Any]:
    """The record a host converged to the model would write (automation account aside)."""
    accounts = [
        {"username": a.username, "uid": a.uid, "name": a.name, "role": a.role,
         "access": "granted", "state": "present", "ticket": a.ticket, "groups": sorted(a.groups),
         "sudo": "gestic-admins" in a.groups, "sudo_rules": [], "shell": "/bin/bash",
         "password_locked": True, "expires": a.expires.isoformat() if a.expires else None,
         "keys": [{"fingerprint": f, "type": "ED25519", "comment": ""} for f in a.fingerprints],
         "locked": False}
        for a in model.granted_on(host)
    ]  # fmt: skip
    return {"schema": 1, "host": host, "updated_at": "2026-11-24T08:00:00+00:00",
            "accounts": accounts, "undeclared": []}  # fmt: skip


@pytest.fixture
def ledger_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    monkeypatch.setenv("GESTIC_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("GESTIC_LEDGER_URL", url)
    return url


@pytest.mark.usefixtures("ledger_url")
def test_cli_report_from_clean_records_succeeds(tmp_path: Path) -> None:
    model = _lab_model()
    records = tmp_path / "records"
    records.mkdir()
    for host in model.hosts:
        (records / f"access-{host}.json").write_text(json.dumps(_clean_record(model, host)))
    args = ["--inventory", str(LAB_INVENTORY), "access", "report", "--records", str(records)]
    result = CliRunner().invoke(cli, [*args, "--output", str(tmp_path / "out"), "--lang", "en"])
    assert result.exit_code == 0, result.output
    assert "6/6 hosts, 3 people with access, 0/0 removed accounts locked" in result.output
    html = (tmp_path / "out" / "access-report.html").read_text(encoding="utf-8")
    assert "No findings: the hosts match the declarations." in html
    assert read_record_dir(records, ["web-p1", "nope"]).keys() == {"web-p1"}


def test_cli_report_fails_on_critical_findings_and_records_it(
    tmp_path: Path, ledger_url: str
) -> None:
    args = ["--inventory", str(LAB_INVENTORY), "access", "report", "--records", str(DATA)]
    result = CliRunner().invoke(cli, [*args, "--output", str(tmp_path / "out")])
    assert isinstance(result.exception, GesticError), result.output
    assert "critical findings" in str(result.exception)
    assert (tmp_path / "out" / "access-report.html").is_file()
    (run,) = Ledger(ledger_url).runs(kind="access.report")
    assert run.status == "failed"
    assert run.target == "lab"
    assert run.details["source"] == str(DATA)
    assert {f["code"] for f in run.details["critical"]} >= {"no_record", "revocation_incomplete"}
    assert run.summary.startswith("5/6 hosts")
