"""ICETEX beneficiaries portal: search a beneficiary, see the loans, update contact data.

Served by gunicorn (`portal.app:create_app()`) behind nginx; backed by the `cartera` database
of the same site. HTML pages for people and robots, and a JSON API under /api.
"""

from portal.app import create_app

__all__ = ["create_app"]
