"""Drive Pulumi stacks through the Automation API: preview, up, refresh and destroy.

Stacks run as inline programs (the Python SDK serves the language runtime to the engine) on a
local `file://` backend in the state dir, with a passphrase secrets provider. The passphrase
comes from PULUMI_CONFIG_PASSPHRASE(_FILE); for the lab only, one is generated into the
git-ignored state dir on first use.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pulumi import automation as auto

from gestic.errors import EngineError
from gestic.lab.components import LabSettings
from gestic.lab.program import lab_program, settings_for
from gestic.model import Model
from gestic.tools.pulumi.engine import engine_env, find_engine

Operation = Literal["preview", "up", "refresh", "destroy"]
Printer = Callable[[str], None]


@dataclass(frozen=True, kw_only=True)
class OpResult:
    """What one stack operation did."""

    operation: Operation
    stack: str
    changes: dict[str, int]
    duration_s: float
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def changed(self) -> int:
        return sum(n for op, n in self.changes.items() if op != "same")


# The passphrase files this process generated. `_stack` copies its environment into os.environ
# (the engine's plugins need it), so a second stack with another state dir must not mistake the
# first one's generated file for a passphrase the operator set.
_GENERATED: set[str] = set()


def _passphrase_env(state_dir: Path) -> dict[str, str]:
    given_file = os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")
    if os.environ.get("PULUMI_CONFIG_PASSPHRASE") or (given_file and given_file not in _GENERATED):
        return {}
    file = state_dir / "pulumi" / "passphrase"
    _GENERATED.add(str(file))
    if not file.is_file():
        file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32))
    return {"PULUMI_CONFIG_PASSPHRASE_FILE": str(file)}


@dataclass(frozen=True, kw_only=True)
class LabStack:
    """The `lab` stack of one model, kept in `state_dir`."""

    model: Model
    state_dir: Path
    cache_dir: Path
    lab_name: str | None = None

    @property
    def name(self) -> str:
        return "lab" if self.lab_name is None else f"lab-{self.lab_name}"

    @property
    def settings(self) -> LabSettings:
        return settings_for(
            self.model, state_dir=self.state_dir, cache_dir=self.cache_dir, lab=self.lab_name
        )

    def _stack(self) -> auto.Stack:
        engine = find_engine(self.cache_dir)
        backend = self.state_dir / "pulumi" / "backend"
        work_dir = self.state_dir / "pulumi" / "work" / self.name
        backend.mkdir(parents=True, exist_ok=True)
        work_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **engine_env(engine),
            **_passphrase_env(self.state_dir),
            "PULUMI_BACKEND_URL": backend.as_uri(),
            "PULUMI_HOME": str(self.state_dir / "pulumi" / "home"),
        }
        # the language runtime (this process) also spawns provider plugins: same environment
        os.environ.update(env)
        settings = self.settings
        model = self.model
        opts = auto.LocalWorkspaceOptions(
            work_dir=str(work_dir),
            pulumi_home=env["PULUMI_HOME"],
            env_vars=env,
            secrets_provider="passphrase",
            pulumi_command=auto.PulumiCommand(
                root=str(engine.parent.parent), skip_version_check=True
            ),
            project_settings=auto.ProjectSettings(
                name="gestic-lab",
                runtime="python",
                description="The lab datacenter: real hosts on this machine",
                backend=auto.ProjectBackend(url=backend.as_uri()),
            ),
        )
        try:
            return auto.create_or_select_stack(
                stack_name=self.name,
                project_name="gestic-lab",
                program=lambda: lab_program(model, settings),
                opts=opts,
            )
        except auto.CommandError as exc:
            raise EngineError(f"cannot open stack '{self.name}': {exc}") from exc

    def run(self, operation: Operation, *, on_output: Printer | None = None) -> OpResult:
        """Run one operation; raise EngineError with the engine's own message on failure."""
        stack = self._stack()
        start = time.monotonic()
        try:
            if operation == "preview":
                # against the real state, as `up` is (a preview never writes the state): a lab
                # whose hosts died since the last run previews their restart, not "no changes"
                preview = stack.preview(on_output=on_output, diff=True, refresh=True)
                changes = dict(preview.change_summary)
                outputs: dict[str, Any] = {}
            else:
                if operation == "up":
                    # read the real state first: a host stopped or killed by hand since the
                    # last run is started again by this `up`, not only after a `refresh`
                    up = stack.up(on_output=on_output, refresh=True)
                    summary = up.summary
                    outputs = {k: v.value for k, v in up.outputs.items()}
                elif operation == "refresh":
                    summary = stack.refresh(on_output=on_output).summary
                    outputs = {}
                else:
                    summary = stack.destroy(on_output=on_output).summary
                    outputs = {}
                changes = dict(summary.resource_changes or {})
        except auto.CommandError as exc:
            raise EngineError(f"pulumi {operation} of stack '{self.name}' failed:\n{exc}") from exc
        return OpResult(
            operation=operation,
            stack=self.name,
            changes={str(k): int(v) for k, v in changes.items()},
            duration_s=time.monotonic() - start,
            outputs=outputs,
        )

    def outputs(self) -> dict[str, Any]:
        return {k: v.value for k, v in self._stack().outputs().items()}

    def recorded_running(self) -> dict[str, bool]:
        """Per host, whether the stack's state (as of the last up/refresh) says it runs."""
        deployment = self._stack().export_stack().deployment or {}
        found: dict[str, bool] = {}
        for resource in deployment.get("resources", []):
            outputs = resource.get("outputs", {})
            if resource.get("urn", "").endswith("-machine") and "running" in outputs:
                found[outputs["name"]] = bool(outputs["running"])
        return found
