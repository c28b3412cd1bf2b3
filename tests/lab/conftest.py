"""The session's lab: its own name, state dir and ledger; up and converged once."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from gestic.environments.context import Context

from ..conftest import REUSE_LAB, in_ci
from ..paths import LAB_INVENTORY, ROOT
from .labkit import Lab, converge


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One real lab for the whole session: up and converged, destroyed at the end.

    `test_lab_integration.py::test_destroy_leaves_nothing_behind` runs last and checks nothing
    is left. Tests that need a changed state converge only the roles they touch (tags, limit)
    and put back what they changed.
    """
    if os.environ.get(REUSE_LAB) == "1":
        yield _reused_lab()
        return
    state = tmp_path_factory.mktemp("lab-state")
    env = {
        "GESTIC_STATE_DIR": str(state),
        "GESTIC_LEDGER_URL": f"sqlite:///{state / 'ledger.db'}",
        "GESTIC_LAB_NAME": "t" + secrets.token_hex(3)[:5],
        "GESTIC_INVENTORY": str(LAB_INVENTORY),
        "GESTIC_ROOT": str(ROOT),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    ctx = Context.from_env()
    try:
        ctx.lab_stack.run("up")
        yield Lab(ctx=ctx, first_converge=converge(ctx))
    finally:
        try:
            ctx.lab_stack.run("destroy")
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _reused_lab() -> Lab:
    if in_ci():
        pytest.fail(f"{REUSE_LAB} is for developers' labs; CI always builds its own lab")
    ctx = Context.from_env()
    os.environ.setdefault("GESTIC_LEDGER_URL", f"sqlite:///{ctx.state / 'ledger.db'}")
    return Lab(ctx=ctx, first_converge=converge(ctx))
