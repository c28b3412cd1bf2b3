"""Disaster recovery: the DR plan as data, backups' restore verification, drills and evidence."""

from gestic.dr.errors import DrError, DrillError, PlanError

__all__ = ["DrError", "DrillError", "PlanError"]
