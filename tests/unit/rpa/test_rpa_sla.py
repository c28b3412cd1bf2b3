"""Nivel del servicio RPA: the indicator's math per bot and overall, and the at-risk forecast."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, insert

from gestic.errors import RpaError
from gestic.rpa.manifest import Bot, Manifest, Step
from gestic.rpa.queue import APPLICATION, BUSINESS, DONE, FAILED, PENDING, Item, WorkQueue
from gestic.rpa.queue_schema import items_table as ITEMS
from gestic.rpa.sla import Period, at_risk, classify, forecast, handling_rate, measure

BOGOTA = ZoneInfo("America/Bogota")


def bogota(*args: int) -> datetime:
    return datetime(*args, tzinfo=BOGOTA).astimezone(UTC)  # type: ignore[misc]


def make_bot(name: str, sla: float) -> Bot:
    manifest = Manifest(
        name=name,
        description=name,
        owner="pruebas",
        queue=f"{name}.items",
        sla_minutes=sla,
        steps=(Step(name="paso", queue=f"{name}.items", suite="x.robot"),),
    )
    return Bot(manifest=manifest, root=Path("/nonexistent") / name)


class Seeder:
    """Writes items with chosen timestamps straight into a real queue database."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)

    def add(
        self,
        bot: Bot,
        created: datetime,
        *,
        state: str,
        finished: datetime | None = None,
        exc: str | None = None,
        code: str | None = None,
        sla: float | None = None,
    ) -> None:
        sla_min = bot.manifest.sla_minutes if sla is None else sla
        values: dict[str, Any] = {
            "bot": bot.name,
            "queue": bot.manifest.queue,
            "state": state,
            "payload": {},
            "created_at": created,
            "available_at": created,
            "updated_at": finished or created,
            "finished_at": finished,
            "sla_due_at": created + timedelta(minutes=sla_min),
            "attempts": 1,
            "max_attempts": 3,
            "exception_type": exc,
            "exception_code": code,
            "exception_message": code and f"detalle de {code}",
            "dead_letter": exc == APPLICATION,
        }
        with self.engine.begin() as conn:
            conn.execute(insert(ITEMS).values(**values))


@pytest.fixture
def db(tmp_path: Path) -> tuple[WorkQueue, Seeder]:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    return WorkQueue(url), Seeder(url)


def test_indicator_per_bot_and_overall(db: tuple[WorkQueue, Seeder]) -> None:
    queue, seed = db
    a, b = make_bot("bot-a", 60), make_bot("bot-b", 30)
    now = bogota(2026, 11, 20, 12, 10)
    t = bogota(2026, 11, 10, 10, 0)
    seed.add(a, t, state=DONE, finished=t + timedelta(minutes=30))  # met
    seed.add(a, t, state=DONE, finished=t + timedelta(minutes=90))  # late
    seed.add(a, t, state=FAILED, finished=t, exc=BUSINESS, code="PAGO_MALFORMADO")  # apart
    seed.add(a, t, state=FAILED, finished=t, exc=APPLICATION, code="PORTAL_CAIDO")  # technical
    seed.add(a, bogota(2026, 11, 12, 8, 0), state=PENDING)  # overdue
    seed.add(a, bogota(2026, 11, 20, 12, 0), state=PENDING)  # not yet due: not counted
    seed.add(a, bogota(2026, 11, 30, 23, 30), state=DONE, finished=now)  # due in December
    seed.add(a, bogota(2026, 10, 31, 22, 0), state=DONE, finished=now)  # due Oct 31 23:00
    for k in range(3):
        s = bogota(2026, 11, 15, 9, k)
        seed.add(b, s, state=DONE, finished=s + timedelta(minutes=29))  # met
    seed.add(b, t, state=FAILED, finished=t, exc=BUSINESS, code="CREDITO_NO_ENCONTRADO")
    bots = {"bot-a": a, "bot-b": b}
    result = measure(queue, bots, Period.parse("2026-11"), tz=BOGOTA, target=0.95, now=now)
    ia, ib, total = result.per_bot["bot-a"], result.per_bot["bot-b"], result.overall
    assert (ia.due, ia.met, ia.late, ia.technical, ia.overdue, ia.business) == (5, 1, 1, 1, 1, 1)
    assert ia.counted == 4
    assert ia.value == pytest.approx(0.25)
    assert ia.business_codes == {"PAGO_MALFORMADO": 1}
    assert ib.value == 1.0
    assert ib.meets_target
    assert ib.business == 1
    assert total.due == 9
    assert total.counted == 7
    assert total.met == 4
    assert total.value == pytest.approx(4 / 7)
    assert total.meets_target is False
    assert [(x.bot, x.kind, x.code) for x in result.breaches] == [
        ("bot-a", "late", ""),
        ("bot-a", "technical", "PORTAL_CAIDO"),
        ("bot-a", "overdue", ""),
    ]
    october = measure(queue, {"bot-a": a}, Period.parse("2026-10"), tz=BOGOTA, target=0.95, now=now)
    assert october.overall.due == 1
    assert october.overall.late == 1
    empty = measure(queue, {"bot-a": a}, Period.parse("2025-01"), tz=BOGOTA, target=0.95, now=now)
    assert empty.overall.value is None
    assert empty.overall.meets_target is None


def test_period_bounds_follow_the_time_zone() -> None:
    start, end = Period.parse("2026-11").bounds(BOGOTA)
    assert start == datetime(2026, 11, 1, 5, 0, tzinfo=UTC)
    assert end == datetime(2026, 12, 1, 5, 0, tzinfo=UTC)
    assert str(Period.parse("2026-01").shift(-1)) == "2025-12"
    for bad in ("2026-13", "nov", "2026/11"):
        with pytest.raises(RpaError, match="YYYY-MM"):
            Period.parse(bad)


def _item(k: int, *, created: datetime, due: datetime | None, state: str = PENDING,
          finished: datetime | None = None) -> Item:  # fmt: skip
    return Item(
        id=k, bot="a", queue="a.items", parent_id=None, state=state, payload={},
        created_at=created, available_at=created, updated_at=created, started_at=None,
        finished_at=finished, sla_due_at=due, attempts=0, max_attempts=3, lease_owner=None,
        lease_expires_at=None, worker=None, exception_type=None, exception_code=None,
        exception_message=None, dead_letter=False, run_id=None,
    )  # fmt: skip


def test_forecast_flags_items_that_will_breach_at_the_current_rate() -> None:
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    created = now - timedelta(minutes=5)
    dues = [10, 10, 1.4, 30, 2.9]  # minutes from now
    items = [
        _item(k, created=created + timedelta(seconds=k), due=now + timedelta(minutes=d))
        for k, d in enumerate(dues)
    ]
    # 1 item/minute: item k expected at now + (k+1) min.
    risky = forecast(items, rate_per_minute=1.0, now=now)
    assert [r.item_id for r in risky] == [2, 4]  # due 1.4 vs expected 3; 2.9 vs 5
    assert risky[0].expected_at == now + timedelta(minutes=3)
    # Twice the rate: item 4 makes it (2.5 < 2.9), item 2 still not (1.5 > 1.4).
    assert [r.item_id for r in forecast(items, rate_per_minute=2.0, now=now)] == [2]
    assert forecast(items, rate_per_minute=4.0, now=now) == []
    # No rate known: only items already past due are at risk.
    overdue = _item(9, created=created, due=now - timedelta(minutes=1))
    assert [r.item_id for r in forecast([*items, overdue], rate_per_minute=0, now=now)] == [9]
    assert classify(overdue, now) == "overdue"
    assert classify(items[0], now) is None


def test_handling_rate_and_live_at_risk_view(db: tuple[WorkQueue, Seeder]) -> None:
    queue, seed = db
    bot = make_bot("bot-a", 10)
    now = datetime.now(UTC)
    for k in range(6):  # 6 finished in the last hour: 0.1 items/minute
        seed.add(bot, now - timedelta(minutes=50 - k), state=DONE,
                 finished=now - timedelta(minutes=40 - k))  # fmt: skip
    seed.add(bot, now - timedelta(hours=3), state=DONE, finished=now - timedelta(hours=2))
    seed.add(bot, now - timedelta(minutes=1), state=PENDING)  # due in 9 min, expected in 10
    seed.add(bot, now, state=PENDING)  # due in 10 min, expected in 20
    items = queue.items(bot="bot-a")
    assert handling_rate(items, now=now, window=timedelta(hours=1)) == pytest.approx(0.1)
    view = at_risk(queue, bot, now=now)
    assert view.outstanding == 2
    assert view.rate_per_minute == pytest.approx(0.1)
    assert len(view.at_risk) == 2
    assert view.first_due is not None
    assert view.first_due < now + timedelta(minutes=10)
