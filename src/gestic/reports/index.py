"""One page that links the latest of every report for management (`gestic reports index`).

Each kind of report is looked for where its command writes it; the newest file in the index's
language is linked (newest by name, which carries the period or the drill's time, then by
modification time). Spanish files have no language suffix, English ones end in ``-en`` or
``.en``; a report whose name carries no language (access, vulnerabilities) is taken in the
language its page declares. When only the other language exists, that one is linked and the
index says so; when none exists, the index names the command that makes it. Backups have no
HTML of their own: the index shows the latest backup and check of each service from the
ledger. Links are relative to the index's directory, so the folder can be copied as a whole.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final
from urllib.parse import quote
from zoneinfo import ZoneInfo

from gestic import reports
from gestic.errors import UsageError
from gestic.store.ledger import RunRecord

BACKUP_KINDS: Final = ("backup.run", "backup.check")


@dataclass(frozen=True, kw_only=True)
class Source:
    """Where one kind of report is written, and the command that writes it."""

    key: str
    directory: Path
    pattern: str  # a glob under `directory`
    command: str  # without --lang


def sources(artifacts: Path, evidence: Path) -> tuple[Source, ...]:
    """The reports of the index, in its order (`evidence`: the DR drills' evidence folder)."""
    return (
        Source(
            key="infra",
            directory=artifacts / "indicators",
            pattern="indicador-infraestructura-*.html",
            command="gestic indicators --period YYYY-MM",
        ),
        Source(
            key="rpa",
            directory=artifacts / "rpa" / "reports",
            pattern="nivel-servicio-rpa-*.html",
            command="gestic rpa report --period YYYY-MM",
        ),
        Source(
            key="dr",
            directory=evidence,
            pattern="*/report*.html",
            command="gestic drill --scenario site-loss --test",
        ),
        Source(
            key="logs",
            directory=artifacts / "logs",
            pattern="revision-logs-*.html",
            command="gestic logs review --period YYYY-MM",
        ),
        Source(
            key="access",
            directory=artifacts / "access",
            pattern="access-report.html",
            command="gestic access report",
        ),
        Source(
            key="vulnscan",
            directory=artifacts / "vulnscan",
            pattern="vulnscan-report.html",
            command="gestic vulnscan report",
        ),
    )


_HTML_LANG = re.compile(rb"<html[^>]*\blang=\"([a-zA-Z-]+)\"")


def file_lang(path: Path) -> reports.Lang:
    """A report's language: its name's suffix, else the language its page declares."""
    stem = path.name.removesuffix(".html")
    for lang in reports.LANGS:
        if lang != reports.DEFAULT_LANG and stem.endswith((f"-{lang}", f".{lang}")):
            return lang
    try:
        with path.open("rb") as f:
            head = f.read(4096)
    except OSError:
        return reports.DEFAULT_LANG
    found = _HTML_LANG.search(head)
    declared = found.group(1).decode().lower() if found else ""
    for lang in reports.LANGS:
        if declared == lang:
            return lang
    return reports.DEFAULT_LANG


@dataclass(frozen=True, kw_only=True)
class Found:
    """The latest report of a source (`path` None: none yet) and its language."""

    source: Source
    path: Path | None = None
    lang: reports.Lang | None = None
    modified: datetime | None = None


def latest(source: Source, lang: reports.Lang) -> Found:
    """The newest report of `source` in `lang`, else in another language, else none."""
    if not source.directory.is_dir():
        return Found(source=source)
    candidates = [p for p in source.directory.glob(source.pattern) if p.is_file()]
    if not candidates:
        return Found(source=source)

    def newest(paths: list[Path]) -> Path:
        return max(paths, key=lambda p: (p.relative_to(source.directory).as_posix(), _mtime(p)))

    langs = {p: file_lang(p) for p in candidates}
    same = [p for p in candidates if langs[p] == lang]
    chosen = newest(same or candidates)
    return Found(
        source=source,
        path=chosen,
        lang=langs[chosen],
        modified=datetime.fromtimestamp(_mtime(chosen), UTC),
    )


def _mtime(path: Path) -> float:
    return path.stat().st_mtime


def command_for(source: Source, lang: reports.Lang) -> str:
    return source.command + ("" if lang == reports.DEFAULT_LANG else f" --lang {lang}")


def link(path: Path, index: Path) -> str:
    """`path` as a link from the page `index` (relative, URL-quoted)."""
    relative = os.path.relpath(path.resolve(), index.resolve().parent)
    return quote(Path(relative).as_posix())


@dataclass(frozen=True, kw_only=True)
class BackupRow:
    """A service's latest run of each backup kind (None: none recorded)."""

    target: str
    runs: Mapping[str, RunRecord | None]


def backup_rows(runs: Iterable[RunRecord]) -> list[BackupRow]:
    """The latest "backup.run" and "backup.check" per target (`runs`: any order)."""
    latest_of: dict[tuple[str, str], RunRecord] = {}
    for run in runs:
        if run.kind not in BACKUP_KINDS:
            continue
        key = (run.target, run.kind)
        known = latest_of.get(key)
        if known is None or (run.started_at, run.id) > (known.started_at, known.id):
            latest_of[key] = run
    targets = sorted({target for target, _ in latest_of})
    return [
        BackupRow(target=t, runs={kind: latest_of.get((t, kind)) for kind in BACKUP_KINDS})
        for t in targets
    ]


def render_index(
    index: Path,
    *,
    found: Iterable[Found],
    backups: Iterable[BackupRow],
    lang: str,
    environment: str,
    zone: ZoneInfo,
    generated: datetime | None = None,
) -> str:
    """The index page for the file `index` (its links are relative to its directory)."""
    language = reports.check_lang(lang, UsageError)
    text = reports.text("index", language)

    def local(when: datetime | None) -> str:
        return "—" if when is None else when.astimezone(zone).strftime("%Y-%m-%d %H:%M")

    rows = [
        {
            "title": text[f.source.key],
            "href": link(f.path, index) if f.path else None,
            "name": f.path.relative_to(f.source.directory).as_posix() if f.path else None,
            "modified": local(f.modified),
            "other_lang": (
                text["other_lang"].format(lang=text[f"lang_{f.lang}"])
                if f.lang is not None and f.lang != language
                else None
            ),
            "command": command_for(f.source, language),
        }
        for f in found
    ]
    backup_view = [
        {
            "target": row.target,
            "runs": [
                None
                if run is None
                else {
                    "status": run.status,
                    "status_text": text.get(run.status, run.status),
                    "when": local(run.started_at),
                    "summary": run.summary,
                }
                for run in row.runs.values()
            ],
        }
        for row in backups
    ]
    return reports.render(
        "index.html.j2",
        t=text,
        lang=language,
        rows=rows,
        backups=backup_view,
        backup_kinds=BACKUP_KINDS,
        backup_commands=("gestic backup run SERVICE", "gestic backup check SERVICE"),
        environment=environment,
        generated=local(generated or datetime.now(UTC)),
    )


def write_index(
    index: Path,
    *,
    artifacts: Path,
    evidence: Path,
    lang: str,
    backup_runs: Iterable[RunRecord],
    environment: str,
    zone: ZoneInfo,
    generated: datetime | None = None,
) -> tuple[Path, list[Found]]:
    """Find the latest reports, write the index page `index`; return it and what was found."""
    language = reports.check_lang(lang, UsageError)
    found = [latest(source, language) for source in sources(artifacts, evidence)]
    html = render_index(
        index,
        found=found,
        backups=backup_rows(backup_runs),
        lang=language,
        environment=environment,
        zone=zone,
        generated=generated,
    )
    index.parent.mkdir(parents=True, exist_ok=True)
    index.write_text(html, encoding="utf-8")
    return index, found
