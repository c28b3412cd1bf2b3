"""What the RPA commands share: the robots, their queue, the model's RPA settings, and the
RPA setup that `gestic incidents` and `gestic indicators` measure the service level with.
No `COMMAND` here: `gestic rpa` is `gestic.cli.rpa`."""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from gestic.console import console
from gestic.environments.context import Context
from gestic.errors import ManifestError, ModelError, RpaError
from gestic.lab import names
from gestic.lab.network import netns_exists
from gestic.model import Model, load_model
from gestic.model.rpa_schema import Rpa
from gestic.model.schema import required
from gestic.procedures.access.published import AccessReports, PublishedReport
from gestic.rpa.manifest import Bot, Catalog, catalog
from gestic.rpa.queue import WorkQueue
from gestic.rpa.robots_env import ROBOTS_ENV_ENV, RobotsEnv
from gestic.rpa.runner import Runner
from gestic.rpa.shared_ledger import open_shared_ledger, shared_ledger
from gestic.store.ledger import LEDGER_URL_ENV, default_url

ROBOTS_ENV = "GESTIC_ROBOTS_DIR"


class RpaContext:
    """What the rpa subcommands share: gestic's Context plus the robots and their queue."""

    def __init__(self, ctx: Context, robots: Path | None) -> None:
        self.ctx = ctx
        self.robots = (robots or Path(os.environ.get(ROBOTS_ENV) or ctx.root / "robots")).resolve()
        self._queue: WorkQueue | None = None
        self._reports: AccessReports | None = None
        self._catalog: Catalog | None = None
        self._model: Model | None = None
        self._url: str | None = None
        self._opened = contextlib.ExitStack()  # the shared ledger's port forward, if opened

    @property
    def ledger_url(self) -> str:
        """The queue's database: GESTIC_LEDGER_URL, else the shared ledger the environment
        declares (gestic_rpa.ledger, through an SSH port forward kept open until the command
        ends), else SQLite in the state dir."""
        if self._url is None:
            self._url = os.environ.get(LEDGER_URL_ENV) or self._shared_url() or default_url()
        return self._url

    def _shared_url(self) -> str | None:
        if os.environ.get(ROBOTS_ENV_ENV):
            return None  # a bots host: the rpa_scheduler role gives it GESTIC_LEDGER_URL
        ledger = shared_ledger(self.model)
        if ledger is None:
            return None
        url = self._opened.enter_context(
            open_shared_ledger(
                ledger, access=self.ctx.access, model=self.model, state_dir=self.ctx.state
            )
        )
        # closed with the command that opened it (or by close())
        if (click_ctx := click.get_current_context(silent=True)) is not None:
            click_ctx.call_on_close(self.close)
        return url

    def close(self) -> None:
        """Close the queue and the shared ledger's port forward (if they were opened)."""
        if self._queue is not None:
            self._queue.close()
            self._queue = None
        if self._reports is not None:
            self._reports.close()
            self._reports = None
        self._url = None
        self._opened.close()

    @property
    def catalog(self) -> Catalog:
        """The bots, read once; each invalid manifest is reported and its bot left out."""
        if self._catalog is None:
            self._catalog = catalog(self.robots)
            for name, problem in self._catalog.broken.items():
                console.print(f"[yellow]bot {name} left out, its manifest is invalid:[/]")
                console.print(str(problem), markup=False)
        return self._catalog

    @property
    def bots(self) -> dict[str, Bot]:
        """The bots whose manifests are valid."""
        return self.catalog.bots

    def bot(self, name: str) -> Bot:
        return self.catalog.bot(name)

    @property
    def on_bots_host(self) -> bool:
        """Whether this is a bots host (the rpa_scheduler role sets GESTIC_ROBOTS_ENV)."""
        return bool(os.environ.get(ROBOTS_ENV_ENV))

    @property
    def model(self) -> Model:
        """The environment's model. On a bots host (the rpa_scheduler role sets
        GESTIC_ROBOTS_ENV) it is read without the check of the machine's routes: that host's
        routes are the environment's own networks, which a lab range always overlaps."""
        if not os.environ.get(ROBOTS_ENV_ENV):
            return self.ctx.model
        if self._model is None:
            self._model = load_model(self.ctx.inventory, check_machine=False)
        return self._model

    @property
    def settings(self) -> Rpa:
        """The model's RPA section (gestic_rpa), required by the indicator and the schedule."""
        return required(
            self.model,
            self.model.rpa,
            var="gestic_rpa",
            need="the RPA indicator's target and the bots it schedules (rpa.yml, docs/rpa.md)",
            error=ManifestError,
        )

    @property
    def queue(self) -> WorkQueue:
        if self._queue is None:
            self.ctx.state.mkdir(parents=True, exist_ok=True)
            self._queue = WorkQueue(self.ledger_url)
        return self._queue

    @property
    def access_reports(self) -> AccessReports:
        """The access reports published for the bots, in the queue's database."""
        if self._reports is None:
            self.ctx.state.mkdir(parents=True, exist_ok=True)
            self._reports = AccessReports(self.ledger_url)
        return self._reports

    def publish_access_report(
        self, report: dict[str, Any], source: str, run_id: int
    ) -> PublishedReport:
        """Publish a report `gestic access report` made (make_report's `publish`)."""
        return self.access_reports.publish(report, source=source, run_id=run_id)

    def env(self) -> RobotsEnv:
        prebuilt = os.environ.get(ROBOTS_ENV_ENV)
        if prebuilt:  # a bots host: installed by the rpa_scheduler role, never built here
            return RobotsEnv.existing(Path(prebuilt))
        # One environment for every bot (also test bots elsewhere): the repository's robots/.
        return RobotsEnv.ensure(
            self.ctx.root / "robots" / "requirements.txt",
            self.ctx.cache,
            log=console.print,
        )

    def lab_netns(self) -> str:
        """The current lab's router namespace (the lab must be up): robots there reach it."""
        try:
            lab = self.ctx.lab_stack.settings.lab
        except ValueError as exc:  # an inventory without gestic_lab (production)
            raise RpaError(f"--lab: {exc}") from exc
        netns = names.router_netns(lab)
        if not netns_exists(netns):
            raise RpaError(
                f"--lab: the lab {lab!r} is not up (no network namespace {netns}); "
                "start it with: gestic infra up --stack lab"
            )
        return netns

    def runner(self, *, verbose: bool = True, in_lab: bool = False) -> Runner:
        # Find the lab and open the queue (and so the database) before anything is started.
        netns = self.lab_netns() if in_lab else None
        queue = self.queue
        ledger = self.ctx.ledger
        return Runner(
            queue=queue,
            ledger=ledger,
            env=self.env(),
            state=self.ctx.state,
            artifacts=self.ctx.artifacts,
            log=(lambda m: console.print(m, markup=False)) if verbose else (lambda m: None),
            netns=netns,
        )

    def warn_lab_addresses(self, bot: Bot, variables: Mapping[str, str]) -> None:
        """Say so when a bot's URLs point into the lab range but the robots run outside it."""
        try:
            lab = self.model.lab
        except ModelError:  # only a hint: a run needs no model (e.g. on a bots host)
            return
        if lab is None:
            return
        for name, value in sorted({**bot.manifest.variables, **variables}.items()):
            host = urlsplit(value).hostname if "://" in value else None
            try:
                inside = host is not None and ipaddress.ip_address(host) in lab.range
            except ValueError:  # a host name, not an address
                inside = False
            if inside:
                console.print(
                    f"[yellow]{bot.name}: {name}={value} is a lab address ({lab.range}), "
                    "which this machine has no route to: add --lab to run the robots inside "
                    "the lab's network[/]"
                )


@dataclass(frozen=True, kw_only=True)
class RpaSetup:
    """An environment's RPA settings and bots, as the service level is measured with."""

    rpa: RpaContext
    settings: Rpa
    bots: dict[str, Bot]

    @contextlib.contextmanager
    def open_queue(self) -> Iterator[WorkQueue]:
        """The work-item queue, closed when done."""
        queue = self.rpa.queue
        try:
            yield queue
        finally:
            self.rpa.close()


def rpa_setup(ctx: Context) -> RpaSetup | str:
    """The environment's RPA setup, or why it has none (the first line of the complaint)."""
    rpa = RpaContext(ctx, None)
    try:
        settings, bots = rpa.settings, rpa.bots
    except ManifestError as exc:
        return str(exc).splitlines()[0]
    return RpaSetup(rpa=rpa, settings=settings, bots=bots)
