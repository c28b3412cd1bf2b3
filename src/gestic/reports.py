"""What gestic's HTML reports share: languages, month names, Jinja2 rendering, writing files.

Every report (log review, RPA service level, access inventory, vulnerability tests, DR drill
evidence) is a Jinja2 template under the package's ``templates/`` folder, named by its path
there (``"logs/review.html.j2"``), rendered with HTML autoescaping and strict undefined
variables, in Spanish by default or in English. The words of each report stay with its module
(a ``TEXT[lang]`` mapping passed to the template); this module only does the plumbing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, Literal

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

__all__ = [
    "DEFAULT_LANG",
    "LANGS",
    "MONTHS",
    "Lang",
    "check_lang",
    "environment",
    "lang_suffix",
    "month_title",
    "render",
    "write_html",
    "write_json",
]

Lang = Literal["es", "en"]
#: The languages of the reports, the default first.
LANGS: Final[tuple[Lang, ...]] = ("es", "en")
DEFAULT_LANG: Final[Lang] = "es"

MONTHS: Final[dict[Lang, tuple[str, ...]]] = {
    "es": (
        "enero",
        "febrero",
        "marzo",
        "abril",
        "mayo",
        "junio",
        "julio",
        "agosto",
        "septiembre",
        "octubre",
        "noviembre",
        "diciembre",
    ),
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
}

Filter = Callable[..., Any]


def check_lang(lang: str, error: Callable[[str], Exception] = ValueError) -> Lang:
    """`lang` as a `Lang`, or raise ``error("unknown language 'fr': choose one of es, en")``.

    Each report passes its own error class, so a bad language is reported like its other
    errors.
    """
    if lang not in LANGS:
        raise error(f"unknown language {lang!r}: choose one of {', '.join(LANGS)}")
    return lang


def lang_suffix(lang: Lang, sep: str = "-") -> str:
    """What a report's file name adds for `lang`: nothing for Spanish, else ``sep + lang``."""
    return "" if lang == DEFAULT_LANG else f"{sep}{lang}"


def month_title(year: int, month: int, lang: Lang) -> str:
    """A month as a report's title says it: "noviembre de 2026", "November 2026"."""
    name = MONTHS[lang][month - 1]
    return f"{name} de {year}" if lang == "es" else f"{name} {year}"


def environment(*, trim: bool = True, filters: Mapping[str, Filter] | None = None) -> Environment:
    """A Jinja2 environment over the package's templates, with these extra filters.

    Autoescaping is on for ``.html`` and ``.j2`` templates, an undefined variable is an error,
    and with `trim` (the default) block tags leave no blank lines or indentation behind.
    A fresh environment every call: filters often close over the report's language or zone.
    """
    env = Environment(
        loader=PackageLoader("gestic", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=trim,
        lstrip_blocks=trim,
    )
    env.filters.update(filters or {})
    return env


def render(
    template: str,
    /,
    *,
    trim: bool = True,
    filters: Mapping[str, Filter] | None = None,
    **context: Any,
) -> str:
    """Render ``templates/<template>`` with `context` (see `environment` for the options)."""
    return environment(trim=trim, filters=filters).get_template(template).render(**context)


def write_html(
    path: Path,
    template: str,
    /,
    *,
    trim: bool = True,
    filters: Mapping[str, Filter] | None = None,
    **context: Any,
) -> Path:
    """Render `template` (as `render` does) into `path`, UTF-8; return `path`."""
    html = render(template, trim=trim, filters=filters, **context)
    path.write_text(html, encoding="utf-8")
    return path


def write_json(path: Path, data: Any, *, default: Callable[[Any], Any] | None = None) -> Path:
    """Write `data` to `path` as indented UTF-8 JSON (non-ASCII kept as is); return `path`.

    `default` converts what JSON cannot represent, as in `json.dumps`.
    """
    text = json.dumps(data, indent=2, ensure_ascii=False, default=default)
    path.write_text(text + "\n", encoding="utf-8")
    return path
