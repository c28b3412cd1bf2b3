"""What gestic's HTML reports share: languages, their words, dates, Jinja2 rendering, files.

Every report (log review, RPA service level, access inventory, vulnerability tests, DR drill
evidence) is a Jinja2 template under the package's ``templates/`` folder, named by its path
there (``"logs/review.html.j2"``), rendered with HTML autoescaping and strict undefined
variables, in Spanish by default or in English. The words of each report are data, one YAML
file per report and language in ``templates/locale/<report>.<lang>.yml`` (``text(report,
lang)``, passed to the template as ``t``); the months and date formats are ``common``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cache
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any, Final, Literal

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from gestic.errors import LocaleError, YamlSourceError
from gestic.model.yamlsrc import SourceMap, load_yaml

__all__ = [
    "DEFAULT_LANG",
    "LANGS",
    "Lang",
    "check_lang",
    "day_title",
    "environment",
    "lang_suffix",
    "load_words",
    "month_names",
    "month_title",
    "render",
    "text",
    "write_html",
    "write_json",
]

Lang = Literal["es", "en"]
#: The languages of the reports, the default first.
LANGS: Final[tuple[Lang, ...]] = ("es", "en")
DEFAULT_LANG: Final[Lang] = "es"

#: Where the words are, inside the package.
LOCALE_DIR: Final = ("templates", "locale")

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


# --- the words --------------------------------------------------------------------------------


class Words(Mapping[str, Any]):
    """The read-only words of one locale file; a missing key is a LocaleError naming file and key.

    Values are texts, tuples of texts and nested `Words`. (Its attributes start with an
    underscore, so a template's ``t.file`` still means the key "file".)
    """

    __slots__ = ("_items", "_prefix", "_where")

    def __init__(self, items: Mapping[str, Any], where: str, prefix: str = "") -> None:
        self._items, self._where, self._prefix = dict(items), where, prefix

    def __getitem__(self, key: str) -> Any:
        try:
            return self._items[key]
        except KeyError:
            raise LocaleError(f"{self._where}: no key {self._prefix + key!r}") from None

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str, default: Any = None) -> Any:
        return self._items.get(key, default)

    def __repr__(self) -> str:
        return f"Words({self._where}{':' + self._prefix if self._prefix else ''})"


def _words(items: dict[Any, Any], where: str, prefix: str) -> Words:
    """`items` (read from `where`) as `Words`, or a LocaleError naming the first bad key."""
    for key in items:
        if not isinstance(key, str):
            raise LocaleError(f"{where}: key {prefix + str(key)!r}: a key must be text")
    return Words({k: _value(v, where, prefix + k) for k, v in items.items()}, where, prefix)


def _value(value: Any, where: str, key: str) -> Any:
    if isinstance(value, dict):
        return _words(value, where, f"{key}.")
    if isinstance(value, list):
        return tuple(_value(v, where, f"{key}.{i}") for i, v in enumerate(value))
    if isinstance(value, str):
        return value
    raise LocaleError(f"{where}: key {key!r}: expected text, found {type(value).__name__}")


def load_words(file: Path) -> Words:
    """The words in the YAML file `file` (LocaleError, with file and key or line, if invalid)."""
    try:
        data = load_yaml(file, smap=SourceMap())
    except YamlSourceError as exc:
        raise LocaleError(str(exc)) from exc
    if not isinstance(data, dict):
        raise LocaleError(f"{file}: expected a mapping of words, found {type(data).__name__}")
    return _words(data, str(file), "")


@cache
def text(report: str, lang: str) -> Mapping[str, Any]:
    """The words of `report` in `lang`: ``templates/locale/<report>.<lang>.yml``, read once.

    A missing or invalid file, or later a missing key, is a LocaleError naming file and key.
    """
    resource = files("gestic.reports").joinpath(*LOCALE_DIR, f"{report}.{lang}.yml")
    if not resource.is_file():
        raise LocaleError(f"{resource}: no such locale file (report {report!r}, language {lang!r})")
    with as_file(resource) as path:
        return load_words(path)


def month_names(lang: Lang) -> Sequence[str]:
    """The twelve months in `lang`, January first."""
    months: Sequence[str] = text("common", lang)["months"]
    return months


def month_title(year: int, month: int, lang: Lang) -> str:
    """A month as a report's title says it: "noviembre de 2026", "November 2026"."""
    title: str = text("common", lang)["month_title"]
    return title.format(month=month_names(lang)[month - 1], year=year)


def day_title(year: int, month: int, day: int, lang: Lang) -> str:
    """A day as a report's title says it: "6 de diciembre de 2026", "December 6, 2026"."""
    title: str = text("common", lang)["day_title"]
    return title.format(day=day, month=month_names(lang)[month - 1], year=year)


# --- rendering and writing --------------------------------------------------------------------


def environment(*, trim: bool = True, filters: Mapping[str, Filter] | None = None) -> Environment:
    """A Jinja2 environment over the package's templates, with these extra filters.

    Autoescaping is on for ``.html`` and ``.j2`` templates, an undefined variable is an error,
    and with `trim` (the default) block tags leave no blank lines or indentation behind.
    A fresh environment every call: filters often close over the report's language or zone.
    """
    env = Environment(
        loader=PackageLoader("gestic.reports", "templates"),
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
