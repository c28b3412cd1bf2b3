"""Run bots on their manifests' cron schedules: the one long-running `gestic` service.

Schedules are standard five-field cron expressions (minute hour day-of-month month
day-of-week), read in the institution's time zone. A run that is missed because the previous
one took long runs once, late; missed runs are never piled up.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from gestic.errors import ManifestError
from gestic.rpa.manifest import Bot, cron_problem

__all__ = ["DEFAULT_TIMEZONE", "Scheduler", "cron_problem", "next_fire", "timezone"]

DEFAULT_TIMEZONE = "America/Bogota"
#: The longest the scheduler sleeps at once, so a stop request is seen quickly.
MAX_NAP_S = 30.0


def timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ManifestError(f"unknown time zone {name!r}") from exc


def next_fire(expr: str, after: datetime, tz: ZoneInfo) -> datetime:
    """The first time strictly after `after` that matches `expr` in `tz` (returned in UTC)."""
    local = after.astimezone(tz)
    nxt: datetime = croniter(expr, local).get_next(datetime)
    return nxt.astimezone(UTC)


@dataclass(kw_only=True)
class Scheduler:
    """Fires each scheduled bot at its cron times; `run` does the work (one bot at a time)."""

    bots: Mapping[str, Bot]
    run: Callable[[Bot, datetime], None]
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo(DEFAULT_TIMEZONE))
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    sleep: Callable[[float], object] | None = None
    """How it waits for the next run; default: on `stop`, so a stop request (the service's
    SIGTERM) ends the nap at once instead of after up to MAX_NAP_S (a restart took ~26 s)."""
    stop: threading.Event = field(default_factory=threading.Event)
    on_error: Callable[[Bot, Exception], None] | None = None

    def plan(self, after: datetime) -> dict[str, datetime]:
        """The next fire time of every scheduled bot after `after`."""
        return {
            name: next_fire(bot.manifest.schedule, after, self.tz)
            for name, bot in self.bots.items()
            if bot.manifest.schedule
        }

    def serve(self, *, max_runs: int | None = None, until: datetime | None = None) -> int:
        """Run bots as they fall due until stopped, `max_runs` runs, or `until`; runs made."""
        upcoming = self.plan(self.clock())
        runs = 0
        if not upcoming:
            return 0
        while not self.stop.is_set():
            name, due = min(upcoming.items(), key=lambda kv: (kv[1], kv[0]))
            if until is not None and due > until:
                return runs
            now = self.clock()
            if due > now:
                (self.sleep or self.stop.wait)(min(MAX_NAP_S, (due - now).total_seconds()))
                continue
            bot = self.bots[name]
            try:
                self.run(bot, due)
            except Exception as exc:  # one failing bot must not stop the others' schedule
                if self.on_error is None:
                    raise
                self.on_error(bot, exc)
            runs += 1
            # Next time after both the due time and now: a late run is not repeated.
            upcoming[name] = next_fire(bot.manifest.schedule or "", max(due, self.clock()), self.tz)
            if max_runs is not None and runs >= max_runs:
                return runs
        return runs
