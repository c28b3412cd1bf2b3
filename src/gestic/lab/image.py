"""The host image: a Debian root filesystem built once with debootstrap and shared by every host.

Hosts mount it read-only as the lower layer of an overlayfs, so the image must hold nothing
host-specific: no ssh host keys, machine-id, hostname or resolver configuration.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from gestic.errors import LabError, NotRootError

# Bump whenever the recipe below changes, so cached images built by an older recipe are rebuilt.
RECIPE_VERSION = 5

IMAGE_PACKAGES: tuple[str, ...] = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "python3-apt",
    "sudo",
    "iproute2",
    "iputils-ping",
    "procps",
    "ca-certificates",
    "netcat-openbsd",
    "less",
    "rsyslog",
    "cron",
    "logrotate",
)

MARKER = "image.json"

# Servers whose Debian package enables them at install: in the image they stay off until the
# role that configures them starts them. On their packaged defaults they would run at a new
# host's first boot, before the converge: Prometheus then scraped and alerted on targets the
# model does not have (a false GesticHostDown for localhost:9100, 285 s, on the dev lab).
CONFIGURED_FIRST: tuple[str, ...] = (
    "prometheus.service",
    "prometheus-alertmanager.service",
    "prometheus-blackbox-exporter.service",
    "prometheus-node-exporter.service",
    "prometheus-postgres-exporter.service",
)

# Units that make no sense in a container without a console, udev or internet, or that would
# try to reach a mirror.
MASKED_UNITS: tuple[str, ...] = (
    "getty@tty1.service",
    "console-getty.service",
    "systemd-networkd-wait-online.service",
    "systemd-udevd.service",
    "systemd-udev-trigger.service",
    "systemd-remount-fs.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
)

KEYGEN_UNIT = "gestic-ssh-keygen.service"
_KEYGEN_UNIT_TEXT = """\
[Unit]
Description=Generate this host's own ssh host keys (the shared image has none)
DefaultDependencies=no
After=local-fs.target
Before=ssh.service sshd.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A
RemainAfterExit=yes

[Install]
WantedBy=multi-user.target
RequiredBy=ssh.service
"""

# The automation account Ansible and testinfra log in as (keys only), with sudo. Root never
# logs in over SSH; the baseline role keeps it that way.
AUTOMATION_USER = "gestic"
AUTOMATION_UID = 990

_SUDOERS_AUTOMATION = f"""\
# gestic automation account: configuration management runs through sudo.
{AUTOMATION_USER} ALL=(ALL:ALL) NOPASSWD: ALL
"""

# The kernel's audit subsystem is not namespaced: auditd cannot run in a container. It is
# skipped there (not failed) and runs on real hosts; its rules are still managed.
_AUDITD_IN_CONTAINER = """\
[Unit]
ConditionVirtualization=!container
"""

_SSHD_DROPIN = """\
# gestic lab hosts: keys only, no root login.
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
"""

# Debian's ssh.service has RuntimeDirectory=sshd, but `sshd -t` run by hand also needs it.
_TMPFILES_SSHD = "d /run/sshd 0755 root root -\n"

# Keep the journal in memory: a persistent one preallocates ~8 MB in every host's upper dir.
_JOURNALD_DROPIN = """\
[Journal]
Storage=volatile
RuntimeMaxUse=16M
"""

# Hosts need no manuals or translations: drop them now and on every later install.
_DPKG_NODOC = """\
path-exclude=/usr/share/man/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
"""

Progress = Callable[[str], None]


def image_id(suite: str, packages: Sequence[str]) -> str:
    """Short stable hash of everything that determines the image's content."""
    recipe = "\n".join([f"recipe={RECIPE_VERSION}", f"suite={suite}", *sorted(set(packages))])
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def image_dir(cache_dir: Path, suite: str, packages: Sequence[str]) -> Path:
    """The directory holding one image: `rootfs/` and the completion marker."""
    return cache_dir / "images" / image_id(suite, packages)


def ensure_image(
    *,
    cache_dir: Path,
    suite: str = "bookworm",
    packages: Sequence[str] = IMAGE_PACKAGES,
    mirror: str = "http://deb.debian.org/debian",
    progress: Progress | None = None,
) -> Path:
    """Return the image's rootfs, building it with debootstrap first if it is not cached."""
    say: Progress = progress or (lambda _msg: None)
    final = image_dir(cache_dir, suite, packages)
    if _is_complete(final):
        return final / "rootfs"
    require_root("building the host image")
    debootstrap = _find_tool("debootstrap", "install the Debian package debootstrap")
    final.parent.mkdir(parents=True, exist_ok=True)
    with locked(final.parent / f"{final.name}.lock"):
        if _is_complete(final):  # another caller built it while we waited for the lock
            return final / "rootfs"
        say(f"building host image {final.name} ({suite}, {len(packages)} extra packages)")
        _build(
            final, debootstrap=debootstrap, suite=suite, packages=packages, mirror=mirror, say=say
        )
    return final / "rootfs"


def require_root(what: str) -> None:
    """Raise NotRootError unless running as root."""
    if os.geteuid() != 0:
        raise NotRootError(f"{what} needs root (namespaces, mounts, debootstrap, nspawn)")


def run(cmd: Sequence[str], what: str, *, timeout: float | None = None) -> str:
    """Run a command; on failure raise LabError naming `what` and quoting stderr."""
    try:
        done = subprocess.run(
            list(cmd), check=False, capture_output=True, text=True, timeout=timeout
        )
    except FileNotFoundError as exc:
        raise LabError(f"{what}: command not found: {cmd[0]}") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{what}: `{' '.join(cmd)}` timed out after {timeout} s") from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()[-2000:]
        raise LabError(f"{what}: `{' '.join(cmd)}` exited {done.returncode}: {detail}")
    return done.stdout


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path`, deepest first (from /proc/self/mountinfo)."""
    root = str(path.resolve())
    found: list[str] = []
    with open("/proc/self/mountinfo", encoding="utf-8") as info:
        for line in info:
            point = _unescape_mount(line.split()[4])
            if point == root or point.startswith(root.rstrip("/") + "/"):
                found.append(point)
    return sorted(found, key=lambda p: p.count("/"), reverse=True)


def _unescape_mount(field: str) -> str:
    """Undo mountinfo's octal escapes (space is \\040, newline \\012, ...)."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _is_complete(image: Path) -> bool:
    return (image / MARKER).is_file() and (image / "rootfs").is_dir()


def _find_tool(name: str, hint: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if path is None:
        raise LabError(f"{name} not found: {hint}")
    return path


@contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive flock on `lock_path` (e.g. so only one caller builds an image)."""
    with open(lock_path, "a+", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _build(
    final: Path,
    *,
    debootstrap: str,
    suite: str,
    packages: Sequence[str],
    mirror: str,
    say: Progress,
) -> None:
    """debootstrap into a temp dir next to `final`, fix it up, then rename it into place."""
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    tmp.chmod(0o755)
    rootfs = tmp / "rootfs"
    try:
        say(f"debootstrap {suite} from {mirror} (a minute or two)")
        cmd = [debootstrap, "--variant=minbase"]
        if packages:
            cmd.append(f"--include={','.join(sorted(set(packages)))}")
        run([*cmd, suite, str(rootfs), mirror], "debootstrap failed")
        say("fixing up the image for containers")
        fix_up(rootfs)
        say("cleaning apt caches, manuals and translations")
        run(["chroot", str(rootfs), "apt-get", "clean"], "apt-get clean in the image failed")
        _drop_docs(rootfs)
        _write_marker(
            tmp, suite=suite, packages=packages, mirror=mirror, seconds=time.monotonic() - started
        )
        if final.exists():  # a half-built leftover without marker: replace it
            _remove_tree(final)
        os.rename(tmp, final)
        say(f"host image ready: {final / 'rootfs'}")
    except BaseException:
        _remove_tree(tmp)
        raise


def fix_up(rootfs: Path) -> None:
    """Make a fresh debootstrap tree fit to be shared by many nspawn hosts."""
    etc = rootfs / "etc"
    # debootstrap copies the build machine's resolver and name; hosts have no internet.
    (etc / "resolv.conf").unlink(missing_ok=True)
    (etc / "resolv.conf").write_text("")
    (etc / "hostname").write_text("")
    # C.UTF-8 is built into glibc; without this file pam_env warns on every ssh login.
    _write(etc / "default/locale", "LANG=C.UTF-8\n")
    # Empty machine-id: systemd makes a transient one per boot from nspawn's container UUID.
    (etc / "machine-id").write_text("")
    (rootfs / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    for key in (etc / "ssh").glob("ssh_host_*"):
        key.unlink()
    _write(etc / "systemd/system" / KEYGEN_UNIT, _KEYGEN_UNIT_TEXT)
    _write(etc / "ssh/sshd_config.d/gestic.conf", _SSHD_DROPIN)
    _write(etc / "tmpfiles.d/sshd.conf", _TMPFILES_SSHD)
    run(
        ["useradd", "--root", str(rootfs), "--uid", str(AUTOMATION_UID), "--user-group",
         "--create-home", "--shell", "/bin/bash", "--comment", "gestic automation",
         AUTOMATION_USER],
        "creating the automation account in the image",
    )  # fmt: skip
    _write(etc / "systemd/system/auditd.service.d/gestic-container.conf", _AUDITD_IN_CONTAINER)
    _write(etc / "sudoers.d" / AUTOMATION_USER, _SUDOERS_AUTOMATION)
    (etc / "sudoers.d" / AUTOMATION_USER).chmod(0o440)
    _write(etc / "systemd/journald.conf.d/gestic.conf", _JOURNALD_DROPIN)
    systemctl = ["systemctl", f"--root={rootfs}"]
    run([*systemctl, "enable", KEYGEN_UNIT, "ssh.service"], "enabling units in the image")
    run([*systemctl, "mask", *MASKED_UNITS], "masking units in the image")
    packaged = [u for u in CONFIGURED_FIRST if (rootfs / "lib/systemd/system" / u).is_file()]
    if packaged:
        run([*systemctl, "disable", *packaged], "disabling packaged servers in the image")


def _drop_docs(rootfs: Path) -> None:
    """Delete what _DPKG_NODOC excludes from the packages debootstrap already unpacked."""
    _write(rootfs / "etc/dpkg/dpkg.cfg.d/gestic-nodoc", _DPKG_NODOC)
    share = rootfs / "usr/share"
    # Some doc dirs are symlinks to another package's: only walk the real ones.
    docs = [d for d in (share / "doc").glob("*") if d.is_dir() and not d.is_symlink()]
    doomed = [*(share / "man").glob("*"), *(share / "locale").glob("*")]
    doomed += [entry for doc in docs for entry in doc.iterdir()]
    for entry in doomed:
        if entry.name in ("copyright", "locale.alias"):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink(missing_ok=True)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o644)


def _write_marker(
    image: Path, *, suite: str, packages: Sequence[str], mirror: str, seconds: float
) -> None:
    meta = {
        "recipe": RECIPE_VERSION,
        "suite": suite,
        "packages": sorted(set(packages)),
        "mirror": mirror,
        "build_seconds": round(seconds, 1),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (image / MARKER).write_text(json.dumps(meta, indent=2) + "\n")


def _remove_tree(path: Path) -> None:
    """Delete a build tree, unmounting first anything debootstrap left mounted in it."""
    for point in mounts_under(path):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    if mounts_under(path):
        raise LabError(f"cannot remove {path}: still mounted below it: {mounts_under(path)}")
    shutil.rmtree(path, ignore_errors=True)
