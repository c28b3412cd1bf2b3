"""Disaster recovery: the DR plan as data, backups' restore verification, drills and evidence."""
