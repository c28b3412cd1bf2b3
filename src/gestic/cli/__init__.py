"""Subcommands of `gestic` that live in their own modules.

Every module here that defines a module-level `COMMAND` (a click command or group) is added
to the `gestic` command automatically.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any, TypeVar

import click

from gestic.reports import DEFAULT_LANG, LANGS

F = TypeVar("F", bound=Callable[..., Any])


def lang_option(help: str | None = None) -> Callable[[F], F]:
    """The `--lang` option of the commands that write reports: es (the default) or en."""
    return click.option(
        "--lang",
        type=click.Choice(LANGS),
        default=DEFAULT_LANG,
        show_default=True,
        help=help,
    )


def discovered() -> list[click.Command]:
    """The COMMAND of every module in this package, in module-name order."""
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        command = getattr(module, "COMMAND", None)
        if isinstance(command, click.Command):
            found.append(command)
    return found
