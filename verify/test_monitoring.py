"""The monitoring stack (role monitoring): node_exporter on every host; Prometheus, the probes
and Alertmanager on the model's monitoring servers, probing every service of the model."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from testinfra.host import Host as InfraHost

from gestic.model import Host, Model

SERVER_UNITS = ("prometheus", "prometheus-alertmanager", "prometheus-blackbox-exporter")


def _servers(model: Model) -> tuple[str, ...]:
    if model.monitoring is None:
        pytest.skip("the environment declares no monitoring")
    return model.monitoring.servers


def _api(host: InfraHost, path: str) -> dict:
    url = f"http://127.0.0.1:9090{quote(path, safe='/?=&')}"
    out = host.check_output("curl --silent --fail --max-time 10 %s", url)
    answer = json.loads(out)
    assert answer["status"] == "success", answer
    return answer["data"]


def test_node_exporter_answers_on_the_hosts_address(
    host: InfraHost, declared: Host, model: Model
) -> None:
    _servers(model)
    assert host.service("prometheus-node-exporter").is_running
    assert host.service("prometheus-node-exporter").is_enabled
    assert host.socket(f"tcp://{declared.address}:9100").is_listening


def test_monitoring_server_daemons_run_only_on_the_servers(
    host: InfraHost, declared: Host, model: Model
) -> None:
    servers = _servers(model)
    for unit in SERVER_UNITS:
        service = host.service(unit)
        if declared.name in servers:
            assert service.is_running, f"{unit} is not running"
            assert service.is_enabled, f"{unit} does not start at boot"
        else:
            assert not service.is_running, f"{unit} runs on {declared.name}, not a server"


def test_every_service_of_the_model_is_probed_and_answers(
    host: InfraHost, declared: Host, model: Model
) -> None:
    if declared.name not in _servers(model):
        pytest.skip("not a monitoring server")
    series = _api(host, "/api/v1/query?query=gestic:service_up")["result"]
    seen = {(s["metric"]["service"], s["metric"]["host"]): s["value"][1] for s in series}
    expected = {(svc.name, h) for svc in model.services.values() for h in svc.hosts}
    assert set(seen) == expected
    down = sorted(k for k, v in seen.items() if v != "1")
    assert not down, f"services that do not answer their probe: {down}"


def test_every_host_is_scraped(host: InfraHost, declared: Host, model: Model) -> None:
    if declared.name not in _servers(model):
        pytest.skip("not a monitoring server")
    series = _api(host, '/api/v1/query?query=up{job="node"}')["result"]
    up = {s["metric"]["host"]: s["value"][1] for s in series}
    assert up == dict.fromkeys(model.hosts, "1")


def test_alert_rules_are_loaded_and_alertmanagers_known(
    host: InfraHost, declared: Host, model: Model
) -> None:
    servers = _servers(model)
    if declared.name not in servers:
        pytest.skip("not a monitoring server")
    groups = _api(host, "/api/v1/rules")["groups"]
    names = {r["name"] for g in groups for r in g["rules"]}
    assert {"GesticServiceDown", "GesticHostDown", "gestic:service_up"} <= names
    active = _api(host, "/api/v1/alertmanagers")["activeAlertmanagers"]
    assert len(active) == len(servers)


def test_sql_probe_credentials_are_root_only(host: InfraHost, declared: Host, model: Model) -> None:
    if declared.name not in _servers(model):
        pytest.skip("not a monitoring server")
    envs = host.check_output("ls /etc/gestic/monitoring/").split()
    probes = [e for e in envs if e.startswith("sql-probe-")]
    assert probes, "no SQL probe configured"
    for name in probes:
        f = host.file(f"/etc/gestic/monitoring/{name}")
        assert (f.user, f.mode) == ("root", 0o600)
