"""Errors of the RPA orchestrator (all are GesticError, so the CLI reports them cleanly)."""

from __future__ import annotations

from gestic.errors import GesticError


class RpaError(GesticError):
    """A bot could not be loaded, run, scheduled or reported on."""


class ManifestError(RpaError):
    """A bot's manifest or the RPA settings are invalid (the message names file, key, line)."""


class QueueError(RpaError):
    """The work-item queue database is unavailable or refused an operation."""


class LeaseLostError(QueueError):
    """A worker tried to release an item it no longer holds (its lease expired and was taken)."""
