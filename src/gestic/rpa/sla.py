"""*Nivel del servicio RPA*: the RPA service-level indicator, and the items at risk of breaching.

Each bot's manifest declares the SLA of its queue: the time from an item's creation to done.
For a period (a calendar month in the institution's time zone):

    Nivel del servicio RPA = items completed successfully within their SLA
                             / items due in the period (BUSINESS exceptions left out)

*Items due in the period*: items of the bot's SLA queue whose due time (creation + SLA) falls
in the period, and that are either past due or already finished. A BUSINESS exception (bad
input data: the robot did its job by rejecting it) is reported apart and not counted against
the service; a technical failure (APPLICATION, dead-lettered), an item finished late, or an
item still pending past its due time is a breach.

The at-risk forecast follows UiPath's SLA prediction: at the queue's recent handling rate,
the outstanding items are worked in order; an item whose expected completion falls after its
due time is at risk.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gestic.errors import RpaError
from gestic.rpa.manifest import Bot
from gestic.rpa.queue import BUSINESS, DONE, FAILED, IN_PROGRESS, PENDING, Item, WorkQueue

MET = "met"
LATE = "late"
TECHNICAL = "technical"
OVERDUE = "overdue"
EXCLUDED = "business"


@dataclass(frozen=True, kw_only=True)
class Period:
    """A calendar month."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Period:
        m = re.fullmatch(r"(\d{4})-(\d{2})", text.strip())
        if not m or not 1 <= int(m.group(2)) <= 12:
            raise RpaError(f"period must be a month as YYYY-MM (e.g. 2026-11), not {text!r}")
        return cls(year=int(m.group(1)), month=int(m.group(2)))

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def bounds(self, tz: ZoneInfo) -> tuple[datetime, datetime]:
        """[start, end) of the month in `tz`, as UTC datetimes."""
        start = datetime(self.year, self.month, 1, tzinfo=tz)
        nxt = self.shift(1)
        end = datetime(nxt.year, nxt.month, 1, tzinfo=tz)
        return start.astimezone(UTC), end.astimezone(UTC)

    def shift(self, months: int) -> Period:
        index = self.year * 12 + (self.month - 1) + months
        return Period(year=index // 12, month=index % 12 + 1)


def classify(item: Item, now: datetime) -> str | None:
    """How an SLA item counts: met, late, technical, overdue, business; None if not yet due."""
    due = item.sla_due_at
    if due is None:
        return None
    if item.state == DONE:
        assert item.finished_at is not None
        return MET if item.finished_at <= due else LATE
    if item.state == FAILED:
        return EXCLUDED if item.exception_type == BUSINESS else TECHNICAL
    if item.state in (PENDING, IN_PROGRESS) and due <= now:
        return OVERDUE
    return None


@dataclass(frozen=True, kw_only=True)
class Breach:
    item_id: int
    bot: str
    kind: str  # late, technical, overdue
    created_at: datetime
    due_at: datetime
    finished_at: datetime | None
    code: str
    message: str
    attempts: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "bot": self.bot,
            "kind": self.kind,
            "created_at": self.created_at.isoformat(),
            "due_at": self.due_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "code": self.code,
            "message": self.message,
            "attempts": self.attempts,
        }


@dataclass(frozen=True, kw_only=True)
class Indicator:
    """The indicator for one bot (or all bots) in one period."""

    scope: str
    due: int = 0
    met: int = 0
    late: int = 0
    technical: int = 0
    overdue: int = 0
    business: int = 0
    business_codes: dict[str, int] = field(default_factory=dict)
    target: float | None = None

    @property
    def counted(self) -> int:
        """Items the indicator counts: due items less BUSINESS exceptions."""
        return self.due - self.business

    @property
    def value(self) -> float | None:
        return self.met / self.counted if self.counted else None

    @property
    def breaches(self) -> int:
        return self.late + self.technical + self.overdue

    @property
    def meets_target(self) -> bool | None:
        if self.value is None or self.target is None:
            return None
        return self.value >= self.target

    def summary(self) -> str:
        value = "n/a" if self.value is None else f"{self.value:.1%}"
        target = "" if self.target is None else f" (target {self.target:.0%})"
        return (
            f"{self.scope}: {value}{target}, {self.met}/{self.counted} within SLA, "
            f"{self.breaches} breaches, {self.business} business exceptions"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "value": self.value,
            "target": self.target,
            "meets_target": self.meets_target,
            "items_due": self.due,
            "items_counted": self.counted,
            "met": self.met,
            "breaches": {"late": self.late, "technical": self.technical, "overdue": self.overdue},
            "business_exceptions": self.business,
            "business_codes": self.business_codes,
        }


def _tally(scope: str, items: list[Item], now: datetime, target: float | None) -> Indicator:
    counts = {MET: 0, LATE: 0, TECHNICAL: 0, OVERDUE: 0, EXCLUDED: 0}
    codes: dict[str, int] = {}
    due = 0
    for item in items:
        kind = classify(item, now)
        if kind is None:
            continue
        due += 1
        counts[kind] += 1
        if kind == EXCLUDED:
            code = item.exception_code or "SIN_CODIGO"
            codes[code] = codes.get(code, 0) + 1
    return Indicator(
        scope=scope,
        due=due,
        met=counts[MET],
        late=counts[LATE],
        technical=counts[TECHNICAL],
        overdue=counts[OVERDUE],
        business=counts[EXCLUDED],
        business_codes=dict(sorted(codes.items())),
        target=target,
    )


@dataclass(frozen=True, kw_only=True)
class PeriodResult:
    period: Period
    overall: Indicator
    per_bot: dict[str, Indicator]
    breaches: list[Breach]


def sla_items(queue: WorkQueue, bot: Bot, start: datetime, end: datetime) -> list[Item]:
    """Items of `bot`'s SLA queue whose due time falls in [start, end)."""
    found = queue.items(bot=bot.name, queue=bot.manifest.queue)
    return [i for i in found if i.sla_due_at is not None and start <= i.sla_due_at < end]


def measure(
    queue: WorkQueue,
    bots: Mapping[str, Bot],
    period: Period,
    *,
    tz: ZoneInfo,
    target: float | None,
    now: datetime | None = None,
) -> PeriodResult:
    """The indicator per bot and overall for `period`, with every breach and its cause."""
    now = now or datetime.now(UTC)
    start, end = period.bounds(tz)
    per_bot: dict[str, Indicator] = {}
    everything: list[Item] = []
    breaches: list[Breach] = []
    for name, bot in sorted(bots.items()):
        items = sla_items(queue, bot, start, end)
        everything += items
        per_bot[name] = _tally(name, items, now, target)
        for item in items:
            kind = classify(item, now)
            if kind in (LATE, TECHNICAL, OVERDUE):
                assert item.sla_due_at is not None
                breaches.append(
                    Breach(
                        item_id=item.id,
                        bot=name,
                        kind=str(kind),
                        created_at=item.created_at,
                        due_at=item.sla_due_at,
                        finished_at=item.finished_at,
                        code=item.exception_code or "",
                        message=item.exception_message or "",
                        attempts=item.attempts,
                    )
                )
    overall = _tally("overall", everything, now, target)
    breaches.sort(key=lambda b: (b.due_at, b.item_id))
    return PeriodResult(period=period, overall=overall, per_bot=per_bot, breaches=breaches)


# -- at-risk forecast ----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class AtRiskItem:
    item_id: int
    due_at: datetime
    expected_at: datetime | None  # None: no handling rate known yet

    def as_dict(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "due_at": self.due_at.isoformat(),
            "expected_at": self.expected_at.isoformat() if self.expected_at else None,
        }


@dataclass(frozen=True, kw_only=True)
class Forecast:
    bot: str
    queue: str
    outstanding: int
    rate_per_minute: float
    at_risk: list[AtRiskItem]
    first_due: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "bot": self.bot,
            "queue": self.queue,
            "outstanding": self.outstanding,
            "rate_per_minute": self.rate_per_minute,
            "at_risk": [a.as_dict() for a in self.at_risk],
            "first_due": self.first_due.isoformat() if self.first_due else None,
        }


def handling_rate(items: list[Item], *, now: datetime, window: timedelta) -> float:
    """Items finished per minute over the last `window` (0 if none finished in it)."""
    since = now - window
    finished = [i for i in items if i.finished_at is not None and since <= i.finished_at <= now]
    if not finished:
        return 0.0
    return len(finished) / (window.total_seconds() / 60)


def forecast(outstanding: list[Item], *, rate_per_minute: float, now: datetime) -> list[AtRiskItem]:
    """Outstanding SLA items expected to finish after their due time, in queue order.

    With rate r items/minute, the k-th outstanding item (0-based, oldest first) is expected
    to be done at now + (k + 1) / r minutes. With no known rate, only items already past
    their due time are at risk (they are breaching).
    """
    ordered = sorted(
        (i for i in outstanding if i.sla_due_at is not None), key=lambda i: (i.created_at, i.id)
    )
    risky = []
    for k, item in enumerate(ordered):
        assert item.sla_due_at is not None
        expected = (
            now + timedelta(minutes=(k + 1) / rate_per_minute) if rate_per_minute > 0 else None
        )
        late = item.sla_due_at <= now or (expected is not None and expected > item.sla_due_at)
        if late:
            risky.append(AtRiskItem(item_id=item.id, due_at=item.sla_due_at, expected_at=expected))
    return risky


def at_risk(
    queue: WorkQueue, bot: Bot, *, now: datetime, window: timedelta = timedelta(hours=1)
) -> Forecast:
    """The at-risk forecast of `bot`'s SLA queue right now."""
    items = queue.items(bot=bot.name, queue=bot.manifest.queue)
    outstanding = [i for i in items if i.state in (PENDING, IN_PROGRESS)]
    rate = handling_rate(items, now=now, window=window)
    dues = [i.sla_due_at for i in outstanding if i.sla_due_at is not None]
    return Forecast(
        bot=bot.name,
        queue=bot.manifest.queue,
        outstanding=len(outstanding),
        rate_per_minute=rate,
        at_risk=forecast(outstanding, rate_per_minute=rate, now=now),
        first_due=min(dues) if dues else None,
    )
