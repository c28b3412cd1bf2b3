"""The periodic log review (Procedimiento Revisión de Logs) of the central log host.

Every host forwards its logs to the `logs` host (roles logging_client/logging_server), which
keeps them as `<remote dir>/<host>/<facility>.log` (rotated as `<facility>.log-YYYYMMDD[.gz]`),
one line per message in Debian's file format::

    2026-11-24T08:15:14.523006+00:00 web-p1 sshd[795]: Failed password for ana from ...

`gestic.procedures.logs.fetch` fetches the auth and authpriv files over SSH,
`gestic.procedures.logs.events` parses them into authentication events (failed and successful
logins, sudo use and refusals, accounts created, changed and deleted), and this module
summarises them per host for a period.
The directory name, not the host name a message claims, says which host a line came from: the
receiver derives it from the sender's address. `gestic logs review` writes the result as JSON
and an HTML report (Spanish by default). Its settings are the model's `logging` section
(`gestic_logging` in group_vars/all/logging.yml).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any

from gestic import reports
from gestic.errors import LogReviewError
from gestic.model.schema import LogReview
from gestic.procedures.logs.events import (
    KINDS,
    UNKNOWN_USER,
    AuthEvent,
    Kind,
    LogLine,
    extract_events,
)
from gestic.procedures.logs.fetch import ReadStats

# ---------------------------------------------------------------------------------------------
# The period under review
# ---------------------------------------------------------------------------------------------

_PERIOD_RE = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, kw_only=True)
class Window:
    """The reviewed interval [start, end), in the review's time zone."""

    start: datetime
    end: datetime
    period: str | None = None  # YYYY-MM when the window is a calendar month

    @property
    def label(self) -> str:
        if self.period is not None:
            return self.period
        return f"{self.start:%Y-%m-%d}_{(self.end - timedelta(microseconds=1)):%Y-%m-%d}"

    def __contains__(self, when: datetime) -> bool:
        return self.start <= when < self.end


def _parse_bound(text: str, option: str, tz: tzinfo, *, end: bool) -> datetime:
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            day = date.fromisoformat(text)
            if end:  # a date as --until means "through that day"
                day += timedelta(days=1)
            return datetime.combine(day, time(), tzinfo=tz)
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise LogReviewError(
            f"{option} {text!r}: expected a date (YYYY-MM-DD) or a date and time "
            "(YYYY-MM-DDTHH:MM[:SS][+HH:MM])"
        ) from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)


def make_window(
    *,
    period: str | None,
    since: str | None,
    until: str | None,
    tz: tzinfo,
    now: datetime | None = None,
) -> Window:
    """The window from `--period YYYY-MM` and/or `--since/--until` (which narrow or replace it).

    `--until` given as a date includes that whole day; without a period, `--until` defaults to
    now.
    """
    start: datetime | None = None
    end: datetime | None = None
    if period is not None:
        match = _PERIOD_RE.fullmatch(period)
        if match is None or not 1 <= int(match.group(2)) <= 12:
            raise LogReviewError(f"--period {period!r}: expected a month as YYYY-MM (e.g. 2026-11)")
        year, month = int(match.group(1)), int(match.group(2))
        start = datetime(year, month, 1, tzinfo=tz)
        end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=tz)
    if since is not None:
        start = _parse_bound(since, "--since", tz, end=False)
    if until is not None:
        end = _parse_bound(until, "--until", tz, end=True)
    if start is None:
        raise LogReviewError("give the period to review: --period YYYY-MM, or --since DATE")
    if end is None:
        end = (now or datetime.now(UTC)).astimezone(tz)
    if end <= start:
        raise LogReviewError(
            f"the review window is empty: {start.isoformat()} is not before {end.isoformat()}"
        )
    whole_month = period is not None and since is None and until is None
    return Window(start=start, end=end, period=period if whole_month else None)


# ---------------------------------------------------------------------------------------------
# The review
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Review:
    """What the review found in a window."""

    window: Window
    environment: str
    hosts: tuple[str, ...]  # the model's hosts (a host without lines is a finding too)
    events: tuple[AuthEvent, ...]
    stats: ReadStats
    lines_in_window: Mapping[str, int]
    failure_threshold: int
    automation_accounts: tuple[str, ...]
    generated: datetime

    @property
    def all_hosts(self) -> list[str]:
        seen = {e.host for e in self.events} | set(self.lines_in_window)
        return sorted(set(self.hosts) | seen)

    @property
    def silent_hosts(self) -> list[str]:
        """Hosts of the model with no auth line in the window: not forwarding, or down."""
        return [h for h in self.hosts if not self.lines_in_window.get(h)]

    def counts(self) -> dict[str, dict[str, int]]:
        table = {
            h: dict.fromkeys((*KINDS, "login_ok_automation", "sudo_automation"), 0)
            for h in self.all_hosts
        }
        for e in self.events:
            row = table[e.host]
            row[e.kind] += 1
            if e.automation:
                row[f"{e.kind}_automation"] = row.get(f"{e.kind}_automation", 0) + 1
        return table

    def totals(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for row in self.counts().values():
            total.update(row)
        return dict(total)

    def notable(self, kind: Kind) -> list[AuthEvent]:
        """Events of `kind` that are not routine work of an automation account."""
        return [e for e in self.events if e.kind == kind and not e.automation]

    def failure_sources(self) -> list[dict[str, Any]]:
        """Remote addresses with failed logins, most first; `repeated` at the threshold."""
        by_source: dict[str, list[AuthEvent]] = defaultdict(list)
        for e in self.events:
            if e.kind == "login_failed":
                by_source[e.source or "?"].append(e)
        rows = [
            {
                "source": source,
                "failures": len(evs),
                "hosts": sorted({e.host for e in evs}),
                "users": sorted({e.user for e in evs}),
                "first": min(e.at for e in evs).isoformat(),
                "last": max(e.at for e in evs).isoformat(),
                "repeated": len(evs) >= self.failure_threshold,
            }
            for source, evs in by_source.items()
        ]
        return sorted(rows, key=lambda r: (-int(r["failures"]), str(r["source"])))

    def summary(self) -> str:
        t = self.totals()
        return (
            f"{len(self.all_hosts)} hosts: {t.get('login_failed', 0)} failed logins, "
            f"{t.get('login_ok', 0) - t.get('login_ok_automation', 0)} interactive logins, "
            f"{t.get('sudo', 0) - t.get('sudo_automation', 0)} sudo, "
            f"{t.get('sudo_denied', 0)} sudo denied, {t.get('account_created', 0)} accounts "
            f"created, {t.get('account_changed', 0)} changed, {t.get('account_deleted', 0)} "
            f"deleted; {len(self.silent_hosts)} silent"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "review": "Revisión de Logs",
            "environment": self.environment,
            "period": self.window.period,
            "window": {
                "start": self.window.start.isoformat(),
                "end": self.window.end.isoformat(),
                "label": self.window.label,
            },
            "generated_at": self.generated.isoformat(),
            "timezone": str(self.window.start.tzinfo),
            "automation_accounts": list(self.automation_accounts),
            "failure_threshold": self.failure_threshold,
            "read": {
                "files": self.stats.files,
                "lines": self.stats.lines,
                "unparsed": self.stats.unparsed,
                "unparsed_examples": list(self.stats.unparsed_examples),
                "lines_in_window": dict(sorted(self.lines_in_window.items())),
            },
            "totals": self.totals(),
            "hosts": self.counts(),
            "silent_hosts": self.silent_hosts,
            "failure_sources": self.failure_sources(),
            "events": [e.as_dict() for e in self.events],
        }


def review(
    lines: Sequence[LogLine],
    *,
    window: Window,
    stats: ReadStats,
    hosts: Iterable[str],
    settings: LogReview,
    environment: str,
    generated: datetime | None = None,
) -> Review:
    """Review the lines that fall in `window`."""
    inside = [ln for ln in lines if ln.at in window]
    per_host = Counter(ln.host for ln in inside)
    return Review(
        window=window,
        environment=environment,
        hosts=tuple(sorted(hosts)),
        events=tuple(extract_events(inside, automation=settings.automation_accounts)),
        stats=stats,
        lines_in_window=dict(per_host),
        failure_threshold=settings.failure_threshold,
        automation_accounts=settings.automation_accounts,
        generated=generated or datetime.now(UTC),
    )


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


def localise_detail(detail: str, lang: str) -> str:
    """`detail` in `lang`, where gestic worded it (the JSON keeps English); what comes from the
    log line itself stays as logged."""
    t = reports.text("logs", lang)
    words = t["details"]
    if detail in words:
        return str(words[detail])
    if m := re.fullmatch(r"(\S+) \(unknown user\)", detail):
        return str(t["detail_unknown_user"]).format(
            method=words.get(m[1], m[1]), unknown=words[UNKNOWN_USER]
        )
    if detail.startswith("not allowed: "):
        return str(t["detail_not_allowed"]).format(reason=detail.removeprefix("not allowed: "))
    if m := re.fullmatch(r"(passwd|chpasswd): password changed", detail):
        return str(t["detail_password_changed"]).format(command=m[1])
    return detail


def period_title(window: Window, lang: reports.Lang) -> str:
    if window.period is not None:
        year, month = (int(p) for p in window.period.split("-"))
        return reports.month_title(year, month, lang)
    last = window.end - timedelta(microseconds=1)
    return str(reports.text("logs", lang)["range"]).format(
        start=f"{window.start:%Y-%m-%d}", end=f"{last:%Y-%m-%d}"
    )


@dataclass(frozen=True, kw_only=True)
class ReportFiles:
    html: Path
    json: Path
    data: dict[str, Any]


def write_report(result: Review, *, lang: str, out_dir: Path, max_listed: int = 200) -> ReportFiles:
    """Write the review as JSON and HTML (`lang` es or en) into `out_dir`."""
    language = reports.check_lang(lang, LogReviewError)
    tz = result.window.start.tzinfo or UTC
    data = result.as_dict()
    filters = {
        "detail": lambda text: localise_detail(text, language),
        "local": lambda when: when.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"),
        "local_iso": lambda iso: (
            datetime.fromisoformat(iso).astimezone(tz).strftime("%Y-%m-%d %H:%M")
        ),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"revision-logs-{result.window.label}{reports.lang_suffix(language)}"
    html_path = reports.write_html(
        out_dir / f"{stem}.html",
        "logs/review.html.j2",
        filters=filters,
        t=reports.text("logs", language),
        lang=language,
        data=data,
        kinds=KINDS,
        result=result,
        title_period=period_title(result.window, language),
        generated=result.generated.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
        max_listed=max_listed,
    )
    json_path = reports.write_json(out_dir / f"{stem}.json", data)
    return ReportFiles(html=html_path, json=json_path, data=data)
