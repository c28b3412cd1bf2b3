"""`gestic logs`: the periodic review of the central logs (Procedimiento Revisión de Logs)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.table import Table

from gestic.cli.options import lang_option
from gestic.console import console
from gestic.environments.context import Context
from gestic.errors import LogReviewError
from gestic.procedures.logs.events import KINDS
from gestic.procedures.logs.fetch import fetch_central_logs, read_tree
from gestic.procedures.logs.review import Review, make_window, review, write_report


@click.group(name="logs")
def COMMAND() -> None:
    """The central logs: periodic review of authentication events."""


@COMMAND.command(name="review")
@click.option("--period", default=None, help="The month to review, YYYY-MM.")
@click.option(
    "--since", default=None, help="Start (YYYY-MM-DD or ISO date and time); narrows --period."
)
@click.option(
    "--until",
    default=None,
    help="End (a date includes that whole day; default: end of --period, else now).",
)
@lang_option()
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory for the HTML, the JSON and the fetched logs (default: artifacts/logs).",
)
@click.option(
    "--source",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Review a local copy of the central logs (<host>/auth.log...) instead of fetching.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the review as JSON.")
@click.pass_obj
def review_command(
    obj: Context,
    *,
    period: str | None,
    since: str | None,
    until: str | None,
    lang: str,
    output: Path | None,
    source: Path | None,
    as_json: bool,
) -> None:
    """Review the auth logs of every host for a period; write JSON and an HTML report."""
    model = obj.model
    settings = model.logging
    window = make_window(period=period, since=since, until=until, tz=settings.review.tz)
    out_dir = output or obj.artifacts / "logs"
    run_dir = out_dir / f"revision-logs-{window.label}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    with obj.ledger.record(kind="logs.review", target=window.label) as run:
        if source is None:
            log_hosts = sorted(h.name for h in model.hosts.values() if "logs" in h.groups)
            if not log_hosts:
                raise LogReviewError(
                    f"{obj.inventory}/hosts.yml: no host in group 'logs' holds the central logs"
                )
            obj.access.write(model)
            tree = fetch_central_logs(
                ssh_config=obj.access.ssh_config,
                host=log_hosts[0],
                remote_dir=settings.remote_dir,
                since=window.start,
                dest=run_dir,
            )
            origin = f"{log_hosts[0]}:{settings.remote_dir}"
        else:
            tree, origin = source, str(source)
        lines, stats = read_tree(tree)
        result = review(
            lines,
            window=window,
            stats=stats,
            hosts=model.hosts,
            settings=settings.review,
            environment=model.environment,
        )
        files = write_report(result, lang=lang, out_dir=out_dir)
        run.summary = result.summary()
        run.add_details(
            window=result.as_dict()["window"],
            source=origin,
            totals=result.totals(),
            silent_hosts=result.silent_hosts,
            html=str(files.html),
            json=str(files.json),
            evidence=str(tree),
        )
    if as_json:
        click.echo(json.dumps(files.data, indent=2, ensure_ascii=False))
        return
    _print(result)
    console.print(f"wrote {files.html}\nwrote {files.json}")


def _print(result: Review) -> None:
    table = Table(title=f"log review {result.window.label} ({result.environment})")
    table.add_column("host")
    heads = ("failed", "logins", "sudo", "sudo denied", "created", "changed", "deleted")
    for head in heads:
        table.add_column(head, justify="right")
    for host, row in result.counts().items():
        cells = []
        for kind in KINDS:
            auto = row.get(f"{kind}_automation", 0)
            text = str(row[kind] - auto) + (f" (+{auto})" if auto else "")
            cells.append(f"[red]{text}[/]" if kind == "login_failed" and row[kind] else text)
        name = f"[red]{host} (silent)[/]" if host in result.silent_hosts else host
        table.add_row(name, *cells)
    console.print(table)
    console.print(f"(+N): routine work of {', '.join(result.automation_accounts)}")
    for src in result.failure_sources():
        if src["repeated"]:
            console.print(
                f"[red]repeated failures[/] from {src['source']}: {src['failures']} on "
                f"{', '.join(src['hosts'])} (users {', '.join(src['users'])})"
            )
    console.print(result.summary())
