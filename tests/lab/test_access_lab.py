"""Access on the real lab: a person logs in, is removed (locked, keys revoked, sessions ended),
is granted access again, and an undeclared local account is reported but kept.

Each test converges edited copies of the inventory (tag `access`) and always converges the
repository's inventory again at the end, so the session lab is left as it was.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from gestic.environments.context import Context
from gestic.model import load_model
from gestic.procedures.access.records import collect_records
from gestic.procedures.access.report import build_report
from gestic.tools.testinfra import VerifyResult, run_verify

from ..paths import LAB_INVENTORY
from .labkit import ROOT, Lab, converge, login_argv, login_as, run_on

PERSON = "lgomez"  # declared present on the web and db hosts
CHECKS = ROOT / "verify"
END_SESSIONS = "End the login sessions of the removed accounts that still have processes"


def _accounts(inventory: Path) -> Path:
    return inventory / "group_vars" / "all" / "accounts.yml"


def _copy(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(LAB_INVENTORY, target)
    return target


def _replace(file: Path, old: str, new: str) -> None:
    text = file.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {file}"
    file.write_text(text.replace(old, new, 1), encoding="utf-8")


def _ssh(ctx: Context, host: str, command: str) -> subprocess.CompletedProcess[str]:
    """Run a command on a host as the automation account (sudo where the command says so)."""
    return run_on(ctx, host, command)


def _as_person(ctx: Context, host: str, key: Path, command: str) -> list[str]:
    return login_argv(ctx, host, PERSON, key, command)


def _login(ctx: Context, host: str, key: Path) -> subprocess.CompletedProcess[str]:
    return login_as(ctx, host, PERSON, key)


@pytest.fixture
def access_checks(tmp_path: Path) -> Path:
    """A directory with only the access checks (and their conftest): run_verify takes a dir."""
    checks = tmp_path / "checks"
    checks.mkdir()
    for name in ("conftest.py", "test_access.py"):
        (checks / name).symlink_to(CHECKS / name)
    return checks


def _verify_access(
    ctx: Context, checks: Path, inventory: Path, hosts: list[str] | None = None
) -> VerifyResult:
    return run_verify(
        checks_dir=checks,
        inventory=inventory,
        model=load_model(inventory, check_machine=False),
        access=ctx.access,
        artifacts_dir=ctx.artifacts / "verify",
        hosts=hosts,
        stream=False,
    )


@pytest.fixture
def restore(lab: Lab) -> Iterator[Context]:
    """The lab's context; afterwards the repository's accesses are converged again."""
    try:
        yield lab.ctx
    finally:
        result = converge(lab.ctx, tags="access")
        assert result.ok, result.per_host


def _start_sessions(
    ctx: Context, hosts: list[str], key: Path, sessions: dict[str, subprocess.Popen[bytes]]
) -> None:
    """Log in as the person on every host and keep a session open (a running `sleep`)."""
    for host in hosts:
        assert _login(ctx, host, key).stdout.strip() == PERSON
        sessions[host] = subprocess.Popen(
            _as_person(ctx, host, key, "sleep 600"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    for host in hosts:
        for _ in range(30):
            if _ssh(ctx, host, f"pgrep -u {PERSON} -x sleep").returncode == 0:
                break
            time.sleep(1)
        else:
            pytest.fail(f"the session of {PERSON} on {host} did not start")


def _assert_removed(ctx: Context, host: str, key: Path) -> None:
    """Locked (password, shell, expiry), no groups, no keys, no processes, no login."""
    assert _ssh(ctx, host, f"pgrep -u {PERSON}").returncode == 1
    shadow = _ssh(ctx, host, f"sudo getent shadow {PERSON}").stdout.split(":")
    assert shadow[1].startswith("!")
    assert shadow[7] == "1"  # expired on 1970-01-02
    entry = _ssh(ctx, host, f"getent passwd {PERSON}").stdout.strip().split(":")
    assert entry[6] == "/usr/sbin/nologin"
    assert _ssh(ctx, host, f"id -Gn {PERSON}").stdout.split() == [PERSON]
    keys = _ssh(ctx, host, f"sudo test -e /home/{PERSON}/.ssh/authorized_keys")
    assert keys.returncode == 1, f"keys still present on {host}"
    denied = _login(ctx, host, key)
    assert denied.returncode == 255, denied
    assert "Permission denied" in denied.stderr


def _assert_regranted(ctx: Context, host: str, key: Path) -> None:
    assert _login(ctx, host, key).stdout.strip() == PERSON
    assert _ssh(ctx, host, f"id -Gn {PERSON}").stdout.split() == [PERSON, "ssh-users"]
    shadow = _ssh(ctx, host, f"sudo getent shadow {PERSON}").stdout.split(":")
    assert shadow[7] == str((date(2027, 3, 31) - date(1970, 1, 1)).days)
    assert _ssh(ctx, host, f"getent passwd {PERSON}").stdout.strip().endswith(":/bin/bash")


def _assert_report_confirms_removal(
    ctx: Context, inventory: Path, hosts: list[str], tmp_path: Path
) -> None:
    texts, errors = collect_records(
        inventory=inventory / "hosts.yml", access=ctx.access, artifacts_dir=tmp_path / "ansible"
    )
    assert errors == {}
    report = build_report(load_model(inventory, check_machine=False), texts, errors)
    assert report.critical == [], report.critical
    person = next(p for p in report.people if p.username == PERSON)
    assert person.hosts == {h: "locked" if h in hosts else "absent" for h in ctx.model.hosts}
    summary = report.summary()
    assert (summary["removed_accounts_found"], summary["removed_accounts_locked"]) == (4, 4)


def test_removal_locks_revokes_and_ends_sessions_then_regrant(
    restore: Context, access_checks: Path, tmp_path: Path
) -> None:
    ctx = restore
    key = tmp_path / "id_person"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", str(key)],
                   check=True)  # fmt: skip
    # 1. the person's declared keys plus one the test holds: they can log in
    granted = _copy(tmp_path, "granted")
    _replace(
        _accounts(granted),
        "lgomez@icetex.gov.co\n",
        f"lgomez@icetex.gov.co\n      - {key.with_suffix('.pub').read_text().strip()}\n",
    )
    hosts = ctx.model.hosts_of(ctx.model.accounts[PERSON])
    assert hosts == ["db-a1", "db-p1", "web-a1", "web-p1"]
    person_hosts = ",".join(hosts)  # the other hosts never get the account: not converged
    assert converge(ctx, tags="access", inventory=granted, limit=person_hosts).ok
    sessions: dict[str, subprocess.Popen[bytes]] = {}
    try:
        _start_sessions(ctx, hosts, key, sessions)
        # 2. removed (Retiro de Servicios): locked, keys revoked, sessions and processes ended
        removed = _copy(tmp_path, "removed")
        shutil.copy(_accounts(granted), _accounts(removed))
        _replace(
            _accounts(removed),
            "    ticket: REQ-2026-0215\n",
            f'    ticket: CHG-2026-999\n    state: removed\n    removed_on: "{date.today()}"\n',
        )
        first = converge(ctx, tags="access", inventory=removed, limit=person_hosts)
        assert first.ok, first.per_host
        ended = {
            t["host"]
            for t in first.changed_tasks
            if t["task"] in {END_SESSIONS, "Kill every remaining process of the removed accounts"}
        }
        assert ended == set(hosts)
        for host, session in sessions.items():
            assert session.wait(timeout=30) != 0, f"the session on {host} survived the removal"
        for host in hosts:
            _assert_removed(ctx, host, key)
        for host in sorted(set(ctx.model.hosts) - set(hosts)):
            assert _ssh(ctx, host, f"getent passwd {PERSON}").returncode == 2  # never created
        # a second run finds nothing to do: no sessions to end, nothing to lock
        again = converge(ctx, tags="access", inventory=removed, limit=person_hosts)
        assert again.ok
        assert again.changed == 0, again.changed_tasks
        # the checks agree with the removal, and catch the hosts against the old declaration
        assert _verify_access(ctx, access_checks, removed).ok
        stale = _verify_access(ctx, access_checks, LAB_INVENTORY)
        assert not stale.ok
        assert any("test_declared_accounts_have_their_access" in f for f in stale.failed)
        _assert_report_confirms_removal(ctx, removed, hosts, tmp_path)

        # 3. granted again (a real re-grant): shell, groups, expiry and keys come back
        regrant = converge(ctx, tags="access", inventory=granted, limit=person_hosts)
        assert regrant.ok, regrant.per_host
        for host in hosts:
            _assert_regranted(ctx, host, key)
    finally:
        for session in sessions.values():
            if session.poll() is None:
                session.kill()
                session.wait()
    # back to the repository's declaration (the test's key is revoked again)
    back = converge(ctx, tags="access")
    assert back.ok
    assert _login(ctx, "web-p1", key).returncode == 255
    assert _verify_access(ctx, access_checks, LAB_INVENTORY).ok


def test_undeclared_account_is_reported_not_deleted(restore: Context, access_checks: Path) -> None:
    ctx = restore
    host, name = "web-a1", "intruso"
    created = _ssh(ctx, host, f"sudo useradd -m -u 3100 -s /bin/bash {name}")
    assert created.returncode == 0, created.stderr
    try:
        result = converge(ctx, tags="access", limit=host)
        assert result.ok, result.per_host
        assert _ssh(ctx, host, f"getent passwd {name}").returncode == 0, "must not be deleted"
        record = _ssh(ctx, host, "sudo cat /etc/gestic/access.json").stdout
        texts = {host: record}
        report = build_report(ctx.model, texts)
        assert ("critical", "undeclared", host, name) in {
            (f.severity, f.code, f.host, f.username) for f in report.findings
        }
        found = _verify_access(ctx, access_checks, LAB_INVENTORY, hosts=[host])
        assert [f for f in found.failed if "test_no_undeclared_local_accounts" in f]
        assert [f for f in found.failed if "test_access_record_matches_the_host" in f]
    finally:
        removed = _ssh(ctx, host, f"sudo userdel -r {name}")
        assert removed.returncode == 0, removed.stderr
