"""Configure the hosts with Ansible through ansible-runner, and summarise what it changed."""

from __future__ import annotations

import multiprocessing
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any

import ansible_runner

from gestic.errors import AnsibleError
from gestic.paths import repo_root
from gestic.tools.ansible.collections import collections_env
from gestic.tools.ansible.strategy import strategy_env
from gestic.tools.ssh import SshAccess

EventPrinter = Callable[[str], None]
# shown as they happen; "ok" tasks are shown only when they changed something
_REPORTED_EVENTS = {"playbook_on_play_start", "runner_on_failed", "runner_on_unreachable"}


@dataclass(frozen=True, kw_only=True)
class ConvergeResult:
    """Per-host counts from one ansible-playbook run, plus the changed tasks."""

    status: str
    rc: int
    duration_s: float
    per_host: dict[str, dict[str, int]]
    changed_tasks: list[dict[str, Any]] = field(default_factory=list)
    artifacts: Path | None = None
    unreachable: dict[str, str] = field(default_factory=dict)
    """Hosts Ansible could not reach, with the connection's last message."""

    @property
    def changed(self) -> int:
        return sum(h.get("changed", 0) for h in self.per_host.values())

    @property
    def failed_hosts(self) -> list[str]:
        return sorted(
            h for h, c in self.per_host.items() if c.get("failures", 0) or c.get("unreachable", 0)
        )

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.failed_hosts


def _per_host(stats: dict[str, dict[str, int]] | None) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = {}
    renames = {"dark": "unreachable"}
    for counter, hosts in (stats or {}).items():
        for host, count in (hosts or {}).items():
            table.setdefault(host, {})[renames.get(counter, counter)] = int(count)
    return table


def ansible_env(
    access: SshAccess,
    *,
    pipelining: bool = True,
    strategy: str | None = None,
    playbooks_dir: Path | None = None,
) -> dict[str, str]:
    """Environment that points Ansible at the environment's ssh_config, control dir, state
    dir (GESTIC_ENV_STATE_DIR: the roles' controller-side key registry and PKI) and secrets,
    and restricts it to the collections `playbooks_dir` requires (default: the checkout's).

    `strategy` is a name of `gestic.tools.ansible.strategy.STRATEGIES` (default:
    GESTIC_ANSIBLE_STRATEGY, else Mitogen).
    """
    access.control_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    playbooks = playbooks_dir or repo_root() / "playbooks"
    return {
        **strategy_env(strategy),
        **collections_env(playbooks, access.control_dir / "collections"),
        **(access.secrets.env() if access.secrets else {}),
        "GESTIC_ENV_STATE_DIR": str(access.state_dir),
        "ANSIBLE_SSH_ARGS": f"-F {access.ssh_config}",
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(access.control_dir / "ansible"),
        "ANSIBLE_PIPELINING": str(pipelining),
        "ANSIBLE_HOST_KEY_CHECKING": str(access.strict_host_keys),
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOLOR": "True",
        "ANSIBLE_FORCE_COLOR": "False",
        "ANSIBLE_INTERPRETER_PYTHON": "/usr/bin/python3",
        "ANSIBLE_TIMEOUT": "20",
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }


def run_playbook(
    *,
    playbooks_dir: Path,
    playbook: str,
    inventory: Path,
    access: SshAccess,
    artifacts_dir: Path,
    check: bool = False,
    diff: bool = False,
    limit: str | None = None,
    tags: str | None = None,
    extravars: dict[str, Any] | None = None,
    pipelining: bool = True,
    strategy: str | None = None,
    on_event: EventPrinter | None = None,
    event_sink: Callable[[dict[str, Any]], None] | None = None,
) -> ConvergeResult:
    """Run `playbook` against the lab; raise AnsibleError if Ansible could not run at all.

    `on_event` gets a one-line description of notable events; `event_sink` every raw event.
    """
    if not (playbooks_dir / playbook).is_file():
        raise AnsibleError(f"playbook not found: {playbooks_dir / playbook}")
    flags = [flag for flag, on in (("--check", check), ("--diff", diff)) if on]
    cmdline = shlex.join([*flags, *(access.secrets.cmdline() if access.secrets else [])])
    changed_tasks: list[dict[str, Any]] = []
    unreachable: dict[str, str] = {}

    def handle(event: dict[str, Any]) -> bool:
        if event_sink is not None:
            event_sink(event)
        data = event.get("event_data", {})
        if event.get("event") == "runner_on_unreachable" and data.get("host"):
            message = str(data.get("res", {}).get("msg", "unreachable")).strip()
            unreachable.setdefault(str(data["host"]), message.splitlines()[-1] if message else "")
        if event.get("event") == "runner_on_ok" and data.get("res", {}).get("changed"):
            changed_tasks.append({"host": data.get("host"), "task": data.get("task")})
        kind = event.get("event")
        changed = kind == "runner_on_ok" and data.get("res", {}).get("changed")
        if on_event is not None and (changed or kind in _REPORTED_EVENTS):
            on_event(_describe(event))
        return True

    artifacts_dir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    outcome = run_isolated(
        {
            "artifact_dir": str(artifacts_dir),
            "project_dir": str(playbooks_dir),
            "playbook": playbook,
            "inventory": str(inventory),
            "envvars": ansible_env(
                access, pipelining=pipelining, strategy=strategy, playbooks_dir=playbooks_dir
            ),
            "extravars": extravars or {},
            "cmdline": cmdline or None,
            "limit": limit,
            "tags": tags,
            "quiet": True,
            "rotate_artifacts": 20,
        },
        handle,
    )
    if outcome["status"] not in {"successful", "failed"}:
        raise AnsibleError(
            f"ansible-playbook {playbook} did not complete: status {outcome['status']}"
        )
    per_host = _per_host(outcome["stats"])
    if outcome["rc"] != 0 and not per_host:
        tail = "\n".join(outcome["stdout_tail"])
        raise AnsibleError(f"ansible-playbook {playbook} failed before reaching any host:\n{tail}")
    return ConvergeResult(
        status=outcome["status"],
        rc=int(outcome["rc"]),
        duration_s=time.monotonic() - start,
        per_host=per_host,
        changed_tasks=changed_tasks,
        artifacts=Path(outcome["artifact_dir"]),
        unreachable=unreachable,
    )


def run_isolated(
    kwargs: dict[str, Any], handle: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Run ansible-runner in a freshly spawned interpreter, relaying its events to `handle`.

    ansible-runner forks a pty (pexpect) for ansible-playbook. Forking a process that holds
    gRPC threads (the Pulumi Automation API runs in ours) can kill the child in gRPC's poller
    before ansible-playbook starts, so the fork happens in a clean interpreter instead.
    """
    context = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[tuple[str, dict[str, Any]]] = context.Queue()
    child = context.Process(target=_runner_child, args=(kwargs, queue), daemon=True)
    child.start()
    try:
        while True:
            try:
                kind, payload = queue.get(timeout=1.0)
            except Empty:
                if not child.is_alive():
                    raise AnsibleError(
                        f"the ansible-runner process died (exit code {child.exitcode})"
                    ) from None
                continue
            if kind == "event":
                handle(payload)
            else:
                return payload
    finally:
        child.join(timeout=10)


def _runner_child(kwargs: dict[str, Any], queue: multiprocessing.Queue[Any]) -> None:
    """In the spawned interpreter: run the playbook, send every event, then the outcome."""

    def relay(event: dict[str, Any]) -> bool:
        queue.put(("event", event))
        return True

    # a fresh private data dir per run: ansible-runner keeps env/ files there that would
    # otherwise carry one lab's settings into the next run
    with tempfile.TemporaryDirectory(prefix="gestic-ansible-") as private:
        result = ansible_runner.run(private_data_dir=private, event_handler=relay, **kwargs)
        tail = result.stdout.read().splitlines()[-15:] if result.rc != 0 else []
    queue.put(
        (
            "result",
            {
                "status": result.status,
                "rc": result.rc,
                "stats": result.stats,
                "artifact_dir": result.config.artifact_dir,
                "stdout_tail": tail,
            },
        )
    )


def _describe(event: dict[str, Any]) -> str:
    data = event.get("event_data", {})
    kind = event.get("event", "")
    if kind == "playbook_on_play_start":
        return f"play: {data.get('play', '')}"
    verdict = {
        "runner_on_ok": "ok",
        "runner_on_failed": "FAILED",
        "runner_on_unreachable": "UNREACHABLE",
    }
    state = verdict.get(kind, kind)
    result = data.get("res", {})
    if state == "ok" and result.get("changed"):
        state = "changed"
    line = f"  {data.get('host', '?')}: {state}: {data.get('task', '')}"
    if kind in ("runner_on_failed", "runner_on_unreachable"):
        # what failed, in Ansible's words (no_log tasks arrive already censored)
        reason = " ".join(str(result.get("msg") or result.get("stderr") or "").split())
        if reason:
            line += f": {reason[:400]}"
    return line
