"""Drill cleanup without a lab: hosts stopped by a drill come back, and a recovery interrupted
halfway is still undone by the agent's cleanup."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gestic.lab.access import LabAccess
from gestic.procedures.dr import failback

from ...host_code import dr_agent as agent


class FakeStack:
    def __init__(self, running: set[str], starts_on_up: set[str]) -> None:
        self.ops: list[str] = []
        self.running = running
        self.starts_on_up = starts_on_up
        self.refreshed = False
        self.settings = SimpleNamespace(state_dir=Path("/nonexistent"), lab="tx1")

    def run(self, operation: str) -> None:
        self.ops.append(operation)
        if operation == "refresh":
            self.refreshed = True
        if operation == "up" and self.refreshed:  # like Pulumi: up alone sees no change
            self.running |= self.starts_on_up


class FakeAccess:
    def __init__(self) -> None:
        self.dropped: list[str] = []
        self.waited: list[str] = []

    def write(self, _model: object) -> None:
        return None

    def drop_masters(self, hosts: list[str]) -> None:
        self.dropped += hosts

    def wait_for_login(self, hosts: dict[str, IPv4Address], *, timeout: float) -> dict[str, str]:
        self.waited += sorted(hosts)
        return {}


def _ctx(running: set[str], starts_on_up: set[str]) -> Any:
    hosts = {
        name: SimpleNamespace(address=IPv4Address(f"10.0.0.{i + 1}"))
        for i, name in enumerate(("db-a1", "db-p1", "web-p1"))
    }
    return SimpleNamespace(
        model=SimpleNamespace(hosts=hosts),
        lab_stack=FakeStack(running, starts_on_up),
        access=FakeAccess(),
        is_lab=True,
    )


FakeLab = Callable[[set[str], set[str]], Any]


@pytest.fixture
def fake_lab(monkeypatch: pytest.MonkeyPatch) -> FakeLab:
    """A context whose hosts in `running` run; `up` starts `starts_on_up` (after a refresh)."""

    def make(running: set[str], starts_on_up: set[str]) -> Any:
        ctx = _ctx(running, starts_on_up)

        def host_pid(*, state_dir: Path, name: str) -> int | None:
            return 1 if name in ctx.lab_stack.running else None

        monkeypatch.setattr(failback.lab_host, "host_pid", host_pid)
        return ctx

    return make


def test_stopped_hosts_are_refreshed_then_started_and_must_accept_logins(
    fake_lab: FakeLab,
) -> None:
    ctx = fake_lab({"db-p1", "web-p1"}, {"db-a1"})
    started, problems = failback.start_stopped_hosts(ctx)
    assert ctx.lab_stack.ops == ["refresh", "up"]
    assert started == ["db-a1"]
    assert problems == []
    assert ctx.access.dropped == ["db-a1"]
    assert ctx.access.waited == ["db-a1"]


def test_a_host_that_does_not_come_back_is_reported(fake_lab: FakeLab) -> None:
    ctx = fake_lab({"web-p1"}, {"db-p1"})
    started, problems = failback.start_stopped_hosts(ctx)
    assert started == ["db-p1"]
    assert problems == ["host db-a1 is still stopped"]


def test_nothing_runs_when_every_host_is_up(fake_lab: FakeLab) -> None:
    ctx = fake_lab({"db-a1", "db-p1", "web-p1"}, set())
    assert failback.start_stopped_hosts(ctx) == ([], [])
    assert ctx.lab_stack.ops == []


def test_login_check_uses_its_own_connection_through_the_router(tmp_path: Path) -> None:
    access = LabAccess(lab="tx1", state_dir=tmp_path)
    cmd = access.login_command("db-a1", IPv4Address("10.213.2.10"))
    text = " ".join(cmd)
    assert cmd[:3] == ["ssh", "-F", "none"]
    assert "ProxyCommand=ip netns exec gestic-tx1 nc %h %p" in text
    assert "ControlPath=none" in text
    assert "BatchMode=yes" in text
    assert f"IdentityFile={tmp_path / 'id_ed25519'}" in text
    assert "HostKeyAlias=db-a1" in text
    assert cmd[-2:] == ["10.213.2.10", "true"]


# --- the agent: an interrupted recovery --------------------------------------------------------


class Interrupted(BaseException):
    pass


def _settings(tmp_path: Path) -> dict[str, Any]:
    return {
        "service": "portal",
        "paths": [str(tmp_path / "srv" / "app")],
        "databases": [],
        "repositories": [{"name": "primary", "url": "sftp:x"}],
        "password_file": "/dev/null",
        "staging": str(tmp_path / "staging"),
    }


def _fake_restic(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def snapshots(*_a: Any, **_k: Any) -> list[dict[str, Any]]:
        return [{"id": "abc", "short_id": "abc", "time": "t", "hostname": "web-p1"}]

    def run(cmd: list[str], what: str, **_k: Any) -> Any:
        target = Path(cmd[cmd.index("--target") + 1])
        app = target / str(tmp_path / "srv" / "app").lstrip("/")
        app.mkdir(parents=True)
        (app / "app.py").write_text("restored\n")
        return SimpleNamespace(returncode=0, stdout="", stderr="")

    monkeypatch.setattr(agent, "STATE_ROOT", tmp_path / "state")
    monkeypatch.setattr(agent, "snapshots", snapshots)
    monkeypatch.setattr(agent, "run", run)


def test_a_recovery_interrupted_after_setting_data_aside_is_undone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_restic(monkeypatch, tmp_path)
    live = tmp_path / "srv" / "app"
    live.mkdir(parents=True)
    (live / "app.py").write_text("production\n")
    real_move = agent._move
    calls: list[Path] = []

    def move(src: Path, dst: Path) -> None:
        calls.append(dst)
        if len(calls) == 2:  # the live data is aside; killed before the restore is in place
            raise Interrupted
        real_move(src, dst)

    monkeypatch.setattr(agent, "_move", move)
    settings = _settings(tmp_path)
    with pytest.raises(Interrupted):
        agent.cmd_recover(settings, mode="live", from_host=None, tag=None, repo_name=None, units=[])
    assert not live.exists()
    state = json.loads((tmp_path / "state" / "portal" / "state.json").read_text())
    assert state["aside_paths"] == [str(live)]
    result = agent.cmd_cleanup(settings)
    assert result["changed"]
    assert result["undone"] == [str(live)]
    assert (live / "app.py").read_text() == "production\n"
    assert not (tmp_path / "state" / "portal").exists()


def test_a_move_across_filesystems_is_complete_or_absent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "a"
    src.mkdir()
    (src / "f").write_text("x")
    dst = tmp_path / "b" / "a"

    def no_rename(self: Path, target: Path) -> Path:
        if self == src:
            raise OSError(18, "Invalid cross-device link")
        return Path.replace(self, target)

    monkeypatch.setattr(Path, "rename", no_rename)
    agent._move(src, dst)
    assert (dst / "f").read_text() == "x"
    assert not src.exists()
    assert not (tmp_path / "b" / "a.partial").exists()


def test_the_file_marker_is_no_looser_than_its_directory(tmp_path: Path) -> None:
    data = tmp_path / "remote"
    data.mkdir()
    gid = 4 if os.geteuid() == 0 else os.getegid()  # e.g. adm
    os.chown(data, -1, gid)
    settings = {**_settings(tmp_path), "paths": [str(data)]}
    agent.cmd_marker_write(settings)
    marker = data / agent.MARKER_FILE
    assert marker.stat().st_gid == gid
    assert marker.stat().st_mode & 0o777 == 0o640
    assert agent.marker_read(settings) is not None


def test_outside_a_lab_no_host_is_started() -> None:
    ctx: Any = SimpleNamespace(is_lab=False)  # no lab stack: touching it would fail
    assert failback.start_stopped_hosts(ctx) == ([], [])


class FakePostgres:
    """The databases of a stand-in PostgreSQL, driven by the agent's psql/pg_restore calls."""

    def __init__(self, databases: set[str]) -> None:
        self.databases = set(databases)
        self.restored: list[str] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(agent, "_db_exists", lambda name: name in self.databases)
        monkeypatch.setattr(agent, "_drop_db", self.databases.discard)
        monkeypatch.setattr(agent, "_pg_running", lambda: True)

        def rename(old: str, new: str) -> None:
            self.databases.discard(old)
            self.databases.add(new)

        monkeypatch.setattr(agent, "_rename_db", rename)


def test_a_database_the_host_did_not_have_is_dropped_by_cleanup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cartera-db on its DR host: cartera exists there (set aside, put back), the RPA ledger's
    database gestic does not (restored with --create, then dropped): the host ends as it was."""
    pg = FakePostgres({"cartera", "postgres"})
    pg.install(monkeypatch)
    staging = tmp_path / "staging"

    def run(cmd: list[str], what: str, **_k: Any) -> Any:
        if "--target" in cmd:
            dumps = Path(cmd[cmd.index("--target") + 1]) / str(staging).lstrip("/") / "databases"
            dumps.mkdir(parents=True)
            for db in ("cartera", "gestic"):
                (dumps / f"{db}.dump").write_bytes(b"dump")
        elif "pg_restore" in cmd:
            name = "cartera" if "cartera" in what else "gestic"
            assert name not in pg.databases, f"{name} still there before its restore"
            pg.databases.add(name)
            pg.restored.append(name)
        return SimpleNamespace(returncode=0, stdout="", stderr="")

    monkeypatch.setattr(agent, "STATE_ROOT", tmp_path / "state")
    monkeypatch.setattr(
        agent, "snapshots", lambda *_a, **_k: [{"id": "a", "short_id": "a", "time": "t"}]
    )
    monkeypatch.setattr(agent, "run", run)
    monkeypatch.setattr(agent, "_db_bytes", lambda *_a: 0)
    monkeypatch.setattr(agent, "marker_read", lambda *_a, **_k: None)
    settings = {
        **_settings(tmp_path),
        "service": "cartera-db",
        "paths": [],
        "databases": ["cartera", "gestic"],
    }
    for _ in range(2):  # a rerun keeps the first run's record of what was there before
        agent.cmd_recover(settings, mode="live", from_host=None, tag=None, repo_name=None, units=[])
        state = json.loads((tmp_path / "state" / "cartera-db" / "state.json").read_text())
        assert state["aside_databases"] == ["cartera"]
        assert state["created_databases"] == ["gestic"]
    assert pg.restored == ["cartera", "gestic", "cartera", "gestic"]
    assert pg.databases == {"postgres", "cartera", "cartera_gestic_aside", "gestic"}
    result = agent.cmd_cleanup(settings)
    assert result["undone"] == ["database cartera", "database gestic (restored here, none before)"]
    assert pg.databases == {"postgres", "cartera"}
    assert agent.cmd_cleanup(settings)["changed"] is False  # idempotent


def test_a_scratch_restore_verifies_each_database_without_owners(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`gestic backup verify` on a host without the service: every database of the backup goes
    into its own scratch copy, restored with --no-owner (no role needed), and cleanup drops them."""
    pg = FakePostgres({"postgres"})
    pg.install(monkeypatch)
    staging = tmp_path / "staging"
    restores: list[list[str]] = []

    def run(cmd: list[str], what: str, **_k: Any) -> Any:
        if "--target" in cmd:
            dumps = Path(cmd[cmd.index("--target") + 1]) / str(staging).lstrip("/") / "databases"
            dumps.mkdir(parents=True)
            for db in ("cartera", "gestic"):
                (dumps / f"{db}.dump").write_bytes(b"dump")
        elif "pg_restore" in cmd:
            restores.append(cmd)
        return SimpleNamespace(returncode=0, stdout="", stderr="")

    def psql(database: str, sql: str, what: str) -> str:
        if sql.startswith("CREATE DATABASE"):
            pg.databases.add(sql.split('"')[1])
        return ""

    monkeypatch.setattr(agent, "STATE_ROOT", tmp_path / "state")
    monkeypatch.setattr(
        agent, "snapshots", lambda *_a, **_k: [{"id": "a", "short_id": "a", "time": "t"}]
    )
    monkeypatch.setattr(agent, "run", run)
    monkeypatch.setattr(agent, "psql", psql)
    monkeypatch.setattr(agent, "_db_bytes", lambda *_a: 0)
    monkeypatch.setattr(agent, "marker_read", lambda *_a, **_k: None)
    settings = {**_settings(tmp_path), "paths": [], "databases": ["cartera", "gestic"]}
    agent.cmd_recover(settings, mode="scratch", from_host=None, tag=None, repo_name=None, units=[])
    assert pg.databases == {"postgres", "cartera_gestic_verify", "gestic_gestic_verify"}
    assert [c[c.index("-d") + 1] for c in restores] == [
        "cartera_gestic_verify",
        "gestic_gestic_verify",
    ]
    assert all("--no-owner" in c and "--create" not in c for c in restores)
    result = agent.cmd_cleanup(settings)
    assert result["undone"] == [
        "database cartera_gestic_verify",
        "database gestic_gestic_verify",
    ]
    assert pg.databases == {"postgres"}
