"""Vulnerability tests (Procedimiento Pruebas de Vulnerabilidad): lynis reports against a minimum.

The `vulnscan` role scans every host with lynis and copies each host's report
(`/var/log/lynis-report.dat`) to the orchestrator, into `<artifacts>/vulnscan/<host>/`. This
module reads those reports, compares each host's hardening index with the inventory's minimum
(`gestic_vulnscan.min_index` in `group_vars/all/vulnscan.yml`, a section of the model) and
writes the report for the institution's management: JSON and HTML (Spanish by default, English
on request).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from gestic import reports
from gestic.errors import VulnscanError
from gestic.model import Model
from gestic.model.schema import required

REPORT_NAME = "lynis-report.dat"
_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"

Lang = reports.Lang
LANGS = reports.LANGS


@dataclass(frozen=True, kw_only=True)
class Finding:
    """One lynis warning or suggestion: `TEST-ID|message|details|solution|`."""

    test_id: str
    message: str
    details: str = ""
    solution: str = ""

    @classmethod
    def parse(cls, value: str) -> Finding:
        parts = [p.strip() for p in value.split("|")]
        parts += [""] * (4 - len(parts))
        details, solution = (("" if p in {"-", ""} else p) for p in parts[2:4])
        return cls(test_id=parts[0], message=parts[1], details=details, solution=solution)


@dataclass(frozen=True, kw_only=True)
class LynisReport:
    """What the vulnerability test needs from one lynis report."""

    hostname: str
    lynis_version: str
    os: str
    started: datetime | None
    finished: datetime | None
    hardening_index: int
    tests_done: int | None
    warnings: tuple[Finding, ...] = ()
    suggestions: tuple[Finding, ...] = ()


def _read_pairs(text: str, source: str) -> dict[str, list[tuple[int, str]]]:
    """`key=value` and `key[]=value` lines, by key, each value with its line number."""
    pairs: dict[str, list[tuple[int, str]]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key:
            raise VulnscanError(f"{source}:{number}: not a lynis report line: {line[:80]!r}")
        pairs.setdefault(key.removesuffix("[]"), []).append((number, value))
    return pairs


def _date(pairs: dict[str, list[tuple[int, str]]], key: str, source: str) -> datetime | None:
    if key not in pairs:
        return None
    number, value = pairs[key][-1]
    try:
        return datetime.strptime(value.strip(), _DATE_FORMAT)
    except ValueError:
        raise VulnscanError(f"{source}:{number}: {key} is not a date: {value!r}") from None


def parse_report(text: str, *, source: str) -> LynisReport:
    """Parse the text of a lynis report (`source` names it in errors)."""
    pairs = _read_pairs(text, source)

    def one(key: str, default: str = "") -> str:
        return pairs[key][-1][1].strip() if key in pairs else default

    if "hardening_index" not in pairs:
        raise VulnscanError(
            f"{source}: no hardening_index: the lynis scan did not finish (incomplete report)"
        )
    number, raw = pairs["hardening_index"][-1]
    try:
        index = int(raw.strip())
    except ValueError:
        raise VulnscanError(
            f"{source}:{number}: hardening_index is not a number: {raw!r}"
        ) from None
    if not 0 <= index <= 100:
        raise VulnscanError(f"{source}:{number}: hardening_index {index} is not within 0-100")
    tests_done = one("lynis_tests_done")
    return LynisReport(
        hostname=one("hostname"),
        lynis_version=one("lynis_version"),
        os=one("os_fullname") or one("os_name") or one("os"),
        started=_date(pairs, "report_datetime_start", source),
        finished=_date(pairs, "report_datetime_end", source),
        hardening_index=index,
        tests_done=int(tests_done) if tests_done.isdigit() else None,
        warnings=tuple(Finding.parse(v) for _, v in pairs.get("warning", [])),
        suggestions=tuple(Finding.parse(v) for _, v in pairs.get("suggestion", [])),
    )


def read_report(path: Path) -> LynisReport:
    """Read and parse a lynis report file."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise VulnscanError(f"{path}: cannot read: {exc.strerror}") from exc
    return parse_report(text, source=str(path))


def load_threshold(model: Model) -> int:
    """The environment's minimum hardening index (`gestic_vulnscan.min_index`, validated with
    the rest of the model)."""
    section = required(
        model,
        model.vulnscan,
        var="gestic_vulnscan",
        need="the minimum hardening index, min_index (0-100), in vulnscan.yml (docs/vulnscan.md)",
        error=VulnscanError,
    )
    return section.min_index


class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    MISSING = "missing"


def verdict(index: int | None, threshold: int) -> Status:
    """A host passes when its hardening index reaches the minimum; no index: no verdict."""
    if index is None:
        return Status.MISSING
    return Status.PASSED if index >= threshold else Status.FAILED


@dataclass(frozen=True, kw_only=True)
class HostResult:
    host: str
    site: str
    threshold: int
    report: LynisReport | None = None
    source: str = ""
    problem: str = ""  # why there is no report

    @property
    def status(self) -> Status:
        return verdict(self.report.hardening_index if self.report else None, self.threshold)


@dataclass(frozen=True, kw_only=True)
class VulnscanReport:
    environment: str
    threshold: int
    generated_at: datetime
    hosts: list[HostResult] = field(default_factory=list)

    def count(self, status: Status) -> int:
        return sum(1 for h in self.hosts if h.status is status)

    @property
    def ok(self) -> bool:
        return bool(self.hosts) and all(h.status is Status.PASSED for h in self.hosts)


def collect(
    model: Model, reports_dir: Path, *, threshold: int, now: datetime | None = None
) -> VulnscanReport:
    """One result per host of the model, from `<reports_dir>/<host>/lynis-report.dat`."""
    results = []
    for host in sorted(model.hosts.values(), key=lambda h: (h.site, h.name)):
        path = reports_dir / host.name / REPORT_NAME
        if not path.is_file():
            results.append(
                HostResult(
                    host=host.name,
                    site=host.site,
                    threshold=threshold,
                    source=str(path),
                    problem="no report collected (converge or `gestic vulnscan scan`)",
                )
            )
            continue
        report = read_report(path)
        if report.hostname and report.hostname != host.name:
            raise VulnscanError(
                f"{path}: the report is of host {report.hostname!r}, not {host.name!r}"
            )
        results.append(
            HostResult(
                host=host.name, site=host.site, threshold=threshold, report=report, source=str(path)
            )
        )
    return VulnscanReport(
        environment=model.environment,
        threshold=threshold,
        generated_at=now or datetime.now(UTC),
        hosts=results,
    )


def _finding(f: Finding) -> dict[str, str]:
    return {
        "test_id": f.test_id,
        "message": f.message,
        "details": f.details,
        "solution": f.solution,
    }


def to_document(report: VulnscanReport) -> dict[str, Any]:
    """The report as plain data (what the JSON file holds)."""
    hosts = []
    for h in report.hosts:
        r = h.report
        hosts.append(
            {
                "host": h.host,
                "site": h.site,
                "status": h.status.value,
                "threshold": h.threshold,
                "hardening_index": r.hardening_index if r else None,
                "scanned_at": r.finished.strftime(_DATE_FORMAT) if r and r.finished else None,
                "lynis_version": r.lynis_version if r else None,
                "os": r.os if r else None,
                "tests_done": r.tests_done if r else None,
                "warnings": [_finding(f) for f in r.warnings] if r else [],
                "suggestions": [_finding(f) for f in r.suggestions] if r else [],
                "source": h.source,
                "problem": h.problem,
            }
        )
    return {
        "environment": report.environment,
        "generated_at": report.generated_at.isoformat(timespec="seconds"),
        "threshold": report.threshold,
        "summary": {s.value: report.count(s) for s in Status},
        "hosts": hosts,
    }


def render_html(report: VulnscanReport, *, lang: Lang = "es") -> str:
    """The report as a self-contained HTML page in `lang`."""
    language = reports.check_lang(lang, VulnscanError)
    return reports.render(
        "vulnscan/report.html.j2",
        lang=language,
        t=reports.text("vulnscan", language),
        doc=to_document(report),
    )


def write_report(report: VulnscanReport, out_dir: Path, *, lang: Lang = "es") -> list[Path]:
    """Write vulnscan-report.json and vulnscan-report.html into `out_dir`."""
    html = render_html(report, lang=lang)  # first: a bad language writes nothing
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = reports.write_json(out_dir / "vulnscan-report.json", to_document(report))
    html_path = out_dir / "vulnscan-report.html"
    html_path.write_text(html, encoding="utf-8")
    return [json_path, html_path]
