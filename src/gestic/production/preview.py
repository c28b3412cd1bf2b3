"""`gestic infra preview --stack production`: the real engine on the production program.

The production program (stacks/production) needs the vSphere and AWS provider plugins, in the
versions the installed Python SDKs were generated for. Where a plugin is not installed, the
preview stops before the engine starts, saying which plugin and version is missing and how to
install it (online or from a release archive), instead of the engine's download attempt and
traceback. The state backend is the institution's (PULUMI_BACKEND_URL), never a local default.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from pulumi import automation as auto

from gestic.errors import EngineError
from gestic.tools.pulumi.engine import engine_env, find_engine

PROVIDER_PACKAGES = ("pulumi_vsphere", "pulumi_aws")
"""The Python SDKs of the providers the production program uses."""
STACK = "production"


@dataclass(frozen=True)
class Plugin:
    kind: str  # "resource"
    name: str
    version: str

    @property
    def dir_name(self) -> str:
        return f"{self.kind}-{self.name}-v{self.version}"

    @property
    def binary(self) -> str:
        return f"pulumi-{self.kind}-{self.name}"

    def install_hint(self) -> str:
        archive = f"{self.binary}-v{self.version}-linux-amd64.tar.gz"
        return (
            f"`pulumi plugin install {self.kind} {self.name} {self.version}` (from a machine "
            f"that reaches github.com), or offline `pulumi plugin install {self.kind} "
            f"{self.name} {self.version} --file {archive}`"
        )


def required_plugins(packages: tuple[str, ...] = PROVIDER_PACKAGES) -> list[Plugin]:
    """Each provider SDK's plugin, from its pulumi-plugin.json (the package is not imported:
    pulumi_aws alone takes seconds to import)."""
    plugins = []
    for package in packages:
        spec = find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise EngineError(f"the Python package {package} is not installed (pip install .)")
        meta = Path(next(iter(spec.submodule_search_locations))) / "pulumi-plugin.json"
        data = json.loads(meta.read_text())
        plugins.append(Plugin(kind="resource", name=data["name"], version=data["version"]))
    return plugins


def pulumi_home() -> Path:
    return Path(os.environ.get("PULUMI_HOME") or Path.home() / ".pulumi")


def missing_plugins(plugins: list[Plugin], home: Path | None = None) -> list[Plugin]:
    """The plugins neither installed in PULUMI_HOME nor on PATH (both places the engine uses)."""
    plugins_dir = (home or pulumi_home()) / "plugins"
    missing = []
    for plugin in plugins:
        installed = plugins_dir / plugin.dir_name
        # a download the engine did not finish leaves a `.partial` marker beside the dir
        complete = (installed / plugin.binary).is_file() and not (
            plugins_dir / f"{plugin.dir_name}.partial"
        ).exists()
        if not complete and shutil.which(plugin.binary) is None:
            missing.append(plugin)
    return missing


def check_plugins(home: Path | None = None) -> None:
    """Raise EngineError naming every missing plugin, its version and how to install it."""
    missing = missing_plugins(required_plugins(), home)
    if not missing:
        return
    where = (home or pulumi_home()) / "plugins"
    lines = [f"  - {p.kind} {p.name} v{p.version}: install with {p.install_hint()}"
             for p in missing]  # fmt: skip
    raise EngineError(
        f"the production stack needs Pulumi provider plugins that are not installed (looked in "
        f"{where} and on PATH):\n" + "\n".join(lines)
    )


def preview_production(
    root: Path, *, cache: Path | None = None, on_output: Callable[[str], None] | None = None
) -> dict[str, int]:
    """Preview stacks/production with the policy pack; return the change counts."""
    check_plugins()
    backend = os.environ.get("PULUMI_BACKEND_URL")
    if not backend:
        raise EngineError(
            "PULUMI_BACKEND_URL is not set: the production stack's state lives in the "
            "institution's backend (e.g. s3://… or file:///…); set it before a preview"
        )
    engine = find_engine(cache)
    env = {**engine_env(engine), "PULUMI_BACKEND_URL": backend}
    opts = auto.LocalWorkspaceOptions(
        work_dir=str(root / "stacks" / STACK),
        env_vars=env,
        pulumi_command=auto.PulumiCommand(root=str(engine.parent.parent), skip_version_check=True),
    )
    try:
        stack = auto.create_or_select_stack(
            stack_name=STACK, work_dir=str(root / "stacks" / STACK), opts=opts
        )
        result = stack.preview(diff=True, policy_packs=[str(root / "policy")], on_output=on_output)
    except auto.CommandError as exc:
        raise EngineError(f"preview of the production stack failed: {exc}") from exc
    return {str(k): int(v) for k, v in result.change_summary.items()}
