"""Options that several `gestic` subcommands share."""

from __future__ import annotations

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
