"""The hosts' access records (/etc/gestic/access.json, written by the `access` role): read
over SSH or from saved files, and checked before `gestic.procedures.access.report` trusts them."""

from __future__ import annotations

import base64
import json
from datetime import date
from pathlib import Path
from typing import Any

from gestic.errors import AnsibleError, GesticError
from gestic.tools.ansible.runner import ansible_env, run_isolated
from gestic.tools.ssh import SshAccess

RECORD_PATH = "/etc/gestic/access.json"
RECORD_SCHEMA = 1
ACCESS_KINDS = frozenset({"granted", "revoked", "undeclared", "automation"})


def parse_record(text: str, host: str) -> dict[str, Any]:
    """A host's access record, checked enough to be trusted by the report (ValueError if not)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    if data.get("schema") != RECORD_SCHEMA:
        raise ValueError(f"record schema {data.get('schema')!r}, expected {RECORD_SCHEMA}")
    if data.get("host") != host:
        raise ValueError(f"record of host {data.get('host')!r}, expected {host!r}")
    accounts = data.get("accounts")
    if not isinstance(accounts, list):
        raise ValueError("'accounts' must be a list")
    for i, acct in enumerate(accounts):
        if not isinstance(acct, dict) or not isinstance(acct.get("username"), str):
            raise ValueError(f"accounts[{i}]: expected an object with a username")
        if acct.get("access") not in ACCESS_KINDS:
            raise ValueError(f"accounts[{i}] ({acct['username']}): unknown access kind")
        for key, kind in (("locked", bool), ("sudo", bool), ("groups", list), ("keys", list)):
            if not isinstance(acct.get(key), kind):
                raise ValueError(f"accounts[{i}] ({acct['username']}): '{key}' missing or wrong")
        if acct.get("expires") is not None:
            try:
                date.fromisoformat(acct["expires"])
            except (TypeError, ValueError):
                raise ValueError(
                    f"accounts[{i}] ({acct['username']}): expires {acct['expires']!r} is not a date"
                ) from None
    if not isinstance(data.get("undeclared"), list):
        raise ValueError("'undeclared' must be a list")
    return data


def read_record_dir(directory: Path, hosts: list[str]) -> dict[str, str]:
    """Records saved as files (access-<host>.json, e.g. by an earlier report): host -> text."""
    if not directory.is_dir():
        raise GesticError(f"{directory}: not a directory of access records")
    return {
        h: (directory / f"access-{h}.json").read_text(encoding="utf-8")
        for h in hosts
        if (directory / f"access-{h}.json").is_file()
    }


def collect_records(
    *, inventory: Path, access: SshAccess, artifacts_dir: Path, path: str = RECORD_PATH
) -> tuple[dict[str, str], dict[str, str]]:
    """Read every host's record over SSH (Ansible's slurp): (host -> text, host -> error)."""
    texts: dict[str, str] = {}
    errors: dict[str, str] = {}

    def handle(event: dict[str, Any]) -> bool:
        data = event.get("event_data", {})
        host, res = data.get("host"), data.get("res", {})
        kind = event.get("event")
        if not host:
            return True
        if kind == "runner_on_ok" and "content" in res:
            texts[host] = base64.b64decode(res["content"]).decode("utf-8")
        elif kind in {"runner_on_failed", "runner_on_unreachable"}:
            errors[host] = str(res.get("msg", kind)).strip().splitlines()[0][:200]
        return True

    artifacts_dir.mkdir(parents=True, exist_ok=True)
    # ad hoc, in a spawned interpreter like every Ansible run of gestic (fork safety)
    outcome = run_isolated(
        {
            "artifact_dir": str(artifacts_dir),
            "inventory": str(inventory),
            "host_pattern": "all",
            "module": "ansible.builtin.slurp",
            "cmdline": "--become",  # as the plays do (`become: true`)
            "module_args": f"src={path}",
            "envvars": ansible_env(access),
            "quiet": True,
            "rotate_artifacts": 20,
        },
        handle,
    )
    if outcome["status"] not in {"successful", "failed"} or not texts | errors:
        tail = "\n".join(outcome.get("stdout_tail") or [])
        raise AnsibleError(
            f"could not read the access records: ansible status {outcome['status']}\n{tail}"
        )
    return texts, errors
