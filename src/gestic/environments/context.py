"""What every command needs: the environment's model, how its hosts are reached, where state
lives, the lab stack (for a lab), the ledger.

An environment is an inventory directory, `inventory/<name>` (`--env NAME`, GESTIC_ENV; default
`lab`), or any directory (`--inventory`, GESTIC_INVENTORY). A lab environment (`gestic_lab`) is
reached through the lab's namespaces and keeps its secrets in the lab's state; any other is
reached as its `gestic_connection` says and keeps its secrets in ansible-vault files.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from gestic.environments.custody import LabSecrets, VaultSecrets
from gestic.errors import NotALabError, UsageError
from gestic.lab.access import LabAccess
from gestic.model import Model, load_model
from gestic.paths import cache_dir, repo_root, state_dir
from gestic.procedures.dr.host_isolation import HostIsolation
from gestic.procedures.dr.isolation import Isolation, RouterIsolation
from gestic.store.ledger import Ledger, current_user
from gestic.store.operation_lock import OperationLocks, lock_wait_s
from gestic.tools.ansible.runner import ConvergeResult, run_playbook
from gestic.tools.pulumi.automation import LabStack
from gestic.tools.ssh import InventoryAccess, SshAccess

ENV_VAR = "GESTIC_ENV"
DEFAULT_ENV = "lab"


def environment_inventory(inventory: Path | None = None, env: str | None = None) -> Path:
    """The inventory dir of the chosen environment: --inventory or GESTIC_INVENTORY (a path),
    else inventory/<--env or GESTIC_ENV or lab>."""
    if inventory is not None and env is not None:
        raise UsageError("give --env or --inventory, not both")
    if inventory is None and env is None and (path := os.environ.get("GESTIC_INVENTORY")):
        inventory = Path(path)
    if inventory is not None:
        return inventory.resolve()
    name = env or os.environ.get(ENV_VAR) or DEFAULT_ENV
    base = repo_root() / "inventory"
    chosen = base / name
    if "/" in name or not (chosen / "hosts.yml").is_file():
        known = sorted(p.name for p in base.iterdir() if (p / "hosts.yml").is_file())
        raise UsageError(
            f"unknown environment '{name}': no {chosen}/hosts.yml (environments: "
            f"{', '.join(known) or 'none'})"
        )
    return chosen.resolve()


@dataclass(kw_only=True)
class Context:
    inventory: Path
    state: Path
    cache: Path
    lab_name: str | None = None  # overrides the model's lab name (tests run their own lab)
    lock_wait_s: float | None = None  # `gestic --wait`: seconds to wait for a busy environment

    @classmethod
    def from_env(cls, inventory: Path | None = None, env: str | None = None) -> Context:
        return cls(
            inventory=environment_inventory(inventory, env),
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
    def locks(self) -> OperationLocks:
        """The operation locks, kept in the ledger's database (shared by every operator)."""
        return OperationLocks(self.ledger.url)

    @contextlib.contextmanager
    def exclusive(self, what: str) -> Iterator[None]:
        """Hold the environment's lock while the body changes its hosts (one such run at a
        time, whoever runs it: gestic.store.operation_lock); OperationLockedError if it is busy."""
        wait_s = lock_wait_s(self.lock_wait_s)
        with self.locks.hold(
            f"environment '{self.target}'",
            what=what,
            user=current_user(),
            wait_s=wait_s,
            say=lambda line: print(f"gestic: {line}", file=sys.stderr, flush=True),
        ):
            yield

    @property
    def is_lab(self) -> bool:
        return self.model.lab is not None

    @property
    def target(self) -> str:
        """What the ledger records runs against: the lab stack, or the environment's name."""
        return self.lab_stack.name if self.is_lab else self.model.environment

    @cached_property
    def lab_stack(self) -> LabStack:
        if not self.is_lab:
            raise NotALabError(
                f"environment '{self.model.environment}' ({self.inventory}) is not a lab (no "
                "gestic_lab): the lab stack and lab commands do not apply to it"
            )
        return LabStack(
            model=self.model, state_dir=self.state, cache_dir=self.cache, lab_name=self.lab_name
        )

    @cached_property
    def access(self) -> SshAccess:
        if self.is_lab:
            settings = self.lab_stack.settings
            return LabAccess(
                lab=settings.lab,
                state_dir=settings.state_dir,
                secrets=LabSecrets(file=settings.state_dir / "secrets.yml"),
            )
        connection = self.model.connection
        assert connection is not None  # the loader requires it without gestic_lab
        env_state = self.state / "env" / self.model.environment
        return InventoryAccess(
            environment=self.model.environment,
            connection=connection,
            inventory=self.inventory,
            state_dir=env_state,
            secrets=VaultSecrets(
                inventory=self.inventory, files=self.model.vault_files, state_dir=env_state
            ),
        )

    @cached_property
    def isolation(self) -> Isolation:
        """How a test drill or a restore verification isolates the hosts it recovers on: the
        lab's router, or routes on the hosts themselves (gestic.procedures.dr.host_isolation)."""
        if self.is_lab:
            return RouterIsolation(self.lab_stack.settings.lab)
        return HostIsolation(self.access)

    @property
    def artifacts(self) -> Path:
        return self.state / "artifacts"

    def run_playbook(self, playbook: str = "site.yml", **options: Any) -> ConvergeResult:
        """Run one of playbooks/ on the environment's hosts (this context's inventory, access
        and secrets).

        `options` are `gestic.tools.ansible.runner.run_playbook`'s (check, diff, limit, tags,
        extravars, on_event, event_sink). The SSH access files are written first (from the model).
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
