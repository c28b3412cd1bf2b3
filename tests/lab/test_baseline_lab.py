"""The baseline role on the real lab: SSH groups, lockout, password quality, drift, safety guard,
the switch of one control.

Each test changes one host and puts it back (try/finally), so the session's lab stays converged
to the repository's inventory.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any

from gestic.model import load_model
from gestic.tools.testinfra import run_verify

from ..paths import LAB_INVENTORY
from .labkit import ROOT, Lab, converge, login_as, run_on

HOST = "web-a1"
PROBE = "hbprobe"  # a throwaway account, removed by every test that creates it


def _root(lab: Lab, *argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `argv` as root on the test host (through the automation account and sudo)."""
    command = " ".join(shlex.quote(a) for a in ("sudo", *argv))
    return run_on(lab.ctx, HOST, command, timeout=180, stdin=stdin)


def _ssh(lab: Lab, command: str) -> str:
    """Run a shell command as root on the test host; its output (it must succeed)."""
    proc = _root(lab, "sh", "-c", command)
    if proc.returncode != 0:
        raise AssertionError(f"{HOST}: {command!r} exited {proc.returncode}: {proc.stderr}")
    return proc.stdout


def _remove_probe(lab: Lab) -> None:
    """Remove the probe account, and check it is gone. A login of its own may still be closing
    (its user manager holds a process for a moment, and userdel refuses a user in use), so its
    sessions are ended first and the removal is retried for a few seconds."""
    _ssh(
        lab,
        f"faillock --user {PROBE} --reset; "
        f"if id -u {PROBE} >/dev/null 2>&1; then loginctl terminate-user {PROBE} 2>/dev/null; "
        f"for i in $(seq 20); do userdel --remove {PROBE} 2>/dev/null && break; sleep 0.5; done; "
        f"fi; ! id -u {PROBE} >/dev/null 2>&1",
    )


def _login_as_probe(lab: Lab, key: Path) -> subprocess.CompletedProcess[str]:
    """An SSH login as the probe account with its own key (no shared connection)."""
    return login_as(lab.ctx, HOST, PROBE, key)


def test_only_members_of_the_allowed_groups_log_in(lab: Lab, tmp_path: Path) -> None:
    key = tmp_path / "probe_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    public = key.with_suffix(".pub").read_text().strip()
    try:
        _ssh(
            lab,
            f"useradd --create-home --shell /bin/bash {PROBE} && "
            f"install -d -m 700 -o {PROBE} -g {PROBE} /home/{PROBE}/.ssh && "
            f"echo '{public}' > /home/{PROBE}/.ssh/authorized_keys && "
            f"chown {PROBE}: /home/{PROBE}/.ssh/authorized_keys && "
            f"chmod 600 /home/{PROBE}/.ssh/authorized_keys",
        )
        refused = _login_as_probe(lab, key)
        assert refused.returncode != 0, "a user outside AllowGroups logged in"
        assert "Permission denied" in refused.stderr
        _ssh(lab, f"usermod --append --groups ssh-users {PROBE}")
        allowed = _login_as_probe(lab, key)
        assert allowed.returncode == 0, allowed.stderr
        assert allowed.stdout.strip() == PROBE
    finally:
        _remove_probe(lab)


# `su` to an account as an unprivileged user (nobody), once per password given, through a pty:
# su reads the password from its terminal. Prints each attempt's exit code.
_SU_ATTEMPTS = textwrap.dedent(
    """
    import os, pty, sys

    def attempt(user, password):
        pid, fd = pty.fork()
        if pid == 0:
            os.execvp("runuser", ["runuser", "-u", "nobody", "--", "su", "-c", "true", user])
        out = b""
        while b"assword" not in out:
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # su ended without asking (a locked account)
                chunk = b""
            if not chunk:
                break
            out += chunk
        if b"assword" in out:
            os.write(fd, password.encode() + b"\\n")
        while True:
            try:
                if not os.read(fd, 1024):
                    break
            except OSError:
                break
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])

    print(" ".join(str(attempt(sys.argv[1], p)) for p in sys.argv[2:]))
    """
)


def _su(lab: Lab, *passwords: str) -> list[int]:
    """Exit codes of `su` to the probe account, one attempt per password."""
    proc = _root(lab, "python3", "-", PROBE, *passwords, stdin=_SU_ATTEMPTS)
    assert proc.returncode == 0, proc.stderr
    return [int(code) for code in proc.stdout.split()]


def test_repeated_failed_logins_lock_the_account(lab: Lab) -> None:
    deny = int(_ssh(lab, "sed -n 's/^deny = //p' /etc/security/faillock.conf").strip())
    password = "Rq7#vNw2pL9x!"
    try:
        _ssh(lab, f"useradd --create-home {PROBE} && echo '{PROBE}:{password}' | chpasswd")
        assert _su(lab, password) == [0], "su with the right password failed before any failure"
        codes = _su(lab, *["wrong-password"] * deny, password)
        assert codes[:-1] == [1] * deny, codes
        assert codes[-1] != 0, "the right password still worked after the lockout"
        tally = _ssh(lab, f"faillock --user {PROBE}").splitlines()[2:]  # user line, header
        assert len(tally) >= deny, tally
    finally:
        _remove_probe(lab)


def test_weak_passwords_are_refused(lab: Lab) -> None:
    try:
        _ssh(lab, f"useradd {PROBE}")
        for weak in ("Short1!", "alllowercaseletters", "Abcdefgh12345", f"{PROBE}Xy7#kq9Lmv"):
            out = _root(lab, "chpasswd", stdin=f"{PROBE}:{weak}\n")
            assert out.returncode != 0, f"weak password {weak!r} was accepted"
            assert "BAD PASSWORD" in out.stderr, out.stderr
        strong = _root(lab, "chpasswd", stdin=f"{PROBE}:Rq7#vNw2pL9x!\n")
        assert strong.returncode == 0, strong.stderr
    finally:
        _remove_probe(lab)


def test_converge_repairs_drift_and_check_mode_reports_it(lab: Lab) -> None:
    ctx = lab.ctx
    dropin = "/etc/ssh/sshd_config.d/00-gestic-baseline.conf"
    try:
        _ssh(lab, f"sed -i 's/^X11Forwarding no/X11Forwarding yes/' {dropin}")
        _ssh(lab, r"sed -i 's/^PASS_MAX_DAYS\t.*/PASS_MAX_DAYS\t99999/' /etc/login.defs")
        _ssh(lab, "rm /etc/issue.net")
        check = converge(ctx, check=True, limit=HOST, tags="baseline")
        assert check.ok
        assert check.changed >= 3, check.changed_tasks
        assert "X11Forwarding yes" in _ssh(lab, f"cat {dropin}"), "--check changed the host"
        repair = converge(ctx, limit=HOST, tags="baseline")
        assert repair.ok
        assert repair.changed >= 3, repair.changed_tasks
        effective = _ssh(lab, "/usr/sbin/sshd -T")
        assert "x11forwarding no" in effective
        assert "PASS_MAX_DAYS\t90" in _ssh(lab, "cat /etc/login.defs")
        assert "ICETEX" in _ssh(lab, "cat /etc/issue.net")
    finally:
        again = converge(ctx, limit=HOST, tags="baseline")
    assert again.ok
    assert again.changed == 0, again.changed_tasks


def _failed_tasks(lab: Lab, extravars: dict[str, Any]) -> dict[str, list[str]]:
    failed: dict[str, list[str]] = {}
    converge(lab.ctx, limit=HOST, tags="baseline", extravars=extravars, failed=failed)
    return failed


def test_a_policy_locking_out_the_automation_account_is_refused(lab: Lab) -> None:
    before = _ssh(lab, "cat /etc/ssh/sshd_config.d/00-gestic-baseline.conf")
    failed = _failed_tasks(lab, {"baseline_ssh_allow_groups": ["ssh-users"]})
    (message,) = failed[HOST]
    assert message.startswith(
        "GBS-4.1 | SSH | Refuse an SSH policy that would lock the automation account out"
    )
    assert "Ansible could no longer log in" in message
    assert _ssh(lab, "cat /etc/ssh/sshd_config.d/00-gestic-baseline.conf") == before
    assert converge(lab.ctx, limit=HOST, tags="baseline").ok  # still reachable


def test_a_wrong_setting_type_stops_the_role_before_any_task(lab: Lab) -> None:
    failed = _failed_tasks(lab, {"baseline_ssh_max_auth_tries": "several"})
    (message,) = failed[HOST]
    assert "baseline_ssh_max_auth_tries" in message
    assert "int" in message


def test_an_unknown_control_id_stops_the_role_before_any_task(lab: Lab) -> None:
    failed = _failed_tasks(lab, {"baseline_controls_disabled": ["GBS-9.9"]})
    (message,) = failed[HOST]
    assert message.startswith("Refuse to disable a control the catalogue does not know")
    assert "GBS-9.9" in message


def test_a_disabled_control_is_left_alone_and_verify_reports_it(lab: Lab, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory"
    shutil.copytree(LAB_INVENTORY, inventory)
    (inventory / "host_vars").mkdir()
    (inventory / "host_vars" / f"{HOST}.yml").write_text("baseline_controls_disabled: [GBS-3.1]\n")
    try:
        _ssh(lab, "rm /etc/issue.net")
        skipped = converge(lab.ctx, limit=HOST, tags="baseline", inventory=inventory)
        assert skipped.ok
        assert skipped.changed == 0, skipped.changed_tasks
        assert _root(lab, "test", "-e", "/etc/issue.net").returncode != 0, "GBS-3.1 ran"
        result = run_verify(
            checks_dir=ROOT / "verify" / "test_baseline.py",
            inventory=inventory,
            model=load_model(inventory, check_machine=False),
            access=lab.ctx.access,
            artifacts_dir=tmp_path / "verify",
            hosts=[HOST],
            stream=False,
        )
        assert result.ok, result.failed
        assert result.disabled == [f"GBS-3.1: {HOST}"]
        assert result.skipped == 1  # test_legal_banner_is_written, the only GBS-3.1 check
    finally:
        again = converge(lab.ctx, limit=HOST, tags="baseline")
    assert again.ok
    assert "ICETEX" in _ssh(lab, "cat /etc/issue.net")
