"""Inputs a run takes from the environment (the partner's inbox), and what the scheduler does
when a bot falls due on a bots host that shares the schedule with others."""

from __future__ import annotations

import contextlib
import functools
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

from gestic.cli.rpa_access import scheduled_seed
from gestic.cli.rpa_context import RpaContext
from gestic.console import console
from gestic.errors import RpaError
from gestic.rpa.intake import Inbox
from gestic.rpa.manifest import Bot, load_seed
from gestic.rpa.runner import Runner
from gestic.rpa.schedule import timezone
from gestic.rpa.sftp_inbox import InboxAddress
from gestic.rpa.site_inputs import bot_variables, inbox_of, open_inbox

#: How long a bots host that lost a fire to another waits for that host to queue its seed.
SEEDING_WAIT_S = 120.0


def inbox_address(rpa: RpaContext, bot: Bot) -> InboxAddress:
    address = inbox_of(rpa.model, bot)
    if address is None:
        raise RpaError(f"{bot.name}: its first step takes no files from an inbox (manifest: inbox)")
    return address


@contextlib.contextmanager
def env_inbox(
    rpa: RpaContext, bot: Bot, *, key: Path | None = None, known_hosts: Path | None = None
) -> Iterator[tuple[Inbox, float]]:
    """The partner's inbox the bot's first step takes files from, logged in; and how long a
    file must stay unchanged before it is taken."""
    address = inbox_address(rpa, bot)
    with open_inbox(address, key_file=key, known_hosts=known_hosts) as inbox:
        yield inbox, address.settle_s


def scheduled_run(
    rpa: RpaContext, runner: Runner, *, workers: int, stop: threading.Event
) -> Callable[[Bot, datetime], None]:
    """What the scheduler does when a bot falls due: seed its first step from the environment
    (the partner's inbox, the published access report), or from its seed, and run it."""
    tz = timezone(rpa.settings.timezone)
    host = socket.gethostname()

    def run_one(bot: Bot, due: datetime) -> None:
        console.print(f"{datetime.now(tz):%Y-%m-%d %H:%M:%S} {bot.name}: scheduled run ({due})")
        first = bot.manifest.steps[0]
        values = bot_variables(rpa.model, bot)
        start = functools.partial(
            runner.run_bot, bot, workers=workers, variables=values, stop=stop, kind="rpa.schedule"
        )
        # Every bots host fires the same schedule, and the shared queue hands each item out
        # once. Every host takes the inbox's files (each file is taken once, by content); a
        # seed is queued only by the host that claims the fire first.
        if first.inbox is not None:  # the partner's files, never the fixtures
            with env_inbox(rpa, bot) as (inbox, settle_s):
                result = start(inbox=inbox, settle_s=settle_s)
        elif (first_claim := runner.queue.claim_fire(bot.name, due, host=host)) is not None:
            console.print(f"{bot.name}: {first_claim} seeds this run; this host helps work it")
            if not runner.queue.wait_fire_seeded(bot.name, due, timeout_s=SEEDING_WAIT_S):
                console.print(f"{bot.name}: no seed in {SEEDING_WAIT_S:.0f}s; working its queues")
            result = start()
        else:
            seeded = functools.partial(runner.queue.fire_seeded, bot.name, due)
            try:
                if first.access_report is not None:  # the environment's access report
                    report = scheduled_seed(rpa, bot)
                    result = start(seed=report.items, details=report.details, on_seeded=seeded)
                else:
                    seed = load_seed(bot.root / first.seed) if first.seed else None
                    result = start(seed=seed, on_seeded=seeded)
            except BaseException:
                runner.queue.release_fire(bot.name, due)  # unless it was seeded: then kept
                raise
        console.print(f"{bot.name}: {result.summary()}")

    return run_one
