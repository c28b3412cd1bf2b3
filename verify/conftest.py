"""Fixtures for the testinfra checks that `gestic verify` runs against the hosts over SSH."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from testinfra.host import Host as InfraHost

from gestic.model import Host, Model, load_model


@pytest.fixture(scope="session")
def model() -> Model:
    return load_model(Path(os.environ["GESTIC_INVENTORY"]), check_machine=False)


@pytest.fixture
def declared(host: InfraHost, model: Model) -> Host:
    """The model's declaration of the host under test."""
    name = host.backend.get_hostname()
    return model.hosts[name]
