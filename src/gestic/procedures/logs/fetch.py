"""Collecting the log review's input: the auth/authpriv files of the central log host, fetched
over SSH into a local tree `<host>/<file>` and read into lines (`gestic.procedures.logs.events`)."""

from __future__ import annotations

import gzip
import re
import shlex
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from gestic.errors import LogReviewError
from gestic.procedures.logs.events import LogLine, parse_line

# files of the central log host that hold authentication events (current and rotated)
AUTH_FILES = re.compile(r"^(auth|authpriv)\.log(-\d{8})?(\.\d+)?(\.gz)?$")


@dataclass(frozen=True, kw_only=True)
class ReadStats:
    files: int
    lines: int
    unparsed: int
    unparsed_examples: tuple[str, ...] = ()


def _open_text(path: Path) -> Iterator[str]:
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as fh:
            yield from fh
    else:
        with path.open(encoding="utf-8", errors="replace") as fh:
            yield from fh


def read_tree(root: Path) -> tuple[list[LogLine], ReadStats]:
    """Every auth/authpriv line under `root/<host>/`, with counts of what could not be read."""
    if not root.is_dir():
        raise LogReviewError(f"{root}: not a directory of central logs (<host>/auth.log ...)")
    lines: list[LogLine] = []
    files = unparsed = 0
    examples: list[str] = []
    for host_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(host_dir.iterdir()):
            if not (path.is_file() and AUTH_FILES.match(path.name)):
                continue
            files += 1
            rel = f"{host_dir.name}/{path.name}"
            try:
                for number, text in enumerate(_open_text(path), start=1):
                    if not text.strip():
                        continue
                    line = parse_line(text, host=host_dir.name, origin=f"{rel}:{number}")
                    if line is None:
                        unparsed += 1
                        if len(examples) < 5:
                            examples.append(f"{rel}:{number}: {text.strip()[:160]}")
                    else:
                        lines.append(line)
            except (OSError, EOFError, gzip.BadGzipFile) as exc:
                raise LogReviewError(f"{path}: cannot read: {exc}") from exc
    return lines, ReadStats(
        files=files,
        lines=len(lines) + unparsed,
        unparsed=unparsed,
        unparsed_examples=tuple(examples),
    )


def fetch_central_logs(
    *,
    ssh_config: Path,
    host: str,
    remote_dir: str,
    since: datetime,
    dest: Path,
    timeout: float = 300,
) -> Path:
    """Copy the auth/authpriv files written since `since` from the log host into `dest`.

    Runs `find | tar` as root on the log host (the files are 0640 root:adm) through the lab's
    ssh_config; keeps the archive (`central-logs.tar.gz`, the review's evidence) and unpacks it
    into `dest/central/<host>/...`, which it returns.
    """
    stamp = int(since.timestamp())
    script = (
        f"cd {shlex.quote(remote_dir)} && "
        r"find . -mindepth 2 -maxdepth 2 -type f \( -name 'auth.log*' -o -name 'authpriv.log*' \)"
        f" -newermt @{stamp} -print0 | tar --null -T - --warning=no-file-changed -czf -;"
        # rsyslog appends to these files while tar reads them: GNU tar then exits 1 ("file
        # changed as we read it") with a whole archive up to that moment, which is what the
        # review wants; any other failure is 2
        ' status=$?; [ "$status" -eq 1 ] && exit 0; exit "$status"'
    )
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / "central-logs.tar.gz"
    cmd = ["ssh", "-F", str(ssh_config), host, f"sudo -n sh -c {shlex.quote(script)}"]
    try:
        with archive.open("wb") as out:
            proc = subprocess.run(
                cmd, stdout=out, stderr=subprocess.PIPE, timeout=timeout, check=False
            )
    except subprocess.TimeoutExpired as exc:
        raise LogReviewError(
            f"fetching the central logs from {host} took over {timeout:.0f} s"
        ) from exc
    except OSError as exc:
        raise LogReviewError(f"cannot run ssh to fetch the central logs: {exc}") from exc
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()
        raise LogReviewError(
            f"fetching the central logs from {host}:{remote_dir} failed (exit {proc.returncode}): "
            f"{err or 'no message'}"
        )
    target = dest / "central"
    target.mkdir(exist_ok=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(target, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise LogReviewError(
            f"{archive}: not a readable archive of the central logs: {exc}"
        ) from exc
    return target
