"""Files a partner drops in an inbox (the bank's payments file), taken into a queue exactly once.

A producer step starts from the files that arrived since its last run: each one becomes one
work item with the file attached, and is then moved to the inbox's processed folder. What makes
it exactly once is the queue, not the folder: the item and a row keyed by the inbox and the
file's SHA-256 are written in one transaction (`WorkQueue.create(intake=...)`), so

- a run that crashes after taking a file and before moving it finds it again next time, sees
  its content was taken, and only moves it;
- the same content dropped again under another name is not worked twice (it is moved too, and
  reported);
- two producers taking the same inbox at once make one item of each file (the row's primary key
  decides).

A file is taken once it has stopped changing for `settle_s` (an upload in progress is left for
the next run); names a sender uses while uploading (dot files, `*.part`, `*.tmp`, `*.filepart`)
are skipped. A file larger than `max_bytes` is left where it is and reported.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Final, Protocol

from gestic.errors import FileTakenError
from gestic.rpa.queue import WorkQueue

SETTLE_S: Final = 30.0
MAX_BYTES: Final = 20 * 1024 * 1024
UPLOADING_SUFFIXES: Final = (".part", ".tmp", ".filepart")


@dataclass(frozen=True)
class InboxFile:
    name: str
    size: int
    mtime: float


class Inbox(Protocol):
    """Where a partner drops files: a local folder, or an SFTP account's folder."""

    @property
    def source(self) -> str:
        """Names the inbox in the intake records and in messages (e.g. "file:///srv/entrada")."""
        ...

    def listing(self) -> list[InboxFile]: ...

    def read(self, name: str) -> bytes:
        """The file's content; FileNotFoundError if it is gone (another producer moved it)."""
        ...

    def archive(self, name: str, digest: str) -> str:
        """Move `name` into the processed folder and return its name there (never overwrite);
        FileNotFoundError if it is gone."""
        ...


def resent_name(name: str, digest: str) -> str:
    """The processed name of a file whose name was taken before: the same name sent again
    keeps both, the later one told apart by its content's digest."""
    path = PurePosixPath(name)
    return f"{path.stem}.{digest[:12]}{path.suffix}"


@dataclass(frozen=True)
class LocalInbox:
    """A folder on this host: `entrada/` with its `procesados/` beside it, by default."""

    folder: Path
    processed: Path | None = None

    @property
    def source(self) -> str:
        return self.folder.resolve().as_uri()

    @property
    def processed_folder(self) -> Path:
        return self.processed or self.folder.parent / "procesados"

    def listing(self) -> list[InboxFile]:
        found = []
        with os.scandir(self.folder) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False):
                    info = entry.stat(follow_symlinks=False)
                    found.append(InboxFile(entry.name, info.st_size, info.st_mtime))
        return sorted(found, key=lambda f: (f.mtime, f.name))

    def read(self, name: str) -> bytes:
        return (self.folder / name).read_bytes()

    def archive(self, name: str, digest: str) -> str:
        target = self.processed_folder
        target.mkdir(parents=True, exist_ok=True)
        dest = target / name
        if dest.exists():
            dest = target / resent_name(name, digest)
        os.replace(self.folder / name, dest)  # same file system: atomic
        return dest.name


@dataclass
class IntakeResult:
    taken: dict[str, int] = field(default_factory=dict)  # file name -> its new item
    already: list[str] = field(default_factory=list)  # content taken before: only moved
    waiting: list[str] = field(default_factory=list)  # still changing, or an upload's name
    refused: dict[str, str] = field(default_factory=dict)  # file name -> why it was left


def _uploading(name: str) -> bool:
    return name.startswith(".") or name.lower().endswith(UPLOADING_SUFFIXES)


def take(
    inbox: Inbox,
    queue: WorkQueue,
    *,
    bot: str,
    queue_name: str,
    max_attempts: int = 3,
    sla_minutes: float | None = None,
    run_id: int | None = None,
    settle_s: float = SETTLE_S,
    max_bytes: int = MAX_BYTES,
    clock: Callable[[], float] = time.time,
) -> IntakeResult:
    """Make one item of each settled new file of `inbox` in `queue_name`, then archive it."""
    result = IntakeResult()
    now = clock()
    for file in inbox.listing():
        if _uploading(file.name) or now - file.mtime < settle_s:
            result.waiting.append(file.name)
            continue
        if file.size > max_bytes:
            result.refused[file.name] = f"{file.size} bytes, over the {max_bytes} allowed"
            continue
        try:
            content = inbox.read(file.name)
        except FileNotFoundError:  # another producer took and moved it since the listing
            continue
        digest = hashlib.sha256(content).hexdigest()
        payload = {"archivo": file.name, "sha256": digest, "bytes": len(content)}
        try:
            item_id = queue.create(
                bot=bot, queue=queue_name, payload=payload, files={file.name: content},
                max_attempts=max_attempts, sla_minutes=sla_minutes, run_id=run_id,
                intake=(inbox.source, digest, file.name),
            )  # fmt: skip
        except FileTakenError:
            result.already.append(file.name)
        else:
            result.taken[file.name] = item_id
        with contextlib.suppress(FileNotFoundError):  # moved by another producer already
            inbox.archive(file.name, digest)
    return result
