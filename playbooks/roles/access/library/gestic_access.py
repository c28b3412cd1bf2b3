#!/usr/bin/python3
"""Ansible module of the `access` role: read the host's accounts and plan access (read-only).

It never changes anything: it reads passwd, shadow, group, the accounts' authorized_keys
(fingerprints by ssh-keygen), their sudo rights (`sudo -l -U`) and their processes (/proc),
and from the declarations (gestic_accounts) says which accounts to grant, which to lock and
whose sessions to end, which local accounts no declaration covers, and the host's access
record (/etc/gestic/access.json).
"""

from __future__ import annotations

import datetime as dt
import grp
import json
import os
import pwd
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ansible.module_utils.basic import AnsibleModule  # type: ignore[import-untyped]

DOCUMENTATION = r"""
---
module: gestic_access
short_description: Read the host's local accounts and plan access from the declarations
description:
  - Read-only. Returns the accounts to grant (C(grant)), to lock (C(revoke)), whose processes
    to end (C(end_sessions)), the local accounts no declaration covers (C(undeclared)),
    problems that must stop the play (C(problems)) and the host's access record (C(record)).
options:
  accounts:
    description: The declarations (gestic_accounts), username -> settings.
    type: dict
    required: true
  scope:
    description:
      - The host's name and groups; an account's C(hosts) entry matches one of them or C(all).
    type: list
    elements: str
    required: true
  host:
    description: The host's inventory name, written in the record.
    type: str
    required: true
  automation_user:
    description: The automation account; never planned for, recorded as C(automation).
    type: str
    default: gestic
  record_path:
    description: The current record; its C(updated_at) is kept when nothing else changed.
    type: path
    default: /etc/gestic/access.json
author: ICETEX - Dirección de Tecnología
"""

RECORD_SCHEMA = 1
NOLOGIN_SHELLS = frozenset({"/usr/sbin/nologin", "/sbin/nologin", "/bin/false", "/usr/bin/false"})
KEY_FILES = ("authorized_keys", "authorized_keys2")
EPOCH = dt.date(1970, 1, 1)
REVOKED_EXPIRY = dt.date(1970, 1, 2)  # any day in the past; day 0 means "never" to some tools
_FINGERPRINT = re.compile(r"^(\d+) (SHA256:\S+) (.*) \((\w+)\)$")
_SUDO_RULE = re.compile(r"^\s+(\(.*)$")

Runner = Callable[[list[str]], tuple[int, str, str]]


@dataclass(frozen=True, kw_only=True)
class Local:
    """A local account as the host has it."""

    username: str
    uid: int
    gecos: str
    home: str
    shell: str
    groups: tuple[str, ...] = ()
    password_locked: bool = True
    password_set: bool = False
    expires: dt.date | None = None
    keys: tuple[dict[str, str], ...] = ()
    sudo_rules: tuple[str, ...] = ()
    processes: int = 0

    def locked(self, today: dt.date) -> bool:
        """Locked as the removal procedure asks: password, shell and expiry."""
        expired = self.expires is not None and self.expires <= today
        return self.password_locked and self.shell in NOLOGIN_SHELLS and expired


@dataclass(frozen=True, kw_only=True)
class Plan:
    grant: list[dict[str, Any]] = field(default_factory=list)
    revoke: list[dict[str, Any]] = field(default_factory=list)
    end_sessions: list[str] = field(default_factory=list)
    undeclared: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)


# --- reading the host ---------------------------------------------------------------------


def uid_range(login_defs: str) -> tuple[int, int]:
    """UID_MIN and UID_MAX of /etc/login.defs (Debian's defaults when absent)."""
    found = {"UID_MIN": 1000, "UID_MAX": 60000}
    for line in login_defs.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in found and parts[1].isdigit():
            found[parts[0]] = int(parts[1])
    return found["UID_MIN"], found["UID_MAX"]


def parse_shadow(text: str) -> dict[str, tuple[str, dt.date | None]]:
    """username -> (password field, account expiry date or None) from /etc/shadow."""
    out: dict[str, tuple[str, dt.date | None]] = {}
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) < 8:
            continue
        expire = fields[7].strip()
        day = EPOCH + dt.timedelta(days=int(expire)) if expire.isdigit() else None
        out[fields[0]] = (fields[1], day)
    return out


def password_state(field: str) -> tuple[bool, bool]:
    """(locked, set) of a shadow password field: '!' locks it; '', '!' or '*' alone is none."""
    return field.startswith(("!", "*")) or field == "", field.lstrip("!") not in {"", "*"}


def parse_fingerprints(output: str) -> list[dict[str, str]]:
    """The keys `ssh-keygen -l -E sha256 -f <authorized_keys>` lists."""
    keys = []
    for line in output.splitlines():
        if m := _FINGERPRINT.match(line.strip()):
            keys.append({"fingerprint": m.group(2), "type": m.group(4), "comment": m.group(3)})
    return keys


def parse_sudo(output: str) -> list[str]:
    """The rules `sudo -l -U <user>` lists under 'may run the following commands'."""
    if "may run the following commands" not in output:
        return []
    rules = output.split("may run the following commands", 1)[1].splitlines()[1:]
    return [m.group(1).strip() for line in rules if (m := _SUDO_RULE.match(line))]


def count_processes(uid: int, proc: str = "/proc") -> int:
    """Processes whose real or effective uid is `uid`."""
    count = 0
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            with open(os.path.join(proc, entry, "status"), encoding="utf-8") as status:
                for line in status:
                    if line.startswith("Uid:"):
                        real, effective = (int(v) for v in line.split()[1:3])
                        count += uid in (real, effective)
                        break
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue  # the process ended while we looked
    return count


def read_keys(home: str, run: Runner) -> list[dict[str, str]]:
    keys: list[dict[str, str]] = []
    for name in KEY_FILES:
        path = os.path.join(home, ".ssh", name)
        if os.path.isfile(path):
            _rc, out, _err = run(["ssh-keygen", "-l", "-E", "sha256", "-f", path])
            keys.extend(parse_fingerprints(out))
    return keys


def read_locals(
    names: Iterable[str], uid_min: int, uid_max: int, run: Runner, proc: str = "/proc"
) -> dict[str, Local]:
    """Every account with a uid in [uid_min, uid_max], plus the accounts named in `names`."""
    wanted = set(names)
    entries = [p for p in pwd.getpwall() if uid_min <= p.pw_uid <= uid_max or p.pw_name in wanted]
    with open("/etc/shadow", encoding="utf-8") as handle:
        shadow = parse_shadow(handle.read())
    member_of: dict[str, list[str]] = {}
    for group in grp.getgrall():
        for member in group.gr_mem:
            member_of.setdefault(member, []).append(group.gr_name)
    found = {}
    for p in entries:
        password, expires = shadow.get(p.pw_name, ("!", None))
        locked, has_password = password_state(password)
        _rc, sudo_out, _err = run(["sudo", "-n", "-l", "-U", p.pw_name])
        found[p.pw_name] = Local(
            username=p.pw_name,
            uid=p.pw_uid,
            gecos=p.pw_gecos.split(",")[0],
            home=p.pw_dir,
            shell=p.pw_shell,
            groups=tuple(sorted(member_of.get(p.pw_name, []))),
            password_locked=locked,
            password_set=has_password,
            expires=expires,
            keys=tuple(read_keys(p.pw_dir, run)),
            sudo_rules=tuple(parse_sudo(sudo_out)),
            processes=count_processes(p.pw_uid, proc),
        )
    return found


# --- planning -----------------------------------------------------------------------------


def _as_date(value: Any) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


def epoch_seconds(day: dt.date) -> int:
    return (day - EPOCH).days * 86400


def _comment(name: str) -> str:
    return re.sub(r"[:,\n\r]", " ", name).strip()


def applies(spec: Mapping[str, Any], scope: Iterable[str]) -> bool:
    targets = set(scope) | {"all"}
    return any(str(entry) in targets for entry in spec.get("hosts") or [])


def plan(
    *,
    accounts: Mapping[str, Mapping[str, Any]],
    scope: list[str],
    host: str,
    automation_user: str,
    locals_: Mapping[str, Local],
    uid_min: int,
    today: dt.date,
    previous: Mapping[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> Plan:
    """What to do on this host, and the record of what it has now."""
    grant: list[dict[str, Any]] = []
    revoke: list[dict[str, Any]] = []
    problems: list[str] = []
    by_uid = {loc.uid: loc.username for loc in locals_.values()}
    access: dict[str, str] = {}
    for username, spec in sorted(accounts.items()):
        local = locals_.get(username)
        if username == automation_user:
            problems.append(f"'{username}' is the automation account: it is never declared")
            continue
        if local is not None and local.uid < uid_min:
            problems.append(
                f"'{username}' is a system account on {host} (uid {local.uid}): "
                "the access role manages people's accounts only"
            )
            continue
        granted = spec.get("state", "present") == "present" and applies(spec, scope)
        if granted:
            uid = int(spec["uid"])
            if local is not None and local.uid != uid:
                problems.append(
                    f"'{username}' has uid {local.uid} on {host} but is declared with uid {uid}"
                )
                continue
            if (holder := by_uid.get(uid)) not in (None, username):
                problems.append(f"uid {uid} of '{username}' belongs to '{holder}' on {host}")
                continue
            expires = _as_date(spec.get("expires"))
            grant.append(
                {
                    "username": username,
                    "uid": uid,
                    "comment": _comment(str(spec.get("name") or username)),
                    "groups": sorted(str(g) for g in spec.get("groups") or []),
                    "keys": [" ".join(str(k).split()) for k in spec.get("keys") or []],
                    "expires": epoch_seconds(expires) if expires else -1,
                    "home": local.home if local else f"/home/{username}",
                    "exists": local is not None,
                    "password_set": bool(
                        local and local.password_set and not local.password_locked
                    ),
                }
            )
            access[username] = "granted"
        elif local is not None:
            revoke.append({"username": username, "home": local.home})
            access[username] = "revoked"
    undeclared = sorted(
        n for n, loc in locals_.items() if n not in accounts and n != automation_user
        and loc.uid >= uid_min
    )  # fmt: skip
    end_sessions = [r["username"] for r in revoke if locals_[r["username"]].processes > 0]
    record = build_record(
        host=host,
        accounts=accounts,
        locals_=locals_,
        access=access,
        undeclared=undeclared,
        automation_user=automation_user,
        today=today,
        previous=previous,
        now=now,
    )
    return Plan(
        grant=grant,
        revoke=revoke,
        end_sessions=end_sessions,
        undeclared=undeclared,
        problems=problems,
        record=record,
    )


def build_record(
    *,
    host: str,
    accounts: Mapping[str, Mapping[str, Any]],
    locals_: Mapping[str, Local],
    access: Mapping[str, str],
    undeclared: list[str],
    automation_user: str,
    today: dt.date,
    previous: Mapping[str, Any] | None,
    now: dt.datetime | None,
) -> dict[str, Any]:
    """The host's access record: who has an account, with what, and in which state.

    `updated_at` changes only when something else in the record does, so writing the record
    again on an unchanged host changes nothing.
    """
    entries = []
    for name, local in sorted(locals_.items()):
        spec = accounts.get(name) or {}
        kind = (
            "automation" if name == automation_user
            else access.get(name, "undeclared" if name in undeclared else "")
        )  # fmt: skip
        if not kind:
            continue  # a declared account not for this host that does not exist here
        entry: dict[str, Any] = {
            "username": name,
            "uid": local.uid,
            "name": str(spec.get("name") or local.gecos or ""),
            "role": spec.get("role"),
            "access": kind,
            "state": spec.get("state", "present") if spec else None,
            "ticket": spec.get("ticket"),
            "groups": list(local.groups),
            "sudo": bool(local.sudo_rules),
            "sudo_rules": list(local.sudo_rules),
            "shell": local.shell,
            "password_locked": local.password_locked,
            "password_set": local.password_set,
            "expires": local.expires.isoformat() if local.expires else None,
            "keys": [dict(k) for k in local.keys],
            "locked": local.locked(today),
        }
        if kind == "revoked":
            entry["processes"] = local.processes
        entries.append(entry)
    body: dict[str, Any] = {
        "schema": RECORD_SCHEMA,
        "host": host,
        "accounts": entries,
        "undeclared": undeclared,
    }
    stamp = (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")
    if previous:
        unchanged = {k: v for k, v in previous.items() if k != "updated_at"} == body
        if unchanged and isinstance(previous.get("updated_at"), str):
            stamp = previous["updated_at"]
    return {"schema": RECORD_SCHEMA, "host": host, "updated_at": stamp, **body}


def _previous(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "accounts": {"type": "dict", "required": True},
            "scope": {"type": "list", "elements": "str", "required": True},
            "host": {"type": "str", "required": True},
            "automation_user": {"type": "str", "default": "gestic"},
            "record_path": {"type": "path", "default": "/etc/gestic/access.json"},
        },
        supports_check_mode=True,
    )
    params = module.params

    def run(argv: list[str]) -> tuple[int, str, str]:
        binary = module.get_bin_path(argv[0])
        if binary is None:
            return 127, "", f"{argv[0]}: not found"
        rc, out, err = module.run_command([binary, *argv[1:]], environ_update={"LC_ALL": "C"})
        return int(rc), str(out), str(err)

    try:
        with open("/etc/login.defs", encoding="utf-8") as handle:
            uid_min, uid_max = uid_range(handle.read())
    except OSError:
        uid_min, uid_max = uid_range("")
    accounts = params["accounts"] or {}
    names = [*accounts, params["automation_user"]]
    locals_ = read_locals(names, uid_min, uid_max, run)
    result = plan(
        accounts=accounts,
        scope=params["scope"],
        host=params["host"],
        automation_user=params["automation_user"],
        locals_=locals_,
        uid_min=uid_min,
        today=dt.date.today(),
        previous=_previous(params["record_path"]),
    )
    module.exit_json(
        changed=False,
        grant=result.grant,
        revoke=result.revoke,
        end_sessions=result.end_sessions,
        undeclared=result.undeclared,
        problems=result.problems,
        record=result.record,
        revoked_expiry=epoch_seconds(REVOKED_EXPIRY),
        uid_range=[uid_min, uid_max],
    )


if __name__ == "__main__":
    main()
