"""A bot that reviews the environment's access report (a manifest step's `access_report:`):
its seed's items with that file replaced by the environment's report, and the accounts that
are not people (the model's service accounts) in their payload.

The seed stays the bot's source of its other inputs (the HR roster is HR's file, not the
model's); only the access report changes from the fixture to the environment's own.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from gestic.errors import ManifestError
from gestic.model import Model
from gestic.rpa.manifest import Bot, SeedItem, Step, load_seed

__all__ = ["SERVICE_ACCOUNTS_KEY", "access_report_step", "seed_with_report", "service_accounts"]

#: The payload key the bot reads the accounts that are never people from.
SERVICE_ACCOUNTS_KEY = "cuentas_de_servicio"


def access_report_step(bot: Bot) -> Step | None:
    """The bot's first step, if it starts from the access report."""
    first = bot.manifest.steps[0]
    return first if first.access_report is not None else None


def service_accounts(model: Model) -> list[str]:
    """The accounts of the environment that are not people: the automation account Ansible
    logs in as (the hosts' records say `access: automation`), the log review's automation
    accounts, and the RPA collector and partners' SFTP accounts."""
    names = {model.connection.user if model.connection else "gestic"}
    names.update(model.logging.review.automation_accounts)
    if model.rpa is not None:
        intake = model.rpa.intake
        names.add(intake.account)
        names.update(inbox.partner for inbox in intake.inboxes.values())
    return sorted(names)


def seed_with_report(bot: Bot, report: dict[str, Any], model: Model) -> list[SeedItem]:
    """The bot's seed with the environment's access report (report_json's dict) in place of
    the fixture's file, and the model's service accounts in each item's payload."""
    step = access_report_step(bot)
    if step is None or step.seed is None or step.access_report is None:
        raise ManifestError(f"{bot.name}: its first step does not start from an access report")
    if report.get("environment") != model.environment:
        raise ManifestError(
            f"{bot.name}: the access report is of environment {report.get('environment')!r}, "
            f"not {model.environment!r}"
        )
    content = json.dumps(report, ensure_ascii=False, indent=2).encode("utf-8")
    accounts = service_accounts(model)
    items = []
    for item in load_seed(bot.root / step.seed):
        files = {**item.files, step.access_report: content}
        payload = item.payload
        if isinstance(payload, dict):
            payload = {**payload, SERVICE_ACCOUNTS_KEY: accounts}
        items.append(dataclasses.replace(item, files=files, payload=payload))
    return items
