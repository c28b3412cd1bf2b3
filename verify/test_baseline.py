"""Every host: baseline hardening (identity, time, updates, SSH, passwords, sudo, audit, banner).

The thresholds are the institution's policy (Guía de Contraseñas Seguras and the hardening
baseline), not the role's defaults: a host configured more strictly still passes.

Each check is marked with the id of the control it verifies (`control`, the catalogue in
playbooks/roles/baseline/vars/main.yml): the id goes into the results, and the check is skipped on
a host whose inventory disables the control (`baseline_controls_disabled`, see conftest.py).
"""

from __future__ import annotations

import re

import pytest
from testinfra.host import Host as InfraHost

from gestic.model import Host, Model

AUTOMATION_USER = "gestic"


def _in_container(host: InfraHost) -> bool:
    return bool(host.run("systemd-detect-virt --container").rc == 0)


def _sshd(host: InfraHost) -> dict[str, list[str]]:
    """sshd's effective settings (`sshd -T`): lower-case keyword -> values (repeats kept)."""
    out = host.check_output("/usr/sbin/sshd -T")
    settings: dict[str, list[str]] = {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        settings.setdefault(key, []).append(value.strip())
    return settings


def _conf(text: str) -> dict[str, str]:
    """`key = value` / bare `flag` lines of a PAM module's .conf file (comments dropped)."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def _pam_lines(host: InfraHost, service: str) -> list[str]:
    text = host.file(f"/etc/pam.d/{service}").content_string
    return [" ".join(ln.split()) for ln in text.splitlines() if ln.strip() and ln[0] != "#"]


# --- identity ----------------------------------------------------------------------------


@pytest.mark.control("GBS-1.1")
def test_hostname_is_the_model_name(host: InfraHost, declared: Host) -> None:
    assert host.file("/etc/hostname").content_string.strip() == declared.name


@pytest.mark.control("GBS-1.2")
def test_hosts_file_names_every_model_host(host: InfraHost, declared: Host, model: Model) -> None:
    lines = [ln.split() for ln in host.file("/etc/hosts").content_string.splitlines()]
    entries = {name: ln[0] for ln in lines if ln and not ln[0].startswith("#") for name in ln[1:]}
    for peer in model.hosts.values():
        assert entries.get(peer.name) == str(peer.address), f"/etc/hosts: {peer.name}"
    assert not entries[declared.name].startswith("127."), "own name on a loopback address"


# --- time --------------------------------------------------------------------------------


@pytest.mark.control("GBS-2.1")
def test_chronyd_runs_and_answers(host: InfraHost) -> None:
    chrony = host.service("chrony")
    assert chrony.is_running
    assert chrony.is_enabled
    assert host.run("chronyc -n tracking").rc == 0, "chronyd does not answer chronyc"


@pytest.mark.control("GBS-2.1")
def test_chronyd_leaves_the_clock_alone_in_a_container(host: InfraHost) -> None:
    args = host.check_output("ps -o args= -C chronyd").split()
    if _in_container(host):
        assert "-x" in args, f"chronyd in a container without -x: {args}"
    else:
        assert "-x" not in args, "chronyd must discipline the clock outside containers"


# --- security updates --------------------------------------------------------------------


@pytest.mark.control("GIS-1.2")
def test_unattended_upgrades_take_security_updates_only(host: InfraHost) -> None:
    periodic = host.check_output("apt-config dump APT::Periodic")
    assert 'APT::Periodic::Unattended-Upgrade "1";' in periodic
    dump = host.check_output("apt-config dump Unattended-Upgrade::Origins-Pattern")
    origins = re.findall(r'^Unattended-Upgrade::Origins-Pattern:: "(.*)";$', dump, re.M)
    assert origins, "no Origins-Pattern"
    assert all("Debian-Security" in o for o in origins), origins


@pytest.mark.control("GIS-1.1")
def test_security_repository_is_configured(host: InfraHost) -> None:
    sources = host.check_output("cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list")
    assert re.search(r"^deb \S*security\S* \S+-security ", sources, re.M), sources


# --- SSH ---------------------------------------------------------------------------------


@pytest.mark.control("GBS-4.1")
def test_sshd_configuration_is_valid(host: InfraHost) -> None:
    assert host.run("/usr/sbin/sshd -t").rc == 0


@pytest.mark.control("GBS-4.1")
def test_sshd_allows_keys_only_and_never_root(host: InfraHost) -> None:
    s = _sshd(host)
    assert s["permitrootlogin"] == ["no"]
    assert s["passwordauthentication"] == ["no"]
    assert s["kbdinteractiveauthentication"] == ["no"]
    assert s["pubkeyauthentication"] == ["yes"]
    assert s["permitemptypasswords"] == ["no"]
    assert s["authenticationmethods"] == ["publickey"]


@pytest.mark.control("GBS-4.1")
def test_sshd_limits_and_forwarding(host: InfraHost) -> None:
    s = _sshd(host)
    assert int(s["maxauthtries"][0]) <= 4
    assert 0 < int(s["logingracetime"][0]) <= 60
    assert 0 < int(s["clientaliveinterval"][0]) <= 600
    assert s["x11forwarding"] == ["no"]
    assert s["allowtcpforwarding"] == ["no"]
    assert s["allowagentforwarding"] == ["no"]
    assert s["permittunnel"] == ["no"]


@pytest.mark.control("GBS-4.1")
def test_sshd_uses_modern_cryptography_only(host: InfraHost) -> None:
    s = _sshd(host)
    ciphers = s["ciphers"][0].split(",")
    macs = s["macs"][0].split(",")
    kex = s["kexalgorithms"][0].split(",")
    assert not [c for c in ciphers if re.search(r"cbc|3des|arcfour|blowfish|cast", c)], ciphers
    assert all("etm@openssh.com" in m for m in macs), macs
    assert not [k for k in kex if re.search(r"sha1|group1-|group14-sha1|gss", k)], kex


@pytest.mark.control("GBS-4.1")
def test_sshd_lets_only_the_allowed_groups_in(host: InfraHost) -> None:
    allowed = {g for line in _sshd(host).get("allowgroups", []) for g in line.split()}
    assert "ssh-users" in allowed
    groups = set(host.check_output(f"id --groups --name {AUTOMATION_USER}").split())
    assert groups & allowed, f"{AUTOMATION_USER} ({groups}) is not in AllowGroups {allowed}"
    assert host.group("ssh-users").exists


@pytest.mark.control("GBS-4.1")
def test_sshd_shows_the_legal_banner(host: InfraHost) -> None:
    assert _sshd(host)["banner"] == ["/etc/issue.net"]


# --- banner ------------------------------------------------------------------------------


@pytest.mark.control("GBS-3.1")
def test_legal_banner_is_written(host: InfraHost) -> None:
    for path in ("/etc/issue.net", "/etc/issue"):
        banner = host.file(path)
        assert banner.user == "root"
        assert banner.mode == 0o644
        assert "ICETEX" in banner.content_string
        assert "autorizado" in banner.content_string
    # the identity role's motd (shown after login) stays its own
    assert "Managed by gestic" in host.file("/etc/motd").content_string


# --- passwords ---------------------------------------------------------------------------


@pytest.mark.control("GCS-1.1")
def test_password_quality_follows_the_password_guide(host: InfraHost) -> None:
    conf = _conf(
        host.check_output("cat /etc/security/pwquality.conf /etc/security/pwquality.conf.d/*.conf")
    )
    assert int(conf["minlen"]) >= 12
    assert int(conf["minclass"]) >= 3
    assert "enforce_for_root" in conf
    assert conf["usercheck"] != "0"
    dictionary = host.file("/var/cache/cracklib/cracklib_dict.pwd").exists
    # without the cracklib dictionary every password would fail the check: then it must be off
    assert conf.get("dictcheck", "1") == ("1" if dictionary else "0")
    assert any("pam_pwquality.so" in ln for ln in _pam_lines(host, "common-password"))


@pytest.mark.control("GCS-2.1")
def test_password_aging_for_new_accounts(host: InfraHost) -> None:
    defs = dict(
        ln.split(None, 1)
        for ln in host.file("/etc/login.defs").content_string.splitlines()
        if ln.strip() and not ln.startswith("#") and len(ln.split(None, 1)) == 2
    )
    assert 1 <= int(defs["PASS_MAX_DAYS"]) <= 90
    assert int(defs["PASS_MIN_DAYS"]) >= 1
    assert int(defs["PASS_WARN_AGE"]) >= 7


@pytest.mark.control("GCS-3.1")
def test_failed_logins_lock_the_account(host: InfraHost) -> None:
    conf = _conf(host.file("/etc/security/faillock.conf").content_string)
    assert 1 <= int(conf["deny"]) <= 10
    assert int(conf["unlock_time"]) >= 300
    auth = _pam_lines(host, "common-auth")
    modules = [ln for ln in auth if "pam_faillock.so" in ln or "pam_unix.so" in ln]
    assert "preauth" in modules[0], auth
    assert "pam_unix.so" in modules[1], auth
    assert "authfail" in modules[2], auth
    assert any("pam_faillock.so" in ln for ln in _pam_lines(host, "common-account"))


# --- sudo --------------------------------------------------------------------------------


@pytest.mark.control("GBS-5.1")
def test_sudoers_are_valid(host: InfraHost) -> None:
    assert host.run("visudo -c").rc == 0


@pytest.mark.control("GBS-5.1")
def test_sudo_goes_through_a_group_on_a_pty_and_is_logged(host: InfraHost) -> None:
    rules = host.check_output("cat /etc/sudoers /etc/sudoers.d/*")
    assert re.search(r"^Defaults\s+use_pty", rules, re.M)
    logfile = re.search(r'^Defaults\s+logfile="?([^"\s]+)', rules, re.M)
    assert logfile, "sudo has no log file"
    assert re.search(r"^%\S+\s+ALL=\(ALL(:ALL)?\) ALL", rules, re.M), "no admin group rule"
    log = host.file(logfile.group(1))
    assert log.exists, f"{logfile.group(1)}: sudo has logged nothing (Ansible uses sudo)"
    assert log.mode & 0o077 == 0
    assert "COMMAND=" in log.content_string


# --- audit -------------------------------------------------------------------------------


@pytest.mark.control("GAL-1.1")
@pytest.mark.parametrize(
    "watched", ["/etc/passwd", "/etc/shadow", "/etc/sudoers", "/etc/ssh/sshd_config"]
)
def test_audit_rules_watch_identity_sudo_and_ssh(host: InfraHost, watched: str) -> None:
    rules = host.file("/etc/audit/rules.d/50-gestic-baseline.rules").content_string
    assert re.search(rf"^-w {re.escape(watched)} -p wa -k \S+$", rules, re.M)
    if not _in_container(host):  # the kernel audit is not namespaced: no auditd in containers
        assert host.service("auditd").is_running
        assert watched in host.check_output("auditctl -l")


# --- kernel ------------------------------------------------------------------------------


@pytest.mark.control("GBS-6.1")
def test_unneeded_kernel_modules_never_load(host: InfraHost) -> None:
    modprobe = host.file("/etc/modprobe.d/gestic-baseline.conf").content_string
    for module in ("usb-storage", "dccp", "sctp"):
        assert f"install {module} /bin/false" in modprobe


@pytest.mark.control("GBS-6.2")
def test_core_dumps_are_off(host: InfraHost) -> None:
    limits = host.file("/etc/security/limits.d/gestic-baseline.conf").content_string
    assert re.search(r"^\*\s+hard\s+core\s+0$", limits, re.M)
