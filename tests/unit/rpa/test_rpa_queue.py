"""The work-item queue: claims, leases, retries, backoff, dead letters, drafts, parallel workers.

Real databases (a SQLite file, a PostgreSQL database: `url` in conftest.py) and real
processes; no mocks.
"""

from __future__ import annotations

import multiprocessing
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from gestic.errors import LeaseLostError, PayloadError, QueueError
from gestic.rpa.queue import (
    APPLICATION,
    BUSINESS,
    DONE,
    FAILED,
    IN_PROGRESS,
    PENDING,
    WorkQueue,
    backoff_delay,
)


@pytest.fixture
def queue(url: str) -> Iterator[WorkQueue]:
    q = WorkQueue(url)
    yield q
    q.close()


def test_claim_complete_and_empty_queue(queue: WorkQueue) -> None:
    first = queue.create(bot="b", queue="q", payload={"n": 1}, files={"a.txt": b"hola"})
    second = queue.create(bot="b", queue="q", payload={"n": 2})
    item = queue.claim("q", lease_s=30, worker="w1")
    assert item is not None
    assert item.id == first
    assert item.state == IN_PROGRESS
    assert item.attempts == 1
    assert queue.get_file(first, "a.txt") == b"hola"
    assert item.lease_owner is not None
    queue.complete(first, item.lease_owner)
    done = queue.get(first)
    assert done.state == DONE
    assert done.finished_at is not None
    assert done.lease_owner is None
    other = queue.claim("q", lease_s=30)
    assert other is not None
    assert other.id == second
    assert queue.claim("q", lease_s=30) is None  # the only other item is held
    assert queue.claim("another-queue", lease_s=30) is None


def test_completing_twice_or_without_the_lease_is_refused(queue: WorkQueue) -> None:
    item_id = queue.create(bot="b", queue="q")
    item = queue.claim("q", lease_s=30)
    assert item is not None
    assert item.lease_owner
    with pytest.raises(LeaseLostError):
        queue.complete(item_id, "not-the-owner")
    queue.complete(item_id, item.lease_owner)
    with pytest.raises(LeaseLostError):
        queue.complete(item_id, item.lease_owner)


def test_expired_lease_is_claimed_again_and_completed_once(queue: WorkQueue) -> None:
    item_id = queue.create(bot="b", queue="q", max_attempts=3)
    dead = queue.claim("q", lease_s=0.3, worker="dies")
    assert dead is not None
    assert dead.lease_owner
    assert queue.claim("q", lease_s=30) is None  # lease still valid
    time.sleep(0.4)
    assert queue.counts("q").expired == 1
    taken = queue.claim("q", lease_s=30, worker="takes-over")
    assert taken is not None
    assert taken.id == item_id
    assert taken.attempts == 2
    assert taken.lease_owner
    # The dead worker wakes up: it can neither complete nor fail the item any more.
    with pytest.raises(LeaseLostError):
        queue.complete(item_id, dead.lease_owner)
    with pytest.raises(LeaseLostError):
        queue.fail(item_id, dead.lease_owner, exception_type=APPLICATION)
    queue.complete(item_id, taken.lease_owner)
    attempts = queue.attempts([item_id])
    assert [(a.attempt, a.outcome, a.exception_code) for a in attempts] == [
        (1, "abandoned", "LEASE_EXPIRED"),
        (2, DONE, None),
    ]


def test_heartbeat_keeps_the_lease(queue: WorkQueue) -> None:
    queue.create(bot="b", queue="q")
    item = queue.claim("q", lease_s=2.0)
    assert item is not None
    assert item.lease_owner
    for _ in range(4):
        time.sleep(0.6)
        assert queue.heartbeat(item.id, item.lease_owner, lease_s=2.0)
    assert queue.claim("q", lease_s=30) is None  # 2.4 s later, still held
    assert not queue.heartbeat(item.id, "someone-else", lease_s=2.0)


def test_application_failure_retries_with_backoff_then_dead_letters(queue: WorkQueue) -> None:
    item_id = queue.create(bot="b", queue="q", max_attempts=3)
    delays = []
    for attempt in (1, 2, 3):
        item = queue.claim("q", lease_s=30)
        assert item is not None
        assert item.attempts == attempt
        assert item.lease_owner
        after = queue.fail(
            item_id,
            item.lease_owner,
            exception_type=APPLICATION,
            code="PORTAL_CAIDO",
            message="timeout",
            # long enough that the next claim comes before it ends on a loaded machine
            backoff_s=1.0,
            backoff_max_s=1.5,
        )
        if attempt < 3:
            assert after.state == PENDING
            assert not after.dead_letter
            delays.append((after.available_at - after.updated_at).total_seconds())
            assert queue.claim("q", lease_s=30) is None  # held back by the backoff
            assert queue.counts("q").waiting == 1
            time.sleep(delays[-1] + 0.05)
        else:
            assert after.state == FAILED
            assert after.dead_letter
            assert after.exception_code == "PORTAL_CAIDO"
    assert delays == pytest.approx([1.0, 1.5], abs=0.01)  # doubled, then capped
    assert queue.claim("q", lease_s=30) is None
    counts = queue.counts("q")
    assert counts.failed_application == 1
    assert counts.outstanding == 0


def test_business_failure_is_never_retried(queue: WorkQueue) -> None:
    item_id = queue.create(bot="b", queue="q", max_attempts=5)
    item = queue.claim("q", lease_s=30)
    assert item is not None
    assert item.lease_owner
    after = queue.fail(
        item_id, item.lease_owner, exception_type=BUSINESS, code="PAGO_MALFORMADO", message="x"
    )
    assert after.state == FAILED
    assert not after.dead_letter
    assert after.attempts == 1
    assert queue.claim("q", lease_s=30) is None
    with pytest.raises(ValueError, match="exception type"):
        queue.fail(item_id, "x", exception_type="OTHER")


def test_expired_last_attempt_is_dead_lettered(queue: WorkQueue) -> None:
    item_id = queue.create(bot="b", queue="q", max_attempts=1)
    item = queue.claim("q", lease_s=0.1)
    assert item is not None
    time.sleep(0.2)
    assert queue.claim("q", lease_s=30) is None  # no attempts left: swept, not claimed
    stored = queue.get(item_id)
    assert stored.state == FAILED
    assert stored.dead_letter
    assert stored.exception_code == "LEASE_EXPIRED"


def test_outputs_are_published_only_when_their_input_is_final(queue: WorkQueue) -> None:
    parent = queue.create(bot="b", queue="in", max_attempts=2)
    item = queue.claim("in", lease_s=30)
    assert item is not None
    assert item.lease_owner
    queue.create_output(
        parent_id=parent, queue="out", payload={"a": 1}, max_attempts=2, sla_minutes=10
    )
    assert queue.claim("out", lease_s=30) is None  # a draft until the input is released
    queue.fail(parent, item.lease_owner, exception_type=APPLICATION, backoff_s=0)
    assert queue.items(queue="out") == []  # discarded: the retry will produce it again
    again = queue.claim("in", lease_s=30)
    assert again is not None
    assert again.lease_owner
    out_id = queue.create_output(
        parent_id=parent, queue="out", payload={"a": 1}, max_attempts=2, sla_minutes=10
    )
    queue.complete(parent, again.lease_owner)
    published = queue.get(out_id)
    assert published.state == PENDING
    assert published.sla_due_at is not None
    assert published.run_id is None
    assert published.parent_id == parent
    # A BUSINESS failure is final: its outputs (e.g. the rejection record) are published.
    rejected = queue.create(bot="b", queue="in")
    held = queue.claim("in", lease_s=30)
    assert held is not None
    assert held.id == rejected
    assert held.lease_owner
    final = queue.create_output(
        parent_id=rejected,
        queue="records",
        payload={},
        max_attempts=1,
        sla_minutes=None,
        final=True,
    )
    queue.fail(rejected, held.lease_owner, exception_type=BUSINESS, code="X")
    assert queue.get(final).state == DONE


def test_release_held_completes_only_on_a_clean_exit(queue: WorkQueue) -> None:
    a = queue.create(bot="b", queue="q")
    b = queue.create(bot="b", queue="q")
    assert queue.claim("q", lease_s=30, worker="clean") is not None
    assert queue.claim("q", lease_s=30, worker="killed") is not None
    assert queue.release_held("clean", done=True) == [a]
    assert queue.release_held("killed", done=False) == [b]
    assert queue.get(a).state == DONE
    assert queue.get(b).state == IN_PROGRESS  # left to its lease


def test_requeue_failed_gives_a_fresh_budget(queue: WorkQueue) -> None:
    tech = queue.create(bot="b", queue="q", max_attempts=1)
    biz = queue.create(bot="b", queue="q", max_attempts=1)
    for item_id, kind in ((tech, APPLICATION), (biz, BUSINESS)):
        item = queue.claim("q", lease_s=30)
        assert item is not None
        assert item.id == item_id
        assert item.lease_owner
        queue.fail(item_id, item.lease_owner, exception_type=kind)
    assert queue.requeue_failed(queue="q") == [tech]
    again = queue.get(tech)
    assert again.state == PENDING
    assert again.max_attempts == 2
    assert not again.dead_letter
    assert queue.requeue_failed(queue="q", include_business=True) == [biz]
    claimed = {queue.claim("q", lease_s=30).id, queue.claim("q", lease_s=30).id}  # type: ignore[union-attr]
    assert claimed == {tech, biz}


def test_long_codes_and_nul_in_messages_are_stored(queue: WorkQueue, url: str) -> None:
    # SQLite stores anything; PostgreSQL enforces the code's width and refuses NUL in text.
    item_id = queue.create(bot="b", queue="q", max_attempts=2)
    item = queue.claim("q", lease_s=30)
    assert item is not None
    assert item.lease_owner
    after = queue.fail(
        item_id, item.lease_owner, exception_type=APPLICATION, code="X" * 100, message="a\x00b"
    )
    message = "a\x00b" if url.startswith("sqlite") else "a\ufffdb"
    assert (after.state, after.exception_code, after.exception_message) == (
        PENDING,
        "X" * 64,
        message,
    )
    attempt = queue.attempts([item_id])[0]
    assert (attempt.exception_code, attempt.exception_message) == ("X" * 64, message)


def test_claim_skips_items_another_host_is_claiming(pg_url: str) -> None:
    # PostgreSQL only: a row locked by another claim (FOR UPDATE) is skipped, not waited
    # for; lock_timeout turns a claim that would wait into an error instead of a hang.
    queue = WorkQueue(f"{pg_url}?options=-c%20lock_timeout%3D5000")
    first = queue.create(bot="b", queue="q")
    second = queue.create(bot="b", queue="q")
    other_host = create_engine(pg_url)
    try:
        with other_host.begin() as conn:
            conn.execute(
                text("SELECT id FROM gestic_rpa_items WHERE id = :id FOR UPDATE"), {"id": first}
            )
            started = time.monotonic()
            claimed = queue.claim("q", lease_s=30)
            assert time.monotonic() - started < 2
            assert claimed is not None
            assert claimed.id == second
            assert queue.claim("q", lease_s=30) is None  # the other one is still locked
        again = queue.claim("q", lease_s=30)  # its lock is gone
        assert again is not None
        assert again.id == first
    finally:
        other_host.dispose()
        queue.close()


def test_backoff_delay() -> None:
    assert [backoff_delay(n, 10, 60) for n in (1, 2, 3, 4)] == [10, 20, 40, 60]
    with pytest.raises(ValueError, match="attempt"):
        backoff_delay(0, 1, 1)


def _drain(url: str, worker: str, start: Barrier, out: multiprocessing.Queue[list[int]]) -> None:
    q = WorkQueue(url)
    mine = []
    # Every worker is connected before any claims: on a loaded machine the first
    # spawned process would otherwise drain the queue before the others start.
    start.wait(timeout=120)
    while (item := q.claim("q", lease_s=60, worker=worker)) is not None:
        assert item.lease_owner
        time.sleep(0.002)  # a robot's work takes time; lets the claims interleave
        q.complete(item.id, item.lease_owner)
        mine.append(item.id)
    out.put(mine)


def test_parallel_workers_never_process_an_item_twice(url: str, queue: WorkQueue) -> None:
    ids = [queue.create(bot="b", queue="q", payload={"n": n}) for n in range(120)]
    ctx = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[list[int]] = ctx.Queue()
    start = ctx.Barrier(4)
    procs = [ctx.Process(target=_drain, args=(url, f"w{k}", start, results)) for k in range(4)]
    for p in procs:
        p.start()
    per_worker = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    processed = [i for chunk in per_worker for i in chunk]
    assert sorted(processed) == ids  # every item once, none twice
    assert sum(1 for chunk in per_worker if chunk) >= 2  # the work was really shared
    assert queue.counts("q").done == 120
    assert all(a.attempt == 1 for a in queue.attempts(ids))


def test_unavailable_database_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "ledger.db"
    with pytest.raises(QueueError, match=r"cannot open the work-item queue.*writable"):
        WorkQueue(f"sqlite:///{missing}")
    assert not missing.parent.exists()
    with pytest.raises(QueueError, match="cannot use the work-item queue"):
        WorkQueue("nosuchdriver://x/y")
    with pytest.raises(QueueError, match=r"cannot open the work-item queue at postgresql\+") as e:
        WorkQueue("postgresql+psycopg://gestic:s3cr3t@127.0.0.1:1/ledger")
    assert "s3cr3t" not in str(e.value)
    assert "gestic:***@127.0.0.1:1" in str(e.value)


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        ([1, 2], "must be a JSON object (name: value pairs), not list"),
        ("texto", "must be a JSON object (name: value pairs), not str"),
        ({"monto": float("nan")}, "is not strict JSON"),
        ({"monto": float("inf")}, "is not strict JSON"),
        ({"cuando": time}, "is not JSON"),
        ({"datos": "x" * 100_001}, "bytes of JSON, more than the 100000 allowed"),
    ],
    ids=["list", "string", "nan", "infinity", "not-json", "too-large"],
)
def test_payloads_are_bounded_json_objects(queue: WorkQueue, payload: object, why: str) -> None:
    with pytest.raises(PayloadError, match=re.escape(why)):
        queue.create(bot="b", queue="q", payload=payload)
    assert queue.items() == []  # refused before anything was stored
    item_id = queue.create(bot="b", queue="q", payload={"n": 1})
    with pytest.raises(PayloadError, match=re.escape(why)):
        queue.save_payload(item_id, payload)
    assert queue.load_payload(item_id) == {"n": 1}
    assert queue.create(bot="b", queue="q")
    assert queue.items()[-1].payload == {}


def test_outcomes_by_counts_what_a_worker_ended_itself(queue: WorkQueue) -> None:
    ids = [queue.create(bot="b", queue="q", payload={"n": n}, max_attempts=2) for n in range(3)]
    held = [queue.claim("q", lease_s=30, worker="w1") for _ in ids]
    assert all(h is not None for h in held)
    first, second, third = (h for h in held if h is not None)
    assert first.lease_owner
    assert second.lease_owner
    queue.complete(first.id, first.lease_owner)
    queue.fail(second.id, second.lease_owner, exception_type=APPLICATION, code="X")
    # the third is still held: not ended, so not counted
    assert queue.outcomes_by("w1") == {DONE: 1, "application": 1}
    assert queue.outcomes_by("w2") == {}
    assert third.state == IN_PROGRESS


def _claim_fire(url: str, host: str, start: Barrier, out: multiprocessing.Queue[str]) -> None:
    q = WorkQueue(url)
    start.wait(timeout=120)
    first = q.claim_fire("b", DUE, host=host)
    out.put(host if first is None else f"lost to {first}")
    q.close()


DUE = datetime(2026, 12, 7, 12, 30, tzinfo=UTC)


def test_a_scheduled_fire_is_claimed_by_one_host_of_many(url: str, queue: WorkQueue) -> None:
    ctx = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[str] = ctx.Queue()
    start = ctx.Barrier(3)
    hosts = ["svc-p1", "web-a1", "rpa-a1"]
    procs = [ctx.Process(target=_claim_fire, args=(url, h, start, results)) for h in hosts]
    for p in procs:
        p.start()
    said = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    winners = [s for s in said if not s.startswith("lost")]
    assert len(winners) == 1, said
    assert sorted(said) == sorted([winners[0]] + [f"lost to {winners[0]}"] * 2)
    # the next fire is a new claim; the losers see the seeding once the winner says so
    assert queue.claim_fire("b", DUE + timedelta(days=1), host="web-a1") is None
    assert not queue.wait_fire_seeded("b", DUE, timeout_s=0.3, poll_s=0.1)
    # a fire whose seeding failed is given up, and claimed again by the next try
    queue.release_fire("b", DUE)
    assert queue.claim_fire("b", DUE, host="web-a1") is None
    queue.fire_seeded("b", DUE)
    assert queue.wait_fire_seeded("b", DUE, timeout_s=0)
    queue.release_fire("b", DUE)  # seeded: kept, never seeded twice
    assert queue.claim_fire("b", DUE, host="svc-p1") == "web-a1"
