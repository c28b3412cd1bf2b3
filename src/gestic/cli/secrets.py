"""`gestic secrets rotate`: new backup repository passwords or a new database password, kept
by the environment's one custodian and rolled out by a converge (Guía Custodia de Contraseñas).

- Backup passwords: the custodian (the lab's state, or the environment's ansible-vault file)
  gets the new password first; the converge of the `backup` roles then rotates it in every
  repository (restic `key add`, then `key remove` of the old keys) from the service's hosts.
  A converge stopped halfway is finished by the next one: a repository that already opens with
  the new password only loses its old keys.
- The database password (the portal's login role) lives on the database host: the converge of
  the `services` roles generates a new one there, sets it in PostgreSQL and hands it to the
  portal, which restarts with it.
- The shared RPA ledger's password (`--ledger`, the login role of gestic_rpa.ledger): the
  custodian gets the new one first (`gestic_database_passwords.<role>`); the converge of the
  `database` and `rpa_scheduler` roles sets it in PostgreSQL and in the bots hosts' scheduler
  environment (which restarts). The controller reads it from the custodian on every command.

Each rotation is a ledger run (`secrets.rotate`) naming what was rotated, never the values.
"""

from __future__ import annotations

import click

from gestic.console import console
from gestic.environments.context import Context
from gestic.environments.custody import BACKUP_PASSWORDS, DATABASE_PASSWORDS, ledger_role
from gestic.errors import GesticError, SecretsError, UsageError
from gestic.tools.ansible.runner import ConvergeResult

DATABASE_ROTATE_VAR = "database_portal_password_rotate"


@click.group(name="secrets")
def COMMAND() -> None:
    """The environment's secrets: rotate the backup and database passwords."""


@COMMAND.command(name="rotate")
@click.option(
    "--backup", "backup", multiple=True, metavar="SERVICE",
    help="Rotate SERVICE's backup repository password (repeat; `all` for every service).",
)  # fmt: skip
@click.option("--database", is_flag=True, help="Rotate the portal's database password.")
@click.option("--ledger", is_flag=True, help="Rotate the shared RPA ledger's database password.")
@click.pass_obj
def rotate_cmd(obj: Context, backup: tuple[str, ...], database: bool, ledger: bool) -> None:
    """Rotate passwords in the custodian, then converge what uses them."""
    if not backup and not database and not ledger:
        raise UsageError(
            "say what to rotate: --backup SERVICE (or all), --database and/or --ledger"
        )
    model = obj.model
    services = sorted(model.services) if "all" in backup else sorted(set(backup))
    unknown = [s for s in services if s not in model.services]
    if unknown:
        raise UsageError(
            f"unknown service {', '.join(unknown)} (services: {', '.join(sorted(model.services))})"
        )
    role = ledger_role(model)
    if ledger and role is None:
        raise UsageError(
            f"environment '{model.environment}' declares no shared RPA ledger (gestic_rpa.ledger)"
        )
    secrets = obj.access.secrets
    if (services or ledger) and secrets is None:
        raise SecretsError(f"environment '{obj.target}' has no secrets custodian")
    what = [f"{BACKUP_PASSWORDS}.{s}" for s in services] + (["database.portal"] if database else [])
    what += [f"{DATABASE_PASSWORDS}.{role}"] if ledger else []
    written = None
    changed = 0
    with (
        obj.exclusive("secrets rotate"),
        obj.ledger.record(kind="secrets.rotate", target=obj.target) as run,
    ):
        run.add_details(rotated=what)
        if services and secrets is not None:
            written = secrets.rotate(model, services)
            console.print(f"new backup passwords for {', '.join(services)} in {written}")
            # every host of the backup plays: the services' hosts rotate the key, and the
            # repository hosts (retention, copies, checks) get the new password too
            result = obj.run_playbook(tags="backup")
            _require(result, "the repositories", "backup")
            changed += result.changed
        if database:
            result = obj.run_playbook(tags="services", extravars={DATABASE_ROTATE_VAR: True})
            _require(result, "the database and the portal", "services")
            changed += result.changed
        if ledger and role is not None and secrets is not None:
            written = secrets.rotate(model, [role], var=DATABASE_PASSWORDS)
            console.print(f"new password for the RPA ledger's role {role} in {written}")
            result = obj.run_playbook(tags="database,rpa_scheduler")
            _require(result, "the ledger database and the bots hosts", "database,rpa_scheduler")
            changed += result.changed
        run.changed = changed
        run.summary = "rotated " + ", ".join(what)
    console.print(f"[green]ok[/] {run.summary}")
    if written is not None and not obj.is_lab:
        console.print(f"commit the re-encrypted vault ({written}) in a pull request")


def _require(result: ConvergeResult, what: str, tags: str) -> None:
    if result.ok:
        return
    raise GesticError(
        f"the new password is in the custodian, but rolling it out to {what} failed on "
        f"{', '.join(result.failed_hosts) or 'some hosts'}; repair them and run "
        f"`gestic converge --tags {tags}`: it finishes the rotation"
    )
