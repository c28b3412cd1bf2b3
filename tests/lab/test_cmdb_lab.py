"""`gestic cmdb export` on the real lab: every host, reachable, with its real packages."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from gestic.cli.main import cli

from .labkit import Lab, run_on


def test_export_from_the_lab_matches_the_hosts(lab: Lab, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["cmdb", "export", "--output", str(tmp_path)])
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "cmdb.json").read_text())
    assets = {a["name"]: a for a in document["assets"]}
    assert set(assets) == set(lab.ctx.model.hosts)
    assert all(a["reachable"] for a in assets.values())
    ssh = run_on(lab.ctx, "web-p1", "dpkg-query -W -f='${Version}' openssh-server")
    assert ssh.returncode == 0, ssh.stderr
    assert assets["web-p1"]["packages"]["openssh-server"] == ssh.stdout.strip()
