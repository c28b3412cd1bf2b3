"""`backup check` tells a repository locked by another restic from a damaged one."""

from __future__ import annotations

from typing import Any

import pytest

from gestic.cli.backup import _check_failure

from ..host_code import dr_agent as agent

# what restic 0.14 printed here for a check while a killed client's lock was still fresh
LOCKED = """\
using temporary cache in /tmp/restic-check-cache-1
create exclusive lock for repository
unable to create lock in backend: repository is already locked by PID 4242 on web-p1 by root \
(UID 0, GID 0)
lock was created at 2026-12-03 12:00:01 (2m3s ago)
storage ID 1a2b3c4d"""
DAMAGED = """\
load indexes
check all packs
pack 5f3e1c2a: not referenced in any index
error: pack 9d8e7f6a: does not match its hash
Fatal: repository contains errors"""


@pytest.mark.parametrize(
    ("code", "text", "state"),
    [(0, "no errors were found", "intact"), (1, LOCKED, "locked"), (1, DAMAGED, "damaged")],
)
def test_states(code: int, text: str, state: str) -> None:
    assert agent.check_state(code, text) == state


def _fake_restic(
    monkeypatch: pytest.MonkeyPatch, outputs: list[tuple[int, str]]
) -> list[list[str]]:
    calls: list[list[str]] = []

    class Done:
        def __init__(self, code: int, text: str) -> None:
            self.returncode, self.stdout, self.stderr = code, "", text

    def fake_run(cmd: list[str], what: str, **_: Any) -> Done:
        calls.append(list(cmd))
        if cmd[-1] == "unlock":
            return Done(0, "successfully removed 1 locks")
        return Done(*outputs.pop(0))

    monkeypatch.setattr(agent, "run", fake_run)
    monkeypatch.setattr(agent, "_write_status", lambda *_a: None)
    return calls


SETTINGS = {
    "service": "portal",
    "password_file": "/etc/gestic/backup/portal.password",
    "repositories": [{"name": "vault", "url": "sftp:bk-portal@bkp-a1:/repo"}],
}


def test_a_stale_lock_is_cleared_then_the_check_runs_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = _fake_restic(monkeypatch, [(1, LOCKED), (0, "no errors were found")])
    result = agent.cmd_check(SETTINGS, None, None)
    (repo,) = result["repos"]
    assert (result["ok"], repo["state"], repo["unlock_tried"]) == (True, "intact", True)
    assert [c[-1] for c in calls] == ["check", "unlock", "check"]


def test_a_live_lock_is_reported_as_a_lock_with_restics_words(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fake_restic(monkeypatch, [(1, LOCKED), (1, LOCKED)])
    result = agent.cmd_check(SETTINGS, None, None)
    (repo,) = result["repos"]
    assert (result["ok"], repo["state"]) == (False, "locked")
    message = _check_failure("portal", result["repos"], None)
    assert (
        "vault: locked: unable to create lock in backend: repository is already locked by "
        "PID 4242 on web-p1" in message
    )
    assert "the data was not judged" in message
    assert "restore from another copy" not in message


def test_damage_is_damage_and_says_what_restic_found(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_restic(monkeypatch, [(1, DAMAGED)])
    result = agent.cmd_check(SETTINGS, None, None)
    (repo,) = result["repos"]
    assert repo["state"] == "damaged"
    assert "unlock" not in [c[-1] for c in calls]
    message = _check_failure("portal", result["repos"], None)
    assert "vault: damaged: pack 5f3e1c2a: not referenced in any index" in message
    assert "restore from another copy" in message


def test_a_check_that_did_not_run_says_why() -> None:
    assert _check_failure("portal", [], "bkp-a1 is unreachable") == (
        "backup repository check of portal did not run: bkp-a1 is unreachable"
    )
