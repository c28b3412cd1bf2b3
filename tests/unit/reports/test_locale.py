"""The words of the reports, in templates/locale/<report>.<lang>.yml: both languages of every
report say the same things (same keys, same {fields}), the templates only use words that exist,
and a missing or broken file, or a missing word, is reported with its file and key."""

from __future__ import annotations

import string
from collections.abc import Iterator, Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from jinja2 import nodes

from gestic import reports
from gestic.errors import GesticError, LocaleError
from gestic.procedures.logs.events import KEY_REFUSED, UNKNOWN_USER

LOCALE = Path(str(files("gestic.reports") / "templates" / "locale"))
TEMPLATES = LOCALE.parent

#: Which words each template is given as `t` (every template is listed: a new one must be).
TEMPLATE_WORDS = {
    "access/report.html.j2": "access",
    "dr/report.html.j2": "dr",
    "index.html.j2": "index",
    "logs/review.html.j2": "logs",
    "monitoring/indicator.html.j2": "monitoring",
    "rpa/report.html.j2": "rpa",
    "vulnscan/report.html.j2": "vulnscan",
}
REPORTS = sorted({p.name.split(".")[0] for p in LOCALE.glob("*.yml")})


def _shape(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(key path, what it holds) for every leaf: a mapping's keys, a list's length, a text's
    {fields}."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _shape(item, f"{path}{key}.")
    elif isinstance(value, tuple):
        yield path, len(value)
        for i, item in enumerate(value):
            yield from _shape(item, f"{path}{i}.")
    else:
        fields = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        yield path, fields


def test_every_report_has_both_languages_and_nothing_else() -> None:
    assert sorted({*TEMPLATE_WORDS.values(), "change", "common"}) == REPORTS
    assert sorted(p.name for p in LOCALE.iterdir()) == sorted(
        f"{name}.{lang}.yml" for name in REPORTS for lang in reports.LANGS
    )


@pytest.mark.parametrize("name", REPORTS)
def test_both_languages_have_the_same_keys_and_fields(name: str) -> None:
    shapes = {lang: dict(_shape(reports.text(name, lang))) for lang in reports.LANGS}
    es, en = shapes["es"], shapes["en"]
    assert sorted(es) == sorted(en), f"{name}: keys differ"
    assert {k: v for k, v in es.items() if en[k] != v} == {}, f"{name}: {{fields}} differ"


def _used_words(template: str) -> set[str]:
    """The literal keys of `t` the template uses (`t.title`, `t["keys"]`)."""
    source = (TEMPLATES / template).read_text(encoding="utf-8")
    tree = reports.environment().parse(source)
    used = {
        n.attr
        for n in tree.find_all(nodes.Getattr)
        if isinstance(n.node, nodes.Name) and n.node.name == "t"
    }
    used |= {
        n.arg.value
        for n in tree.find_all(nodes.Getitem)
        if isinstance(n.node, nodes.Name) and n.node.name == "t" and isinstance(n.arg, nodes.Const)
    }
    return used


def test_every_template_is_given_words() -> None:
    found = sorted(p.relative_to(TEMPLATES).as_posix() for p in TEMPLATES.rglob("*.j2"))
    assert found == sorted(TEMPLATE_WORDS)


@pytest.mark.parametrize(("template", "name"), sorted(TEMPLATE_WORDS.items()))
def test_templates_use_only_words_that_exist(template: str, name: str) -> None:
    used = _used_words(template)
    assert used, f"{template} uses no word of {name}"
    for lang in reports.LANGS:
        assert used - set(reports.text(name, lang)) == set(), f"{template} ({lang})"


def test_the_log_details_translate_what_the_review_words_itself() -> None:
    assert {KEY_REFUSED, UNKNOWN_USER} <= set(reports.text("logs", "es")["details"])


def test_words_are_cached_and_read_only() -> None:
    words = reports.text("rpa", "es")
    assert reports.text("rpa", "es") is words
    assert words["title"] == "Nivel del servicio RPA"
    with pytest.raises(TypeError):
        words["title"] = "x"  # type: ignore[index]
    assert reports.text("common", "en")["months"][11] == "December"


def test_dates_in_both_languages() -> None:
    assert reports.month_title(2026, 11, "es") == "noviembre de 2026"
    assert reports.month_title(2026, 11, "en") == "November 2026"
    assert reports.day_title(2026, 12, 6, "es") == "6 de diciembre de 2026"
    assert reports.day_title(2026, 12, 6, "en") == "December 6, 2026"
    assert reports.month_names("es")[0] == "enero"


def test_a_missing_word_names_file_and_key() -> None:
    words = reports.text("logs", "en")
    with pytest.raises(LocaleError, match=r"logs\.en\.yml: no key 'nonexistent'"):
        words["nonexistent"]
    with pytest.raises(LocaleError, match=r"logs\.en\.yml: no key 'details\.nothing'"):
        words["details"]["nothing"]
    assert "nonexistent" not in words
    assert words.get("nonexistent", "fallback") == "fallback"
    assert issubclass(LocaleError, GesticError)


def test_a_missing_locale_file_is_reported() -> None:
    with pytest.raises(LocaleError, match=r"rpa\.fr\.yml: no such locale file"):
        reports.text("rpa", "fr")
    with pytest.raises(LocaleError, match=r"nothing\.es\.yml: no such locale file"):
        reports.text("nothing", "es")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("title: [unclosed\n", r"bad\.es\.yml:\d+: invalid YAML"),
        ("title: a\ntitle: b\n", r"bad\.es\.yml:2: duplicate key 'title'"),
        ("- a list\n", r"bad\.es\.yml: expected a mapping of words, found list"),
        ("title: a\ncount: 3\n", r"bad\.es\.yml: key 'count': expected text, found int"),
        ("a:\n  b: [x, {c: null}]\n", r"bad\.es\.yml: key 'a\.b\.1\.c': expected text, found"),
        ("1: one\n", r"bad\.es\.yml: key '1': a key must be text"),
    ],
)
def test_an_invalid_locale_file_names_file_and_key(
    tmp_path: Path, content: str, message: str
) -> None:
    bad = tmp_path / "bad.es.yml"
    bad.write_text(content, encoding="utf-8")
    with pytest.raises(LocaleError, match=message):
        reports.load_words(bad)
