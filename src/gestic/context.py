"""What every command needs: the model, where state lives, the lab stack, the ledger."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from gestic.converge import ConvergeResult, run_playbook
from gestic.infra import LabStack
from gestic.lab.access import LabAccess
from gestic.ledger import Ledger
from gestic.model import Model, load_model
from gestic.paths import cache_dir, repo_root, state_dir


@dataclass(kw_only=True)
class Context:
    inventory: Path
    state: Path
    cache: Path
    lab_name: str | None = None  # overrides the model's lab name (tests run their own lab)

    @classmethod
    def from_env(cls, inventory: Path | None = None) -> Context:
        root = repo_root()
        return cls(
            inventory=(
                inventory or Path(os.environ.get("GESTIC_INVENTORY", root / "inventory" / "lab"))
            ).resolve(),
            state=state_dir(),
            cache=cache_dir(),
            lab_name=os.environ.get("GESTIC_LAB_NAME") or None,
        )

    @property
    def root(self) -> Path:
        return repo_root()

    @cached_property
    def model(self) -> Model:
        return load_model(self.inventory)

    @cached_property
    def ledger(self) -> Ledger:
        return Ledger.from_env()

    @cached_property
    def lab_stack(self) -> LabStack:
        return LabStack(
            model=self.model, state_dir=self.state, cache_dir=self.cache, lab_name=self.lab_name
        )

    @cached_property
    def access(self) -> LabAccess:
        settings = self.lab_stack.settings
        return LabAccess(lab=settings.lab, state_dir=settings.state_dir)

    @property
    def artifacts(self) -> Path:
        return self.state / "artifacts"

    def run_playbook(self, playbook: str = "site.yml", **options: Any) -> ConvergeResult:
        """Run one of playbooks/ on the lab's hosts with this context's inventory and access.

        `options` are `gestic.converge.run_playbook`'s (check, diff, limit, tags, extravars,
        on_event, event_sink). The SSH access files are written first (from the model).
        """
        self.access.write(self.model)
        return run_playbook(
            playbooks_dir=self.root / "playbooks",
            playbook=playbook,
            inventory=self.inventory / "hosts.yml",
            access=self.access,
            artifacts_dir=self.artifacts / "ansible",
            **options,
        )
