"""Files dropped in an inbox become work items exactly once (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gestic.rpa.intake import IntakeResult, LocalInbox, take
from gestic.rpa.queue import WorkQueue

BOT = "conciliacion-pagos"
QUEUE = "conciliacion-pagos.archivos"
SETTLED = time.time() - 3600  # an hour ago: long done uploading


@pytest.fixture
def queue(url: str) -> Iterator[WorkQueue]:
    made = WorkQueue(url)
    yield made
    made.close()


@pytest.fixture
def inbox(tmp_path: Path) -> LocalInbox:
    (tmp_path / "entrada").mkdir()
    return LocalInbox(tmp_path / "entrada")


def _drop(inbox: LocalInbox, name: str, content: bytes, *, mtime: float = SETTLED) -> Path:
    path = inbox.folder / name
    path.write_bytes(content)
    os.utime(path, (mtime, mtime))
    return path


def _take(inbox: LocalInbox, queue: WorkQueue) -> IntakeResult:
    return take(inbox, queue, bot=BOT, queue_name=QUEUE)


def test_each_dropped_file_becomes_one_item_with_the_file(
    inbox: LocalInbox, queue: WorkQueue
) -> None:
    _drop(inbox, "pagos-2026-12-07.csv", b"doc;valor\n1;100\n")
    _drop(inbox, "pagos-2026-12-08.csv", b"doc;valor\n2;200\n")
    first = _take(inbox, queue)
    assert sorted(first.taken) == ["pagos-2026-12-07.csv", "pagos-2026-12-08.csv"]
    item = first.taken["pagos-2026-12-08.csv"]
    assert queue.get_file(item, "pagos-2026-12-08.csv") == b"doc;valor\n2;200\n"
    assert queue.load_payload(item)["bytes"] == len(b"doc;valor\n2;200\n")
    assert sorted(p.name for p in inbox.processed_folder.iterdir()) == sorted(first.taken)
    assert list(inbox.folder.iterdir()) == []
    assert _take(inbox, queue) == IntakeResult()  # nothing new: nothing done
    assert len(queue.items(queue=QUEUE)) == 2


class _CrashOnArchive(LocalInbox):
    def archive(self, name: str, digest: str) -> str:
        raise KeyboardInterrupt("the producer was killed")


def test_a_crash_before_the_file_is_moved_does_not_take_it_twice(
    inbox: LocalInbox, queue: WorkQueue
) -> None:
    _drop(inbox, "pagos.csv", b"doc;valor\n1;100\n")
    with pytest.raises(KeyboardInterrupt):
        _take(_CrashOnArchive(inbox.folder), queue)
    assert (inbox.folder / "pagos.csv").exists()  # still in the inbox
    again = _take(inbox, queue)
    assert again.taken == {}
    assert again.already == ["pagos.csv"]
    assert not (inbox.folder / "pagos.csv").exists()  # moved this time
    assert len(queue.items(queue=QUEUE)) == 1


def test_the_same_content_under_another_name_is_not_worked_twice(
    inbox: LocalInbox, queue: WorkQueue
) -> None:
    _drop(inbox, "pagos.csv", b"doc;valor\n1;100\n")
    _take(inbox, queue)
    _drop(inbox, "pagos (1).csv", b"doc;valor\n1;100\n")
    _drop(inbox, "pagos.csv", b"doc;valor\n3;300\n")  # the same name, new content: new work
    again = _take(inbox, queue)
    assert again.already == ["pagos (1).csv"]
    assert list(again.taken) == ["pagos.csv"]
    assert len(queue.items(queue=QUEUE)) == 2
    assert len(list(inbox.processed_folder.iterdir())) == 3  # nothing overwritten


def test_an_upload_in_progress_is_left_for_the_next_run(
    inbox: LocalInbox, queue: WorkQueue
) -> None:
    _drop(inbox, "pagos.csv", b"doc;valor\n1;", mtime=time.time())
    _drop(inbox, "pagos2.csv.part", b"doc;")
    _drop(inbox, ".pagos3.csv", b"doc;")
    waiting = _take(inbox, queue)
    assert sorted(waiting.waiting) == [".pagos3.csv", "pagos.csv", "pagos2.csv.part"]
    assert waiting.taken == {}
    assert queue.items(queue=QUEUE) == []


def test_a_file_over_the_limit_is_left_and_reported(inbox: LocalInbox, queue: WorkQueue) -> None:
    _drop(inbox, "enorme.csv", b"x" * 2048)
    _drop(inbox, "pagos.csv", b"doc;valor\n1;100\n")
    result = take(inbox, queue, bot=BOT, queue_name=QUEUE, max_bytes=1024)
    assert result.refused == {"enorme.csv": "2048 bytes, over the 1024 allowed"}
    assert list(result.taken) == ["pagos.csv"]
    assert (inbox.folder / "enorme.csv").exists()


def test_two_producers_at_once_make_one_item_of_each_file(inbox: LocalInbox, url: str) -> None:
    for n in range(12):
        _drop(inbox, f"pagos-{n:02}.csv", f"doc;valor\n{n};{n * 100}\n".encode())
    queues = [WorkQueue(url), WorkQueue(url)]
    start = threading.Barrier(2)
    results: list[IntakeResult] = []

    def produce(q: WorkQueue) -> None:
        start.wait()
        results.append(_take(LocalInbox(inbox.folder), q))

    threads = [threading.Thread(target=produce, args=(q,)) for q in queues]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    taken = [name for r in results for name in r.taken]
    assert sorted(taken) == [f"pagos-{n:02}.csv" for n in range(12)]  # each once, in all
    assert len(queues[0].items(queue=QUEUE)) == 12
    for q in queues:
        q.close()
