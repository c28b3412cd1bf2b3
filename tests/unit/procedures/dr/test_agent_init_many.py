"""The agent's `init-many`: every service's missing repositories at once, primary before copy;
`--check` says what it would create and creates nothing; a service without settings is named."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from ...host_code import dr_agent as agent

SERVICES = ("cartera-db", "portal", "transferencia")


def _settings(config: Path, service: str) -> None:
    repos = [
        {"name": name, "url": f"sftp:bk-{service}@{host}:/repo"}
        for name, host in (("local", "bkp-a1"), ("remote", "bkp-x1"))
    ]
    data = {
        "service": service, "paths": [], "databases": [], "repositories": repos,
        "password_file": f"/etc/gestic/backup/{service}.password", "staging": "/tmp",
    }  # fmt: skip
    (config / f"{service}.json").write_text(json.dumps(data))


class FakeRestic:
    """Repositories that exist (by URL); `init` of a copy needs its primary to exist already."""

    def __init__(self, existing: set[str]) -> None:
        self.existing = set(existing)
        self.calls: list[list[str]] = []
        self.lock = threading.Lock()

    def __call__(self, cmd: Sequence[str], what: str, **_: Any) -> subprocess.CompletedProcess[str]:
        cmd = list(cmd)
        url = cmd[cmd.index("--repo") + 1]
        with self.lock:
            self.calls.append(cmd)
            if cmd[-2:] == ["cat", "config"]:
                return subprocess.CompletedProcess(cmd, 0 if url in self.existing else 1, "", "")
            assert "init" in cmd, cmd
            if "--from-repo" in cmd:
                assert cmd[cmd.index("--from-repo") + 1] in self.existing, "copy before primary"
            self.existing.add(url)
            return subprocess.CompletedProcess(cmd, 0, "", "")

    def inits(self) -> list[str]:
        return sorted(c[c.index("--repo") + 1] for c in self.calls if "init" in c)


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for service in SERVICES:
        _settings(tmp_path, service)
    # the per-service locks live in /run on the hosts; here, in the test's directory
    monkeypatch.setattr(agent, "_locked", lambda _service: _NoLock())
    return tmp_path


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None


def test_creates_only_the_missing_repositories_of_every_service(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    restic = FakeRestic({"sftp:bk-portal@bkp-a1:/repo", "sftp:bk-portal@bkp-x1:/repo"})
    monkeypatch.setattr(agent, "run", restic)
    result = agent.cmd_init_many(list(SERVICES), config_dir=config)
    assert result["changed"]
    assert result["created"] == {
        "cartera-db": ["local", "remote"],
        "transferencia": ["local", "remote"],
    }
    made = [(s, h) for s in ("cartera-db", "transferencia") for h in ("bkp-a1", "bkp-x1")]
    assert restic.inits() == sorted(f"sftp:bk-{s}@{h}:/repo" for s, h in made)
    restic.calls.clear()
    again = agent.cmd_init_many(list(SERVICES), config_dir=config)
    assert not again["changed"]
    assert again["created"] == {}
    assert restic.inits() == []


def test_check_reports_what_it_would_create_and_creates_nothing(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    restic = FakeRestic({"sftp:bk-portal@bkp-a1:/repo"})
    monkeypatch.setattr(agent, "run", restic)
    result = agent.cmd_init_many(list(SERVICES), check=True, config_dir=config)
    assert result["changed"]
    assert result["created"]["portal"] == ["remote"]
    assert restic.inits() == []


def test_a_service_without_settings_is_named(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agent, "run", FakeRestic(set()))
    with pytest.raises(agent.AgentError, match="no backup settings for service 'nomina'"):
        agent.cmd_init_many(["portal", "nomina"], config_dir=config)


def test_the_command_line_takes_several_services_and_check() -> None:
    args = agent.parse(["init-many", "--check", "portal", "cartera-db"])
    assert args.command == "init-many"
    assert args.services == ["portal", "cartera-db"]
    assert args.check
