"""`gestic infra preview --stack production`: missing provider plugins are named, not traced."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gestic.production.preview import missing_plugins, required_plugins


def test_the_plugins_come_from_the_installed_provider_sdks() -> None:
    plugins = {p.name: p for p in required_plugins()}
    assert set(plugins) == {"vsphere", "aws"}
    assert all(p.version.count(".") == 2 for p in plugins.values()), plugins


def test_an_installed_plugin_is_found_and_a_partial_download_is_not(tmp_path: Path) -> None:
    vsphere, aws = required_plugins()
    installed = tmp_path / "plugins" / vsphere.dir_name
    installed.mkdir(parents=True)
    (installed / vsphere.binary).write_text("#!/bin/sh\n")
    assert missing_plugins([vsphere, aws], tmp_path) == [aws]
    (tmp_path / "plugins" / f"{vsphere.dir_name}.partial").touch()
    assert missing_plugins([vsphere, aws], tmp_path) == [vsphere, aws]


@pytest.mark.parametrize("operation", ["preview", "up"])
def test_production_operations_give_one_clear_error(tmp_path: Path, operation: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "gestic", "infra", operation, "--stack", "production"],
        capture_output=True, text=True, check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PULUMI_HOME": str(tmp_path / "p"),
             "GESTIC_STATE_DIR": str(tmp_path / "state")},
    )  # fmt: skip
    out = " ".join((proc.stdout + proc.stderr).split())  # as one line: the console wraps
    assert proc.returncode != 0
    assert "Traceback" not in out, out
    if operation == "up":
        assert "applied by the institution's CI" in out, out
        return
    for plugin in required_plugins():
        assert f"resource {plugin.name} v{plugin.version}" in out, out
        assert f"pulumi plugin install resource {plugin.name} {plugin.version}" in out, out
    assert str(tmp_path / "p" / "plugins") in out, out
