"""Unit tests of the run ledger on a throwaway SQLite file and PostgreSQL database each."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from gestic.errors import GesticError, LedgerError
from gestic.store.ledger import Ledger, RunRecord

from ...paths import ROOT

SRC = ROOT / "src"


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's checkout, ledger or git config."""
    nogit = tmp_path / "nogit"
    nogit.mkdir()
    monkeypatch.setenv("GESTIC_ROOT", str(nogit))
    monkeypatch.setenv("GESTIC_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("GESTIC_USER", "tester")
    monkeypatch.delenv("GESTIC_LEDGER_URL", raising=False)
    # git must not find a repository above tmp_path, nor read the user's config.
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "gitconfig"))
    for var in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.db"


@pytest.fixture
def ledger(url: str) -> Iterator[Ledger]:
    with Ledger(url) as led:
        yield led


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=T", "-c", "user.email=t@example.org", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture
def git_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "README").write_text("hello\n")
    _git(repo, "add", "README")
    _git(repo, "commit", "-q", "-m", "first")
    monkeypatch.setenv("GESTIC_ROOT", str(repo))
    return repo


# --- start / finish ---------------------------------------------------------------------------


def test_start_finish_round_trip(ledger: Ledger) -> None:
    before = datetime.now(UTC)
    run_id = ledger.start(kind="infra.up", target="lab", details={"stack": "lab"})
    running = ledger.get(run_id)
    assert running.status == "running"
    assert running.finished_at is None
    assert running.duration_s is None
    assert running.details == {"stack": "lab"}

    time.sleep(0.02)
    rec = ledger.finish(run_id, status="succeeded", changed=3, summary="3 changed")
    assert isinstance(rec, RunRecord)
    assert rec.id == run_id
    assert (rec.kind, rec.target, rec.status) == ("infra.up", "lab", "succeeded")
    assert rec.changed == 3
    assert rec.summary == "3 changed"
    assert rec.user == "tester"
    assert rec.duration_s is not None
    assert 0.02 <= rec.duration_s < 10
    assert rec.finished_at is not None
    assert before <= rec.started_at <= rec.finished_at <= datetime.now(UTC)
    assert rec == ledger.get(run_id)


def test_timestamps_are_utc_aware(ledger: Ledger) -> None:
    run_id = ledger.start(kind="verify", target="lab")
    rec = ledger.finish(run_id, status="succeeded")
    assert rec.finished_at is not None
    for ts in (rec.started_at, rec.finished_at):
        assert ts.tzinfo is not None
        assert ts.utcoffset() == timedelta(0)


def test_timestamps_stored_as_utc(ledger: Ledger, url: str) -> None:
    run_id = ledger.start(kind="verify", target="lab")
    rec = ledger.get(run_id)
    engine = create_engine(url)
    # SQLite keeps the text written; PostgreSQL an instant, shown here in UTC (the test
    # cluster's own time zone is Bogotá's).
    column = "started_at" if engine.dialect.name == "sqlite" else "started_at AT TIME ZONE 'UTC'"
    with engine.connect() as conn:
        raw = conn.execute(
            text(f"SELECT {column} FROM gestic_runs WHERE id = :id"), {"id": run_id}
        ).scalar_one()
    engine.dispose()
    assert str(raw).startswith(rec.started_at.strftime("%Y-%m-%d %H:%M:%S"))


def test_finish_merges_details(ledger: Ledger) -> None:
    run_id = ledger.start(kind="converge", target="lab", details={"a": 1, "b": 1})
    rec = ledger.finish(run_id, status="failed", details={"b": 2, "c": [1, 2]})
    assert rec.details == {"a": 1, "b": 2, "c": [1, 2]}
    assert rec.status == "failed"


def test_details_with_non_json_values_are_stored_as_text(ledger: Ledger, tmp_path: Path) -> None:
    run_id = ledger.start(kind="converge", target="lab", details={"path": tmp_path})
    assert ledger.get(run_id).details == {"path": str(tmp_path)}


def test_duration_computed_by_another_ledger_object(url: str) -> None:
    with Ledger(url) as first, Ledger(url) as second:
        run_id = first.start(kind="infra.up", target="lab")
        time.sleep(0.02)
        rec = second.finish(run_id, status="succeeded")
    assert rec.duration_s is not None
    assert rec.duration_s >= 0.015


def test_finish_rejects_bad_status_and_double_finish(ledger: Ledger) -> None:
    run_id = ledger.start(kind="verify", target="lab")
    with pytest.raises(ValueError, match="status"):
        ledger.finish(run_id, status="running")
    ledger.finish(run_id, status="succeeded")
    with pytest.raises(LedgerError, match="already succeeded"):
        ledger.finish(run_id, status="failed")
    assert ledger.get(run_id).status == "succeeded"


def test_unknown_run(ledger: Ledger) -> None:
    with pytest.raises(LedgerError, match="no run 999"):
        ledger.get(999)
    with pytest.raises(LedgerError, match="no run 999"):
        ledger.finish(999, status="failed")


# --- record() ---------------------------------------------------------------------------------


def test_record_success(ledger: Ledger) -> None:
    with ledger.record(kind="infra.up", target="lab", details={"a": 1}) as run:
        run.changed = 5
        run.summary = "5 resources changed"
        run.add_details({"b": 2}, c=3)
        assert ledger.get(run.run_id).status == "running"
    assert run.result is not None
    rec = ledger.get(run.run_id)
    assert rec == run.result
    assert rec.status == "succeeded"
    assert rec.changed == 5
    assert rec.summary == "5 resources changed"
    assert rec.details == {"a": 1, "b": 2, "c": 3}
    assert rec.duration_s is not None
    assert rec.duration_s >= 0


class Boom(RuntimeError):
    pass


def _run_raising(ledger: Ledger, kind: str, exc: BaseException, run_ids: list[int]) -> None:
    with ledger.record(kind=kind, target="lab") as run:
        run_ids.append(run.run_id)
        run.changed = 1
        raise exc


def test_record_failure_by_exception(ledger: Ledger) -> None:
    run_ids: list[int] = []
    with pytest.raises(Boom, match="pulumi exploded"):
        _run_raising(ledger, "infra.up", Boom("pulumi exploded"), run_ids)
    rec = ledger.get(run_ids[0])
    assert rec.status == "failed"
    assert rec.summary == "pulumi exploded"
    assert rec.changed == 1
    assert rec.details["error_type"] == "Boom"
    assert rec.finished_at is not None


def test_record_keyboard_interrupt_is_failed(ledger: Ledger) -> None:
    run_ids: list[int] = []
    with pytest.raises(KeyboardInterrupt):
        _run_raising(ledger, "converge", KeyboardInterrupt(), run_ids)
    rec = ledger.get(run_ids[0])
    assert rec.status == "failed"
    assert rec.summary == "KeyboardInterrupt"


def test_record_handle_fail(ledger: Ledger) -> None:
    with ledger.record(kind="verify", target="lab") as run:
        run.fail("2 hosts drifted")
    rec = ledger.get(run.run_id)
    assert rec.status == "failed"
    assert rec.summary == "2 hosts drifted"


def test_record_keeps_body_exception_when_ledger_breaks(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_finish(*args: object, **kwargs: object) -> RunRecord:
        raise LedgerError("database went away")

    monkeypatch.setattr(ledger, "finish", broken_finish)
    with pytest.raises(ValueError, match="real problem") as excinfo:
        _run_raising(ledger, "verify", ValueError("real problem"), [])
    assert any("database went away" in note for note in excinfo.value.__notes__)


# --- runs() -----------------------------------------------------------------------------------


def test_runs_newest_first_and_kind_filter(ledger: Ledger) -> None:
    ids = []
    for kind in ("infra.up", "converge", "infra.up", "verify", "infra.up"):
        ids.append(ledger.start(kind=kind, target="lab"))
    all_runs = ledger.runs()
    assert [r.id for r in all_runs] == list(reversed(ids))
    starts = [r.started_at for r in all_runs]
    assert starts == sorted(starts, reverse=True)

    ups = ledger.runs(kind="infra.up")
    assert [r.id for r in ups] == [ids[4], ids[2], ids[0]]
    assert {r.kind for r in ups} == {"infra.up"}
    assert [r.id for r in ledger.runs(kind="infra.up", limit=2)] == [ids[4], ids[2]]
    assert [r.id for r in ledger.runs(limit=1)] == [ids[4]]
    assert ledger.runs(kind="drill") == []


def test_runs_target_filter(ledger: Ledger) -> None:
    lab = ledger.start(kind="infra.up", target="lab")
    ledger.start(kind="infra.up", target="prod")
    assert [r.id for r in ledger.runs(target="lab")] == [lab]


# --- commit and user detection ----------------------------------------------------------------


def test_commit_none_outside_git(ledger: Ledger) -> None:
    run_id = ledger.start(kind="verify", target="lab")
    assert ledger.get(run_id).commit is None


def test_commit_none_without_git_binary(
    ledger: Ledger, git_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(git_repo / "no-bin-here"))
    run_id = ledger.start(kind="verify", target="lab")
    assert ledger.get(run_id).commit is None


def test_commit_clean_and_dirty(ledger: Ledger, git_repo: Path) -> None:
    head = _git(git_repo, "rev-parse", "HEAD")
    assert len(head) == 40
    clean = ledger.get(ledger.start(kind="infra.up", target="lab"))
    assert clean.commit == head

    (git_repo / "README").write_text("changed\n")
    dirty = ledger.get(ledger.start(kind="infra.up", target="lab"))
    assert dirty.commit == f"{head}+dirty"

    _git(git_repo, "checkout", "--", "README")
    (git_repo / "new-file").write_text("untracked\n")
    untracked = ledger.get(ledger.start(kind="infra.up", target="lab"))
    assert untracked.commit == f"{head}+dirty"


def test_commit_none_in_repo_without_commits(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    _git(empty, "init", "-q")
    monkeypatch.setenv("GESTIC_ROOT", str(empty))
    assert ledger.get(ledger.start(kind="verify", target="lab")).commit is None


def test_user_from_env_else_login(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    assert ledger.get(ledger.start(kind="verify", target="lab")).user == "tester"
    monkeypatch.delenv("GESTIC_USER")
    monkeypatch.setattr("getpass.getuser", lambda: "login-name")
    assert ledger.get(ledger.start(kind="verify", target="lab")).user == "login-name"


# --- URL selection and errors -----------------------------------------------------------------


def test_from_env_uses_url_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "elsewhere.db"
    monkeypatch.setenv("GESTIC_LEDGER_URL", f"sqlite:///{target}")
    with Ledger.from_env() as led:
        led.start(kind="verify", target="lab")
        assert led.display_url == f"sqlite:///{target}"
    assert target.is_file()
    assert not (tmp_path / "state").exists()


def test_from_env_default_in_state_dir(tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert not state.exists()
    with Ledger.from_env() as led:
        run_id = led.start(kind="verify", target="lab")
        assert led.display_url == f"sqlite:///{state / 'ledger.db'}"
    assert (state / "ledger.db").is_file()
    with Ledger(f"sqlite:///{state / 'ledger.db'}") as again:
        assert again.get(run_id).kind == "verify"


def test_unwritable_location_raises_ledger_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    db = blocker / "ledger.db"
    url = f"sqlite:///{db}"
    with pytest.raises(LedgerError) as excinfo:
        Ledger(url)
    message = str(excinfo.value)
    assert url in message
    assert "unable to open database file" in message
    assert isinstance(excinfo.value, GesticError)
    assert not db.exists()


def test_unwritable_state_dir_raises_ledger_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x\n")
    monkeypatch.setenv("GESTIC_STATE_DIR", str(blocker / "state"))
    with pytest.raises(LedgerError, match="state directory"):
        Ledger.from_env()


@pytest.mark.parametrize("scheme", ["postgresql+psycopg", "postgresql", "postgresql+psycopg2"])
def test_unreachable_server_masks_password(scheme: str) -> None:
    # Nothing listens on port 1 (or, for psycopg2, the driver is missing): a LedgerError.
    url = f"{scheme}://gestic:s3cr3t@127.0.0.1:1/ledger"
    with pytest.raises(LedgerError) as excinfo:
        Ledger(url)
    message = str(excinfo.value)
    assert "s3cr3t" not in message
    assert f"{scheme}://gestic:***@127.0.0.1:1/ledger" in message


def test_wrong_password_masks_both(pg_url: str) -> None:
    wrong = make_url(pg_url).set(password="n0t-th3-p4ss")
    with pytest.raises(LedgerError, match="password authentication failed") as excinfo:
        Ledger(wrong.render_as_string(hide_password=False))
    message = str(excinfo.value)
    assert "n0t-th3-p4ss" not in message
    assert str(make_url(pg_url).password) not in message
    assert "gestic:***@127.0.0.1" in message


def test_plain_postgresql_url_uses_psycopg(pg_url: str) -> None:
    plain = pg_url.replace("postgresql+psycopg://", "postgresql://")
    if importlib.util.find_spec("psycopg2") is not None:
        pytest.skip("psycopg2 is installed: postgresql:// is SQLAlchemy's psycopg2 URL")
    with Ledger(plain) as led:
        assert led.get(led.start(kind="verify", target="lab")).kind == "verify"
        assert led.display_url.startswith("postgresql://gestic:***@")
        assert led._engine.dialect.driver == "psycopg"


def test_missing_postgresql_driver_says_which(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg2", None)  # import psycopg2 fails
    with pytest.raises(LedgerError, match=r"psycopg 3.*postgresql\+psycopg://") as excinfo:
        Ledger("postgresql+psycopg2://gestic:s3cr3t@db.example.org/ledger")
    assert "s3cr3t" not in str(excinfo.value)
    assert "postgresql+psycopg2://gestic:***@db.example.org/ledger" in str(excinfo.value)


def test_a_new_database_opened_by_several_ledgers_at_once(url: str) -> None:
    # As several hosts do on the first runs of a shared install: the second CREATE TABLE
    # must not fail on the first one's.
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_ledger() -> None:
        try:
            start.wait(timeout=30)
            with Ledger(url) as led:
                led.start(kind="verify", target="lab")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_ledger) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Ledger(url) as led:
        assert len(led.runs(kind="verify")) == 4


def test_nul_characters_in_a_summary_are_stored(ledger: Ledger, url: str) -> None:
    # PostgreSQL refuses NUL in text: the failed run must still be recorded.
    run_id = ledger.start(kind="converge", target="lab")
    rec = ledger.finish(run_id, status="failed", summary="bad output: \x00\x01")
    assert rec.status == "failed"
    nul = "\x00" if url.startswith("sqlite") else "\ufffd"
    assert rec.summary == f"bad output: {nul}\x01"


def test_bad_url_raises_ledger_error() -> None:
    with pytest.raises(LedgerError, match="cannot use the run ledger"):
        Ledger("not a url at all")


# --- concurrency ------------------------------------------------------------------------------


def test_sqlite_uses_wal(db_path: Path) -> None:
    with Ledger(f"sqlite:///{db_path}") as ledger:
        ledger.start(kind="verify", target="lab")
    engine = create_engine(f"sqlite:///{db_path}")
    with engine.connect() as conn:
        mode = conn.execute(text("PRAGMA journal_mode")).scalar_one()
    engine.dispose()
    assert mode == "wal"


def test_two_ledgers_same_database_interleaved(url: str) -> None:
    with Ledger(url) as a, Ledger(url) as b:
        ra = a.start(kind="infra.up", target="lab")
        rb = b.start(kind="converge", target="lab")
        b.finish(rb, status="succeeded", changed=2)
        a.finish(ra, status="failed", summary="nope")
        assert ra != rb
        for led in (a, b):
            by_id = {r.id: r for r in led.runs()}
            assert by_id[ra].status == "failed"
            assert by_id[rb].status == "succeeded"
            assert by_id[rb].changed == 2


def test_two_ledgers_same_database_concurrent_threads(url: str) -> None:
    per_thread = 25
    errors: list[BaseException] = []
    ledgers = [Ledger(url), Ledger(url)]

    def work(led: Ledger, name: str) -> None:
        try:
            for i in range(per_thread):
                with led.record(kind=name, target="lab") as run:
                    run.add_details(i=i)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(led, f"k{n}")) for n, led in enumerate(ledgers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    rows = ledgers[0].runs(limit=1000)
    assert len(rows) == 2 * per_thread
    assert {r.status for r in rows} == {"succeeded"}
    assert len(ledgers[1].runs(kind="k0", limit=1000)) == per_thread
    for led in ledgers:
        led.close()


def test_two_processes_same_database(url: str, tmp_path: Path) -> None:
    per_proc = 20
    script = textwrap.dedent(
        f"""
        from gestic.store.ledger import Ledger
        led = Ledger({url!r})
        for i in range({per_proc}):
            with led.record(kind="child", target="lab") as run:
                run.changed = i
        """
    )
    env = {
        "PYTHONPATH": str(SRC),
        "GESTIC_ROOT": str(tmp_path / "nogit"),
        "GESTIC_USER": "child",
        "GIT_CEILING_DIRECTORIES": str(tmp_path),
        "PATH": "/usr/bin:/bin",
    }
    child = subprocess.Popen([sys.executable, "-c", script], env=env)
    with Ledger(url) as led:
        for _ in range(per_proc):
            with led.record(kind="parent", target="lab"):
                pass
        assert child.wait(timeout=120) == 0
        assert len(led.runs(kind="child", limit=1000)) == per_proc
        assert len(led.runs(kind="parent", limit=1000)) == per_proc
        assert {r.user for r in led.runs(kind="child", limit=1000)} == {"child"}
