"""The lab stack's generated passphrase: one per state dir, never another stack's stale file."""

from __future__ import annotations

from pathlib import Path

import pytest

from gestic.tools.pulumi import automation


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE", raising=False)
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE_FILE", raising=False)


def test_a_second_state_dir_gets_its_own_file_after_the_first_one_leaked_into_the_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = automation._passphrase_env(tmp_path / "one")
    for key, value in first.items():  # what LabStack._stack does for the engine's plugins
        monkeypatch.setenv(key, value)
    second = automation._passphrase_env(tmp_path / "two")
    assert second == {
        "PULUMI_CONFIG_PASSPHRASE_FILE": str(tmp_path / "two" / "pulumi" / "passphrase")
    }
    assert (tmp_path / "two" / "pulumi" / "passphrase").is_file()


def test_a_passphrase_file_the_operator_set_is_used_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE_FILE", str(tmp_path / "mine"))
    assert automation._passphrase_env(tmp_path / "state") == {}
    assert not (tmp_path / "state").exists()
