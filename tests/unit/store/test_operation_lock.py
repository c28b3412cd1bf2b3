"""One change at a time per environment: the lease in the ledger's database (SQLite, PostgreSQL)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import insert

from gestic.cli.main import cli
from gestic.environments.context import Context
from gestic.errors import OperationLockedError
from gestic.store.ledger import Ledger
from gestic.store.operation_lock import OperationLocks, _pid_start, lock_wait_s, locks_table

from ...paths import LAB_INVENTORY

NAME = "environment 'lab'"


@pytest.fixture
def locks(url: str) -> Iterator[OperationLocks]:
    made = OperationLocks(url)
    yield made
    made.close()


def _other(url: str, **kwargs: float) -> OperationLocks:
    """Another operator: same database, another machine."""
    other = OperationLocks(url, **kwargs)  # type: ignore[arg-type]
    other._hostname = "ci-runner-7"
    return other


def _left_behind(locks: OperationLocks, *, hostname: str, pid: int, renewed: datetime) -> None:
    """A row as a holder that never released it leaves it."""
    with locks._engine.begin() as conn:
        conn.execute(
            insert(locks_table).values(
                name=NAME, token="t0", what="converge", user="ana", hostname=hostname, pid=pid,
                pid_start=_pid_start(pid) or "123", acquired_at=renewed, renewed_at=renewed,
            )
        )  # fmt: skip


def test_a_second_operator_is_refused_naming_the_holder(locks: OperationLocks, url: str) -> None:
    other = _other(url)
    with locks.hold(NAME, what="drill.test site-loss", user="ana"):
        with pytest.raises(OperationLockedError) as refused, other.hold(NAME, what="x", user="b"):
            pytest.fail("the lock was taken twice")
        [held] = other.holders()
    message = str(refused.value)
    assert "environment 'lab' is busy: 'drill.test site-loss' by ana on " in message
    assert "--wait" in message
    assert held.what == "drill.test site-loss"
    assert locks.holders() == []  # released
    with other.hold(NAME, what="converge", user="b"):  # and free for the next one
        pass
    other.close()


def test_holding_is_reentrant_in_one_process(locks: OperationLocks) -> None:
    with locks.hold(NAME, what="demo", user="ana"):
        with locks.hold(NAME, what="converge", user="ana"):
            assert [h.what for h in locks.holders()] == ["demo"]
        assert len(locks.holders()) == 1  # the outer hold still has it
    assert locks.holders() == []


def test_a_failing_body_releases_the_lock(locks: OperationLocks) -> None:
    with pytest.raises(RuntimeError), locks.hold(NAME, what="converge", user="ana"):
        raise RuntimeError("the play failed")
    assert locks.holders() == []


def test_a_holder_not_renewed_within_the_ttl_is_taken_over(locks: OperationLocks, url: str) -> None:
    _left_behind(locks, hostname="ws-ana", pid=1, renewed=datetime.now(UTC) - timedelta(hours=1))
    with locks.hold(NAME, what="converge", user="b"):
        assert [h.user for h in locks.holders()] == ["b"]


def test_a_recent_holder_on_another_machine_is_not_taken_over(
    locks: OperationLocks, url: str
) -> None:
    _left_behind(locks, hostname="ws-ana", pid=1, renewed=datetime.now(UTC) - timedelta(seconds=5))
    with (
        pytest.raises(OperationLockedError, match="by ana on ws-ana"),
        locks.hold(NAME, what="converge", user="b"),
    ):
        pass


def test_a_dead_holder_on_this_machine_is_taken_over_at_once(locks: OperationLocks) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    # recorded as the dead process with a start time it never had: PID reuse cannot fool it
    _left_behind(locks, hostname=locks._hostname, pid=gone.pid, renewed=datetime.now(UTC))
    with locks.hold(NAME, what="drill failback", user="b"):
        assert [h.pid for h in locks.holders()] == [locks._pid]


def test_of_many_racing_operators_exactly_one_wins(url: str) -> None:
    racers = [_other(url) for _ in range(6)]
    for number, racer in enumerate(racers):
        racer._hostname = f"ws-{number}"
    start = threading.Barrier(len(racers))
    release = threading.Event()
    won: list[int] = []
    refused: list[int] = []

    def race(number: int) -> None:
        start.wait()
        try:
            with racers[number].hold(NAME, what="converge", user=f"u{number}"):
                won.append(number)
                release.wait(10)
        except OperationLockedError:
            refused.append(number)
            if len(refused) == len(racers) - 1:
                release.set()

    threads = [threading.Thread(target=race, args=(n,)) for n in range(len(racers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert len(won) == 1, (won, refused)
    assert sorted(won + refused) == list(range(len(racers)))
    for racer in racers:
        racer.close()


def test_a_waiter_gets_the_lock_when_the_holder_finishes(locks: OperationLocks, url: str) -> None:
    other = _other(url)
    held = threading.Event()

    def hold_a_second() -> None:
        with locks.hold(NAME, what="converge", user="ana"):
            held.set()
            time.sleep(1.0)

    holder = threading.Thread(target=hold_a_second)
    holder.start()
    held.wait(10)
    said: list[str] = []
    started = time.monotonic()
    with other.hold(NAME, what="drill", user="b", wait_s=30, say=said.append):
        waited = time.monotonic() - started
    holder.join()
    assert 0.2 < waited < 30
    assert said
    assert said[0].startswith("waiting for environment 'lab': 'converge' by ana")
    other.close()


def test_the_holder_renews_its_lease_while_it_works(url: str) -> None:
    mine = OperationLocks(url, ttl_s=1.0, heartbeat_s=0.2)
    other = _other(url, ttl_s=1.0, heartbeat_s=0.2)
    with mine.hold(NAME, what="drill", user="ana"):
        time.sleep(1.6)  # past the ttl: only the renewals keep it held
        with pytest.raises(OperationLockedError), other.hold(NAME, what="converge", user="b"):
            pass
    mine.close()
    other.close()


@pytest.mark.parametrize(
    ("raw", "problem"), [("soon", "not a number"), ("-3", "0 or more"), ("nan", "0 or more")]
)
def test_a_bad_wait_is_refused(monkeypatch: pytest.MonkeyPatch, raw: str, problem: str) -> None:
    monkeypatch.setenv("GESTIC_LOCK_WAIT", raw)
    with pytest.raises(OperationLockedError, match=f"GESTIC_LOCK_WAIT.*{problem}"):
        lock_wait_s()


def test_the_wait_option_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GESTIC_LOCK_WAIT", "30")
    assert lock_wait_s(5.0) == 5.0
    assert lock_wait_s() == 30.0
    monkeypatch.delenv("GESTIC_LOCK_WAIT")
    assert lock_wait_s() == 0.0


def test_a_converge_beside_a_running_drill_is_refused_before_it_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GESTIC_STATE_DIR", str(tmp_path / "state"))
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    monkeypatch.setenv("GESTIC_LEDGER_URL", ledger_url)
    monkeypatch.delenv("GESTIC_LOCK_WAIT", raising=False)
    target = Context.from_env(LAB_INVENTORY).target
    drill = _other(ledger_url)
    with drill.hold(f"environment '{target}'", what="drill.test site-loss", user="ana"):
        result = CliRunner().invoke(cli, ["--inventory", str(LAB_INVENTORY), "converge"])
    drill.close()
    assert isinstance(result.exception, OperationLockedError), result.output
    assert f"environment '{target}' is busy: 'drill.test site-loss' by ana on ci-runner-7" in str(
        result.exception
    )
    # refused before anything: no converge was even recorded as started
    assert Ledger(ledger_url).runs(kind="converge") == []
