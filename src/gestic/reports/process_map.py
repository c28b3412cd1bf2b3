"""The process-to-code map: docs/process.yml (the data) rendered into docs/process.md.

Every procedure, guide and indicator of the institution's process document that concerns IT
operations names the code that performs it, the tests that prove it and the evidence it leaves,
or says why it is out of scope. Every path named must exist in the repository.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gestic.errors import ProcessMapError, YamlSourceError
from gestic.model.yamlsrc import SourceMap, load_yaml

MAP_FILE = Path("docs/process.yml")
PAGE_FILE = Path("docs/process.md")
KINDS = {"procedure": "Procedures", "guide": "Guides", "indicator": "Indicators"}
STATUSES = ("done", "partial", "planned", "out-of-scope")
PATH_KEYS = ("code", "tests", "docs")
# what each status must say
REQUIRED = {
    "done": ("code", "tests", "evidence"),
    "partial": ("code", "tests", "evidence", "why"),
    "planned": ("issue", "why"),
    "out-of-scope": ("why",),
}
KNOWN_KEYS = {"id", "kind", "name", "status", "issue", "why", "evidence", *PATH_KEYS}


@dataclass(frozen=True, kw_only=True)
class Entry:
    id: str
    kind: str
    name: str
    status: str
    code: list[str] = field(default_factory=list)
    tests: list[str] = field(default_factory=list)
    docs: list[str] = field(default_factory=list)
    evidence: str = ""
    why: str = ""
    issue: int | None = None


def load_map(root: Path) -> list[Entry]:
    """Read and check docs/process.yml under `root`; every problem at once, each with its line."""
    file = root / MAP_FILE
    smap = SourceMap()
    try:
        data = load_yaml(file, smap=smap)
    except (OSError, YamlSourceError) as exc:
        raise ProcessMapError(str(exc)) from exc
    raw = data.get("entries") if isinstance(data, dict) else None
    if not isinstance(raw, list):
        raise ProcessMapError(f"{file}:1: expected a mapping with a list under 'entries'")
    problems: list[str] = []
    entries: list[Entry] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):

        def where(key: str | None = None, index: int = index) -> str:
            origin = smap.locate(("entries", index, key) if key else ("entries", index))
            return str(origin) if origin is not None else str(file)

        if not isinstance(item, dict):
            problems.append(f"{where()}: entries[{index}] must be a mapping")
            continue
        entry, found = _entry(item, index, root, where)
        problems += found
        if entry is not None:
            if entry.id in seen:
                problems.append(f"{where('id')}: entries[{index}].id '{entry.id}' is repeated")
            seen.add(entry.id)
            entries.append(entry)
    if problems:
        raise ProcessMapError(f"{file} has problems:\n" + "\n".join(f"  - {p}" for p in problems))
    return entries


def _entry(
    item: dict[str, Any], index: int, root: Path, where: Any
) -> tuple[Entry | None, list[str]]:
    problems: list[str] = []
    label = f"entries[{index}]"
    for key in sorted(set(item) - KNOWN_KEYS):
        problems.append(f"{where(key)}: {label}.{key}: unknown key (known: {sorted(KNOWN_KEYS)})")
    for key in ("id", "kind", "name", "status"):
        if not isinstance(item.get(key), str) or not item[key]:
            problems.append(f"{where(key)}: {label}.{key} is required (a string)")
    if problems:
        return None, problems
    if item["kind"] not in KINDS:
        problems.append(f"{where('kind')}: {label}.kind must be one of {sorted(KINDS)}")
    status = item["status"]
    if status not in STATUSES:
        problems.append(f"{where('status')}: {label}.status must be one of {list(STATUSES)}")
    for key in REQUIRED.get(status, ()):
        if not item.get(key):
            problems.append(f"{where()}: {label} ({item['id']}) is {status}: it needs '{key}'")
    if "issue" in item and (not isinstance(item["issue"], int) or isinstance(item["issue"], bool)):
        problems.append(f"{where('issue')}: {label}.issue must be an issue number")
    paths: dict[str, list[str]] = {}
    for key in PATH_KEYS:
        value = item.get(key, [])
        if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
            problems.append(f"{where(key)}: {label}.{key} must be a list of repository paths")
            continue
        paths[key] = value
        for path in value:
            if not (root / path).exists():
                problems.append(f"{where(key)}: {label}.{key}: {path} does not exist")
    for key in ("evidence", "why"):
        if key in item and not isinstance(item[key], str):
            problems.append(f"{where(key)}: {label}.{key} must be text")
    if problems:
        return None, problems
    entry = Entry(
        id=item["id"], kind=item["kind"], name=item["name"], status=status,
        evidence=item.get("evidence", ""), why=item.get("why", ""), issue=item.get("issue"),
        **paths,
    )  # fmt: skip
    return entry, []


def _links(paths: list[str]) -> str:
    return "<br>".join(f"[`{p}`](../{p})" for p in paths) or "-"


def render(entries: list[Entry]) -> str:
    """docs/process.md: a table per kind, in the order of the data file."""
    counts = {s: sum(e.status == s for e in entries) for s in STATUSES}
    lines = [
        "# The process and the code that performs it",
        "",
        "<!-- generated from docs/process.yml by `gestic process-map`: edit that file -->",
        "",
        "The process *Gestión de Servicios Tecnológicos* (ICETEX, version 21) lists the",
        "procedures, guides and indicators below. Each points to the code that performs it, the",
        "tests that prove it and the evidence a run leaves, or says why it is out of gestic's",
        "scope. `gestic process-map --check` (in the unit tests) fails when a path is missing.",
        "",
        "Status: " + ", ".join(f"{counts[s]} {s}" for s in STATUSES) + ".",
    ]
    for kind, title in KINDS.items():
        rows = [e for e in entries if e.kind == kind]
        if not rows:
            continue
        lines += ["", f"## {title}", "", "| name | status | code | tests | docs | evidence / why |"]
        lines.append("|---|---|---|---|---|---|")
        for e in rows:
            status = f"{e.status} (issue {e.issue})" if e.issue is not None else e.status
            notes = "; ".join(t for t in (e.evidence, e.why) if t).replace("|", "\\|")
            lines.append(
                f"| {e.name} | {status} | {_links(e.code)} | {_links(e.tests)} | "
                f"{_links(e.docs)} | {notes} |"
            )
    return "\n".join(lines) + "\n"


def write_page(root: Path) -> Path:
    page = root / PAGE_FILE
    page.write_text(render(load_map(root)), encoding="utf-8")
    return page


def check_page(root: Path) -> None:
    """Raise ProcessMapError when the map is invalid or docs/process.md is not its rendering."""
    expected = render(load_map(root))
    page = root / PAGE_FILE
    current = page.read_text(encoding="utf-8") if page.is_file() else ""
    if current != expected:
        raise ProcessMapError(
            f"{page} is not up to date with {root / MAP_FILE}: run `gestic process-map`"
        )
