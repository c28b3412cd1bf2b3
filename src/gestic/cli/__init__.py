"""The `gestic` command (`main`) and its subcommands, one module each.

Every module here that defines a module-level `COMMAND` (a click command or group) is added
to the `gestic` command automatically; `options` holds what several of them share.
"""

from __future__ import annotations

import importlib
import pkgutil

import click


def discovered() -> list[click.Command]:
    """The COMMAND of every module in this package, in module-name order."""
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        command = getattr(module, "COMMAND", None)
        if isinstance(command, click.Command):
            found.append(command)
    return found
