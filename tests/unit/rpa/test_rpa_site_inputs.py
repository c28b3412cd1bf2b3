"""What a bot takes from its environment: variables with the inventory's addresses, the
partner's inbox over SFTP, and the collector's key in the environment's secrets."""

from __future__ import annotations

import errno
import os
import re
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import paramiko
import pytest
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_ssh_private_key,
)

from gestic.environments.custody import RPA_COLLECTOR_KEY, LabSecrets, required
from gestic.errors import IntakeError, ManifestError, ModelError
from gestic.model import load_model
from gestic.rpa.manifest import load_bot
from gestic.rpa.sftp_inbox import InboxAddress, SftpInbox, inbox_address, open_sftp_inbox
from gestic.rpa.site_inputs import bot_variables, inbox_of, open_inbox

from ...paths import LAB_INVENTORY, ROOT

RPA_SETTINGS = Path("group_vars/all/rpa.yml")


def _edit(file: Path, old: str, new: str) -> None:
    text = file.read_text()
    assert old in text, f"fixture text {old!r} not in {file}"
    file.write_text(text.replace(old, new, 1))


def test_the_lab_bots_get_the_portal_address_from_the_inventory() -> None:
    model = load_model(LAB_INVENTORY, check_machine=False)
    portal = model.hosts[model.services["portal"].hosts[0]].address
    conciliacion = load_bot(ROOT / "robots" / "conciliacion-pagos")
    actualizacion = load_bot(ROOT / "robots" / "actualizacion-datos")
    assert bot_variables(model, conciliacion) == {"CARTERA_URL": f"http://{portal}"}
    assert bot_variables(model, actualizacion) == {"PORTAL_URL": f"http://{portal}"}
    # the manifests name no address of any environment
    assert actualizacion.manifest.variables["PORTAL_URL"] == ""
    assert conciliacion.manifest.variables["CARTERA_URL"] == ""


def test_the_payments_inbox_is_the_banks_sftp_folder_on_the_transfer_host() -> None:
    model = load_model(LAB_INVENTORY, check_machine=False)
    address = inbox_of(model, load_bot(ROOT / "robots" / "conciliacion-pagos"))
    transfer = model.hosts[model.services["transferencia"].hosts[0]]
    assert address is not None
    assert (address.host, address.port, address.account) == (
        str(transfer.address),
        22,
        "rpa-colector",
    )
    assert address.folder == PurePosixPath("/banco-aliado/entrada")
    assert address.processed == PurePosixPath("/banco-aliado/procesados")
    assert address.source == f"sftp://rpa-colector@{transfer.address}:22/banco-aliado/entrada"
    assert inbox_of(model, load_bot(ROOT / "robots" / "revision-accesos")) is None
    with pytest.raises(IntakeError, match=r"declares no inbox 'facturas'.*pagos-banco"):
        inbox_address(model, "facturas")


def test_an_unknown_service_in_a_variable_or_the_intake_is_named(lab_inventory: Path) -> None:
    rpa = lab_inventory / RPA_SETTINGS
    _edit(rpa, 'CARTERA_URL: "http://{portal}"', 'CARTERA_URL: "http://{portl}/api"')
    _edit(rpa, "service: transferencia", "service: correo")
    with pytest.raises(ModelError) as info:
        load_model(lab_inventory, check_machine=False)
    text = "\n".join(info.value.problems)
    assert "gestic_rpa.variables.conciliacion-pagos.CARTERA_URL: unknown service '{portl}'" in text
    assert "gestic_rpa.intake.service: unknown service 'correo'" in text
    assert f"{rpa}:" in text


def test_a_bad_inbox_folder_is_refused(lab_inventory: Path) -> None:
    _edit(lab_inventory / RPA_SETTINGS, "folder: entrada", "folder: ../../etc")
    with pytest.raises(ModelError, match=r"gestic_rpa\.intake\.inboxes\.pagos-banco\.folder"):
        load_model(lab_inventory, check_machine=False)


def test_only_the_first_step_takes_files_from_an_inbox(tmp_path: Path) -> None:
    bot = tmp_path / "dos-pasos"
    (bot / "tasks").mkdir(parents=True)
    for suite in ("a", "b"):
        (bot / "tasks" / f"{suite}.robot").write_text("*** Tasks ***\nT\n    No Operation\n")
    (bot / "manifest.yaml").write_text(
        "name: dos-pasos\ndescription: d\nowner: o\nqueue: dos-pasos.b\nsla_minutes: 5\n"
        "steps:\n  - {name: a, queue: dos-pasos.a, suite: tasks/a.robot}\n"
        "  - {name: b, queue: dos-pasos.b, suite: tasks/b.robot, inbox: pagos-banco}\n"
    )
    with pytest.raises(ManifestError, match=r"steps\.1\.inbox.*only the first step"):
        load_bot(bot)


def test_a_lab_that_takes_files_gets_a_collector_key_once(tmp_path: Path) -> None:
    model = load_model(LAB_INVENTORY, check_machine=False)
    assert required(model)[RPA_COLLECTOR_KEY] == ["private", "public"]
    store = LabSecrets(file=tmp_path / "secrets.yml")
    key = store.ensure(model)[RPA_COLLECTOR_KEY]
    assert key["public"].startswith("ssh-ed25519 ")
    private = load_ssh_private_key(key["private"].encode(), password=None)
    public = private.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
    assert key["public"].split()[:2] == public.split()
    assert store.ensure(model)[RPA_COLLECTOR_KEY] == key  # never regenerated


def test_an_environment_without_inboxes_needs_no_collector_key() -> None:
    model = load_model(ROOT / "inventory" / "production", check_machine=False)
    assert RPA_COLLECTOR_KEY not in required(model)


# --- the SFTP inbox on a recorded SFTP session (the lab test logs in to the real one) ---------


@dataclass
class FakeSftp:
    """What the inbox asks of paramiko's SFTPClient, on a dict of path -> (bytes, mtime)."""

    files: dict[str, tuple[bytes, float]] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)

    def listdir_attr(self, path: str) -> list[paramiko.SFTPAttributes]:
        if path not in self.dirs:
            raise PermissionError(errno.EACCES, "Permission denied")
        out = []
        for name, (data, mtime) in self.files.items():
            if str(PurePosixPath(name).parent) == path:
                attr = paramiko.SFTPAttributes()
                attr.filename, attr.st_size = PurePosixPath(name).name, len(data)
                attr.st_mtime, attr.st_mode = int(mtime), stat.S_IFREG | 0o640
                out.append(attr)
        sub = paramiko.SFTPAttributes()
        sub.filename, sub.st_mode, sub.st_size, sub.st_mtime = "sub", stat.S_IFDIR | 0o750, 0, 0
        return [*out, sub]

    def stat(self, path: str) -> paramiko.SFTPAttributes:
        if path not in self.files:
            raise FileNotFoundError(errno.ENOENT, "No such file")
        return paramiko.SFTPAttributes()

    def posix_rename(self, old: str, new: str) -> None:
        if old not in self.files:
            raise FileNotFoundError(errno.ENOENT, "No such file")
        self.files[new] = self.files.pop(old)


ADDRESS = InboxAddress(
    name="pagos-banco", host="10.213.1.31", port=22, account="rpa-colector",
    folder=PurePosixPath("/banco-aliado/entrada"),
    processed=PurePosixPath("/banco-aliado/procesados"), settle_s=30,
)  # fmt: skip


def test_the_sftp_inbox_lists_files_only_and_never_overwrites_a_processed_one() -> None:
    fake = FakeSftp(
        files={
            "/banco-aliado/entrada/pagos.csv": (b"a", 200.0),
            "/banco-aliado/entrada/antes.csv": (b"bb", 100.0),
            "/banco-aliado/procesados/pagos.csv": (b"old", 50.0),
        },
        dirs={"/banco-aliado/entrada"},
    )
    inbox = SftpInbox(ADDRESS, fake)  # type: ignore[arg-type]
    assert [(f.name, f.size, f.mtime) for f in inbox.listing()] == [
        ("antes.csv", 2, 100.0),
        ("pagos.csv", 1, 200.0),
    ]
    assert inbox.archive("antes.csv", "0123456789abcdef") == "antes.csv"
    assert inbox.archive("pagos.csv", "0123456789abcdef") == "pagos.0123456789ab.csv"
    assert fake.files["/banco-aliado/procesados/pagos.csv"] == (b"old", 50.0)
    with pytest.raises(FileNotFoundError):  # another producer moved it first
        inbox.archive("pagos.csv", "0123456789abcdef")
    fake.dirs.clear()
    with pytest.raises(
        IntakeError,
        match=re.escape("sftp://rpa-colector@10.213.1.31:22/banco-aliado/entrada: cannot list"),
    ):
        inbox.listing()


def test_the_inbox_needs_the_collector_key_and_the_known_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GESTIC_RPA_INBOX_KEY", raising=False)
    with pytest.raises(IntakeError, match="GESTIC_RPA_INBOX_KEY is not set"), open_inbox(ADDRESS):
        pass
    key = tmp_path / "id_ed25519"
    with (
        pytest.raises(IntakeError, match=f"the collector key {key} does not exist"),
        open_sftp_inbox(ADDRESS, key_file=key, known_hosts=tmp_path / "known_hosts"),
    ):
        pass


def _gestic(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gestic", *args], cwd=ROOT, capture_output=True, text=True,
        timeout=120, check=False, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip


def test_from_inbox_is_refused_for_a_bot_without_one_before_anything_runs() -> None:
    proc = _gestic("rpa", "run", "revision-accesos", "--from-inbox")
    assert proc.returncode != 0
    assert (
        "revision-accesos: its first step takes no files from an inbox" in proc.stderr + proc.stdout
    )
    proc = _gestic("rpa", "run", "conciliacion-pagos", "--from-inbox", "--no-seed")
    assert "--from-inbox starts the first step" in proc.stderr + proc.stdout
