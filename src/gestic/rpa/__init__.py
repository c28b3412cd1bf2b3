"""Robotic process automation: work-item queues, robot runners, schedules and the RPA indicator.

Kept import-light on purpose: `gestic.rpa.queue` and `gestic.rpa.adapter` are imported inside
the robots' own environment (rpaframework), which has only the standard library and SQLAlchemy.
"""
