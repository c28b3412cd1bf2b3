"""The process-to-code map: every path it names exists, and docs/process.md is its rendering."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gestic.errors import ProcessMapError
from gestic.reports.process_map import MAP_FILE, check_page, load_map, render

from ...paths import ROOT


def test_the_repository_map_names_only_existing_paths_and_the_page_is_current() -> None:
    check_page(ROOT)  # raises on a missing path or a stale page
    entries = load_map(ROOT)
    names = {e.name for e in entries}
    # the two operational indicators of the process document are both mapped
    assert "Nivel del servicio RPA" in names
    assert "Gestión del Servicio de la Infraestructura de Tecnología del ICETEX" in names
    assert all(e.why for e in entries if e.status in {"out-of-scope", "planned", "partial"})


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    shutil.copy(ROOT / MAP_FILE, root / MAP_FILE)
    for entry in load_map(ROOT):  # the named paths, as empty files or folders
        for path in (*entry.code, *entry.tests, *entry.docs):
            target = root / path
            if (ROOT / path).is_dir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.touch()
    return root


def test_a_missing_path_and_a_bad_status_are_named_with_their_lines(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    (root / "src/gestic/procedures/cmdb/assets.py").unlink()
    text = (root / MAP_FILE).read_text()
    text = text.replace("    status: out-of-scope\n", "    status: maybe\n", 1)
    (root / MAP_FILE).write_text(text)
    lines = text.splitlines()
    cmdb_line = next(
        i for i, line in enumerate(lines, 1) if "src/gestic/procedures/cmdb/assets.py" in line
    )
    status_line = next(i for i, line in enumerate(lines, 1) if "status: maybe" in line)
    with pytest.raises(ProcessMapError) as caught:
        load_map(root)
    message = str(caught.value)
    missing = "src/gestic/procedures/cmdb/assets.py does not exist"
    assert f"process.yml:{cmdb_line}: entries[4].code: {missing}" in message
    assert f"process.yml:{status_line}:" in message
    assert "status must be one of" in message


def test_a_stale_page_is_refused(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    (root / "docs/process.md").write_text(render(load_map(root)) + "edited by hand\n")
    with pytest.raises(ProcessMapError, match="not up to date"):
        check_page(root)
