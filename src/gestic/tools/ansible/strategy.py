"""Which Ansible strategy runs the plays: Mitogen by default, the stock `linear` on request.

Stock ansible-core spends ~0.17 CPU-s on the controller per task and host (a module is
templated, copied and started in a fresh interpreter each time); Mitogen keeps one Python
interpreter per host for the whole run and sends modules over it, which measured 6-7x faster
for a no-op converge of the lab. Both run the same plays: the roles avoid what Mitogen does not
support (see docs/converge.md), and the tests converge with both.

ansible-core 2.19 deprecates external strategy plugins (it prints a warning). Should a later
ansible-core remove them, `GESTIC_ANSIBLE_STRATEGY=linear` keeps gestic working unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path

from gestic.errors import AnsibleError

STRATEGY_ENV = "GESTIC_ANSIBLE_STRATEGY"
MITOGEN = "mitogen"
LINEAR = "linear"
#: gestic's names -> the Ansible strategy plugin that implements each
STRATEGIES = {MITOGEN: "mitogen_linear", LINEAR: "linear"}
DEFAULT = MITOGEN


def selected(strategy: str | None = None) -> str:
    """The strategy to use: `strategy`, else GESTIC_ANSIBLE_STRATEGY, else Mitogen."""
    name = strategy or os.environ.get(STRATEGY_ENV) or DEFAULT
    if name not in STRATEGIES:
        source = "strategy" if strategy else STRATEGY_ENV
        raise AnsibleError(
            f"{source}={name!r} is not an Ansible strategy gestic knows: "
            f"use one of {', '.join(sorted(STRATEGIES))}"
        )
    return name


def mitogen_plugins() -> Path:
    """The directory of Mitogen's strategy plugins in this interpreter's site-packages."""
    try:
        import ansible_mitogen  # noqa: PLC0415 - optional until the strategy is chosen
    except ImportError as exc:
        raise AnsibleError(
            f"the Mitogen strategy needs the `mitogen` package ({exc}); install gestic's "
            f"dependencies again (pip install -e .) or set {STRATEGY_ENV}={LINEAR}"
        ) from exc
    return Path(ansible_mitogen.__file__).resolve().parent / "plugins" / "strategy"


def strategy_env(strategy: str | None = None) -> dict[str, str]:
    """The ANSIBLE_* variables that select the strategy for an ansible-playbook run."""
    name = selected(strategy)
    env = {"ANSIBLE_STRATEGY": STRATEGIES[name]}
    if name == MITOGEN:
        env["ANSIBLE_STRATEGY_PLUGINS"] = str(mitogen_plugins())
    return env
