"""Errors of backups and disaster recovery (all GesticError, so the CLI reports them cleanly)."""

from __future__ import annotations

from gestic.errors import GesticError


class DrError(GesticError):
    """A backup, restore verification or drill could not be prepared or run."""


class PlanError(DrError):
    """The DR plan (dr/plan.yml) or the backup repositories are invalid; names file and line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid DR plan:\n" + "\n".join(f"  - {p}" for p in problems))


class DrillError(DrError):
    """A drill failed: a wave, a service, a probe, a breached target or a dirty cleanup."""
