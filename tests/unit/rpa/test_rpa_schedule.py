"""Bot manifests (validation with file, key and line) and the cron scheduler."""

from __future__ import annotations

import shutil
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gestic.errors import ManifestError
from gestic.rpa.manifest import MANIFEST, Bot, catalog, discover, load_bot, load_seed
from gestic.rpa.schedule import Scheduler, cron_problem, next_fire

from ...paths import ROOT, UNIT_DATA

BOGOTA = ZoneInfo("America/Bogota")


def test_repository_bots_are_valid() -> None:
    bots = discover(ROOT / "robots")
    assert {"conciliacion-pagos", "revision-accesos", "actualizacion-datos"} <= set(bots)
    for bot in bots.values():
        assert bot.manifest.schedule
        assert cron_problem(bot.manifest.schedule) is None
        for step in bot.manifest.steps:
            assert bot.suite(step).is_file()
            if step.seed:
                assert load_seed(bot.root / step.seed)


@pytest.fixture
def bot_copy(tmp_path: Path) -> Path:
    target = tmp_path / "prueba"
    shutil.copytree(UNIT_DATA / "rpa" / "robots" / "prueba", target)
    return target


def test_manifest_errors_name_file_key_and_line(bot_copy: Path) -> None:
    manifest = bot_copy / "manifest.yaml"
    text = manifest.read_text()
    text = text.replace("sla_minutes: 5", "sla_minutes: -5")
    text = text.replace("suite: tasks/trabajar.robot", "suite: tasks/missing.robot")
    text = text.replace("queue: prueba.items\nsla", "queue: otra.cola\nschedule: '61 * * * *'\nsla")
    manifest.write_text(text)
    with pytest.raises(ManifestError) as err:
        load_bot(bot_copy)
    lines = text.splitlines()
    sla_line = next(i for i, line in enumerate(lines, 1) if line.startswith("sla_minutes"))
    assert f"{manifest}:{sla_line}: sla_minutes: Input should be greater than 0" in str(err.value)
    manifest.write_text(text.replace("sla_minutes: -5", "sla_minutes: 5"))
    with pytest.raises(ManifestError) as err:
        load_bot(bot_copy)
    message = str(err.value)
    assert "queue: must be the queue of one of the steps" in message
    assert "schedule: schedule '61 * * * *' is not a valid cron expression" in message
    assert "steps.0.suite: suite file" in message
    assert "missing.robot not found" in message


def test_seed_errors_are_clear(tmp_path: Path) -> None:
    bad = tmp_path / "work-items.json"
    bad.write_text('[{"payload": {}, "files": {"a.csv": "nope.csv"}}]')
    with pytest.raises(ManifestError, match=r"item 0: file 'a.csv'"):
        load_seed(bad)
    bad.write_text("{not json")
    with pytest.raises(ManifestError, match=r"work-items.json:1: invalid JSON"):
        load_seed(bad)


def test_cron_problems() -> None:
    assert cron_problem("30 7 * * 1-5") is None
    assert "5 fields" in (cron_problem("* * * * * *") or "")
    assert "5 fields" in (cron_problem("@daily") or "")
    assert "not a valid" in (cron_problem("0 25 * * *") or "")


def test_next_fire_is_read_in_the_institution_time_zone() -> None:
    after = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # 07:00 in Bogotá
    assert next_fire("30 7 * * 1-5", after, BOGOTA) == datetime(2026, 11, 20, 12, 30, tzinfo=UTC)
    friday_late = datetime(2026, 11, 20, 13, 0, tzinfo=UTC)
    assert next_fire("30 7 * * 1-5", friday_late, BOGOTA) == datetime(
        2026, 11, 23, 12, 30, tzinfo=UTC
    )  # Monday


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start
        self.slept = 0.0

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.now += timedelta(seconds=seconds)


def _bot(bot_copy: Path, schedule: str, name: str) -> Bot:
    target = bot_copy.parent / name
    shutil.copytree(bot_copy, target)
    manifest = target / "manifest.yaml"
    text = manifest.read_text().replace("name: prueba", f"name: {name}")
    manifest.write_text(text.replace("sla_minutes: 5", f"schedule: '{schedule}'\nsla_minutes: 5"))
    return load_bot(target)


def test_scheduler_runs_each_bot_at_its_times_and_never_piles_up(bot_copy: Path) -> None:
    quarter = _bot(bot_copy, "*/15 * * * *", "cada-cuarto")
    morning = _bot(bot_copy, "30 7 * * *", "manana")
    clock = FakeClock(datetime(2026, 11, 20, 12, 20, tzinfo=UTC))  # 07:20 Bogotá
    fired: list[tuple[str, datetime]] = []

    def run(bot: Bot, due: datetime) -> None:
        fired.append((bot.name, due))
        if bot.name == "manana":
            clock.now += timedelta(minutes=40)  # a long run: the quarter runs in it are missed

    scheduler = Scheduler(
        bots={b.name: b for b in (quarter, morning)},
        run=run,
        tz=BOGOTA,
        clock=clock,
        sleep=clock.sleep,
    )
    runs = scheduler.serve(until=datetime(2026, 11, 20, 13, 30, tzinfo=UTC))
    local = [(name, due.astimezone(BOGOTA).strftime("%H:%M")) for name, due in fired]
    assert local == [
        ("cada-cuarto", "07:30"),  # the earliest due first, name order on ties
        ("manana", "07:30"),  # runs 40 minutes, until 08:10
        ("cada-cuarto", "07:45"),  # late, once; 08:00 is not piled up behind it
        ("cada-cuarto", "08:15"),
        ("cada-cuarto", "08:30"),
    ]
    assert runs == 5
    assert clock.slept > 0


def test_scheduler_stops_on_request_and_reports_errors(bot_copy: Path) -> None:
    quarter = _bot(bot_copy, "*/15 * * * *", "cada-cuarto")
    clock = FakeClock(datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
    errors: list[str] = []

    def run(bot: Bot, due: datetime) -> None:
        raise RuntimeError("robot exploded")

    scheduler = Scheduler(
        bots={"cada-cuarto": quarter},
        run=run,
        tz=BOGOTA,
        clock=clock,
        sleep=clock.sleep,
        on_error=lambda b, e: errors.append(f"{b.name}: {e}"),
    )
    assert scheduler.serve(max_runs=2) == 2
    assert errors == ["cada-cuarto: robot exploded"] * 2
    scheduler.stop.set()
    assert scheduler.serve() == 0


def test_a_stop_request_ends_the_schedulers_nap_at_once(bot_copy: Path) -> None:
    """The service's SIGTERM sets `stop`: a restart must not wait for the nap (up to 30 s)."""
    yearly = _bot(bot_copy, "0 0 1 1 *", "anual")
    scheduler = Scheduler(bots={"anual": yearly}, run=lambda b, d: None, tz=BOGOTA)
    threading.Timer(0.2, scheduler.stop.set).start()
    started = time.monotonic()
    assert scheduler.serve() == 0
    assert time.monotonic() - started < 5


def test_one_invalid_manifest_leaves_the_other_bots_usable(tmp_path: Path) -> None:
    robots = tmp_path / "robots"
    shutil.copytree(ROOT / "robots", robots)
    broken = robots / "revision-accesos" / MANIFEST
    broken.write_text(broken.read_text().replace("sla_minutes:", "sla_minutos:"))
    found = catalog(robots)
    assert set(found.bots) == {"conciliacion-pagos", "actualizacion-datos"}
    assert set(found.broken) == {"revision-accesos"}
    with pytest.raises(ManifestError, match=rf"{broken}:\d+: sla_minutos: Extra inputs"):
        found.bot("revision-accesos")
    with pytest.raises(ManifestError, match="no bot named 'otro'"):
        found.bot("otro")
    with pytest.raises(ManifestError, match="sla_minutos"):
        discover(robots)  # the strict view (lint, tests) still refuses


def test_seed_payloads_must_be_json_objects(tmp_path: Path) -> None:
    seed = tmp_path / "work-items.json"
    seed.write_text('[{"payload": {"n": 1}}, {"payload": {"monto": NaN}}]')
    with pytest.raises(ManifestError, match=r"work-items.json: item 1: payload is not strict JSON"):
        load_seed(seed)
    seed.write_text('[{"payload": [1, 2]}]')
    with pytest.raises(ManifestError, match=r"item 0: payload must be a JSON object"):
        load_seed(seed)
