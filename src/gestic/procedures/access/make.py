"""Make the environment's access report: what `gestic access report` does, and what
`gestic rpa run revision-accesos --access-report fresh` does before it seeds the bot.

Collect every host's record (over SSH, or from saved files), join them with the model, write
the report's files, record the run in the ledger as `access.report`, and publish the report
for the bots (`gestic.procedures.access.published`) when asked to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gestic.environments.context import Context
from gestic.errors import AccessReportError, GesticError
from gestic.procedures.access.published import PublishedReport
from gestic.procedures.access.records import collect_records, read_record_dir
from gestic.procedures.access.report import AccessReport, build_report, report_json, write_report

__all__ = ["MadeReport", "Publisher", "make_report"]

#: Stores a report's JSON for the bots: (report, source, run id) -> what was stored.
Publisher = Callable[[dict[str, Any], str, int], PublishedReport]


@dataclass(frozen=True, kw_only=True)
class MadeReport:
    """A report just made: the report, its JSON, its files, its run and its publication."""

    report: AccessReport
    json: dict[str, Any]
    paths: list[Path]
    run_id: int
    summary: str
    published: PublishedReport | None


def _summary(report: AccessReport) -> str:
    summary = report.summary()
    counts = summary["findings"]
    return (
        f"{summary['hosts_recorded']}/{summary['hosts']} hosts, "
        f"{summary['people_with_access']} people with access, "
        f"{summary['removed_accounts_locked']}/{summary['removed_accounts_found']} removed "
        f"accounts locked, {summary['undeclared_accounts']} undeclared, "
        f"{counts['critical']} critical findings"
    )


def make_report(
    ctx: Context,
    *,
    out_dir: Path,
    lang: str = "es",
    records: Path | None = None,
    publish: Publisher | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> MadeReport:
    """Collect, build, write and record (as `access.report`) the environment's access report;
    `publish` it too when given. Critical findings mark the run failed but raise nothing:
    the caller decides (the command exits with an error, the bot reviews them)."""
    model = ctx.model
    source = str(records) if records else "ssh"
    with ctx.ledger.record(kind="access.report", target=model.environment) as run:
        errors: dict[str, str] = {}
        if records is not None:
            log(f"access report: reading the records in {records}")
            texts = read_record_dir(records, sorted(model.hosts))
        else:
            log(f"access report: collecting the records of {len(model.hosts)} hosts over SSH")
            ctx.access.write(model)
            texts, errors = collect_records(
                inventory=ctx.inventory / "hosts.yml",
                access=ctx.access,
                artifacts_dir=ctx.artifacts / "ansible",
            )
        result = build_report(model, texts, errors)
        paths = write_report(result, out_dir, lang=lang, texts=texts if records is None else None)
        data = report_json(result, lang)
        run.summary = _summary(result)
        run.add_details(
            source=source,
            files=[str(p) for p in paths],
            summary=result.summary(),
            critical=[f.as_dict("en") for f in result.critical],
        )
        published = None
        if publish is not None:
            try:
                published = publish(data, source, run.run_id)
            except GesticError as exc:  # e.g. the shared ledger's port forward
                raise AccessReportError(
                    f"access report written to {out_dir}, but not published for the bots: {exc}"
                ) from exc
            run.add_details(published={"id": published.id, "sha256": published.sha256})
            log(f"access report: published for the bots (report {published.id})")
        if result.critical:
            run.fail(run.summary)
    return MadeReport(
        report=result,
        json=data,
        paths=paths,
        run_id=run.run_id,
        summary=run.summary,
        published=published,
    )
