"""Real access reports for tests: built by the report's own code from the lab model and the
sample host records (tests/unit/data/access-*.json, taken from a lab and altered)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from gestic.model import Model, load_model
from gestic.procedures.access.report import build_report, report_json

from ....paths import LAB_INVENTORY, UNIT_DATA

TODAY = date(2026, 11, 24)
#: The host whose record the samples leave out (its report entry: recorded false).
UNREACHABLE = "bkp-a1"


def lab_model(today: date = TODAY) -> Model:
    return load_model(LAB_INVENTORY, routes=[], today=today)


def sample_texts() -> dict[str, str]:
    """host -> the sample record's text (every lab host but bkp-a1)."""
    return {
        p.name.removeprefix("access-").removesuffix(".json"): p.read_text(encoding="utf-8")
        for p in sorted(UNIT_DATA.glob("access-*.json"))
    }


def lab_report_json(now: datetime | None = None, model: Model | None = None) -> dict[str, Any]:
    """report_json of the lab's report from the sample records, bkp-a1 unreachable."""
    report = build_report(
        model or lab_model(),
        sample_texts(),
        {UNREACHABLE: "UNREACHABLE: ssh: connect to host bkp-a1 port 22: No route to host"},
        today=TODAY,
        now=now or datetime(2026, 11, 24, 6, 0, tzinfo=UTC),
    )
    return report_json(report)
