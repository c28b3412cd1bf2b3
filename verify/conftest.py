"""Fixtures for the testinfra checks that `gestic verify` runs against the hosts over SSH."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest
from testinfra.host import Host as InfraHost

from gestic.model import Host, Model, load_model
from gestic.model.controls import (
    CONTROL_PROPERTY,
    DISABLED_PROPERTY,
    DISABLED_VAR,
    disabled_controls,
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "control(id): the baseline control (playbooks/roles/baseline/vars/main.yml) it verifies",
    )


@pytest.fixture(scope="session")
def model() -> Model:
    return load_model(Path(os.environ["GESTIC_INVENTORY"]), check_machine=False)


@pytest.fixture
def declared(host: InfraHost, model: Model) -> Host:
    """The model's declaration of the host under test."""
    name = host.backend.get_hostname()
    return model.hosts[name]


@functools.cache
def _disabled(name: str) -> frozenset[str]:
    """The controls the inventory switches off on the host `name` (read once per host)."""
    return disabled_controls(Path(os.environ["GESTIC_INVENTORY"]), name)


@pytest.fixture(autouse=True)
def _control(request: pytest.FixtureRequest) -> None:
    """A check marked `control(id)`: the id goes into the report; skipped where it is disabled."""
    marker = request.node.get_closest_marker("control")
    if marker is None:
        return
    (control,) = marker.args
    request.node.user_properties.append((CONTROL_PROPERTY, control))
    name = request.getfixturevalue("host").backend.get_hostname()
    if control in _disabled(name):
        request.node.user_properties.append((DISABLED_PROPERTY, DISABLED_VAR))
        pytest.skip(f"{control} disabled on {name} by the inventory ({DISABLED_VAR})")
