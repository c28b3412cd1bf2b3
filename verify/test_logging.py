"""Log centralisation: every host forwards over TLS; the `logs` host receives, files and rotates.

Roles logging_client (every host) and logging_server (the `logs` group).
"""

from __future__ import annotations

import os
import secrets
import time
from functools import cache
from pathlib import Path

import pytest
import testinfra
from testinfra.host import Host as InfraHost

from gestic.model import Host, Model, load_model
from gestic.model.schema import Logging

TLS_DIR = "/etc/gestic/logging-tls"
FORWARD_CONF = "/etc/rsyslog.d/60-gestic-forward.conf"
ARRIVAL_TIMEOUT_S = 20.0


@cache
def settings() -> Logging:
    """The logging section of the model under test (gestic_logging)."""
    return load_model(Path(os.environ["GESTIC_INVENTORY"]), check_machine=False).logging


def remote_dir() -> str:
    return settings().remote_dir


def port() -> int:
    return settings().port


def log_host(model: Model) -> Host:
    (found,) = [h for h in model.hosts.values() if "logs" in h.groups]
    return found


@pytest.fixture
def logs(request: pytest.FixtureRequest, model: Model) -> InfraHost:
    """The central log host, reached like the host under test."""
    return testinfra.get_host(
        f"ssh://{log_host(model).name}",
        ssh_config=request.config.option.ssh_config,
        sudo=True,
    )


@pytest.fixture
def on_log_host(declared: Host) -> None:
    if "logs" not in declared.groups:
        pytest.skip("only the central log host receives")


# sudo logs every command it runs (to authpriv, which is forwarded too), so no command line
# may contain a token whole: it is sent as two halves joined by the shell, and searched for
# with a pattern that does not match itself ("abc[d]" finds "abcd", not "abc[d]").


def new_token(label: str) -> str:
    return f"gestic-verify-{label}-{secrets.token_hex(6)}"


def halves(token: str) -> tuple[str, str]:
    return token[:-6], token[-6:]


def pattern(token: str) -> str:
    return f"{token[:-1]}[{token[-1]}]"


def found_in(logs: InfraHost, path: str, token: str) -> bool:
    return logs.run("grep -rq -- %s %s", pattern(token), path).rc == 0


def wait_for(logs: InfraHost, path: str, token: str) -> float | None:
    """Seconds until `token` shows up in `path` on the log host, or None after the timeout."""
    start = time.monotonic()
    while time.monotonic() - start < ARRIVAL_TIMEOUT_S:
        if found_in(logs, path, token):
            return time.monotonic() - start
        time.sleep(0.5)
    return None


# -- every host ------------------------------------------------------------------------------------


def test_rsyslog_runs_and_is_enabled(host: InfraHost) -> None:
    rsyslog = host.service("rsyslog")
    assert rsyslog.is_running
    assert rsyslog.is_enabled


def test_forwarding_goes_to_the_log_host_over_tls_with_a_disk_queue(
    host: InfraHost, model: Model
) -> None:
    conf = host.file(FORWARD_CONF)
    assert conf.exists, f"{FORWARD_CONF} is missing"
    text = conf.content_string
    target = log_host(model)
    assert f'target="{target.address}"' in text
    assert f'port="{port()}"' in text
    assert 'StreamDriver="gtls"' in text
    assert 'StreamDriverMode="1"' in text
    assert 'StreamDriverAuthMode="x509/name"' in text
    assert f'StreamDriverPermittedPeers="{target.name}"' in text
    assert 'queue.filename="gestic_forward"' in text  # a file name makes the queue disk-assisted
    assert 'queue.saveOnShutdown="on"' in text
    check = host.run("rsyslogd -N1")
    assert check.rc == 0, f"rsyslog rejects its configuration:\n{check.stderr}"


def test_host_certificate_is_issued_by_the_logging_ca_for_this_host(
    host: InfraHost, declared: Host
) -> None:
    key = host.file(f"{TLS_DIR}/host.key")
    assert key.exists
    assert (key.user, key.mode) == ("root", 0o600)
    verify = host.run("openssl verify -CAfile %s/ca.pem %s/host.pem", TLS_DIR, TLS_DIR)
    assert verify.rc == 0, verify.stdout + verify.stderr
    names = host.check_output("openssl x509 -in %s/host.pem -noout -ext subjectAltName", TLS_DIR)
    assert f"DNS:{declared.name}" in names
    assert f"IP Address:{declared.address}" in names
    pair = host.run(
        'test "$(openssl pkey -in %s/host.key -pubout)" = '
        '"$(openssl x509 -in %s/host.pem -noout -pubkey)"',
        TLS_DIR,
        TLS_DIR,
    )
    assert pair.rc == 0, "the host's key does not match its certificate"


def test_a_message_logged_here_reaches_the_log_host(
    host: InfraHost, declared: Host, logs: InfraHost
) -> None:
    token = new_token(declared.name)
    sent = host.run(
        'logger -p authpriv.notice -t gestic-verify "$(printf %%s%%s %s %s)"', *halves(token)
    )
    assert sent.rc == 0, sent.stderr
    path = f"{remote_dir()}/{declared.name}/authpriv.log"
    took = wait_for(logs, path, token)
    assert took is not None, f"{token} did not reach {path} within {ARRIVAL_TIMEOUT_S:.0f} s"
    received = logs.file(path)
    assert (received.user, received.group, received.mode) == ("root", "adm", 0o640)


# -- the log host ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("on_log_host")
def test_receiver_listens_on_the_tls_port(host: InfraHost) -> None:
    assert host.socket(f"tcp://0.0.0.0:{port()}").is_listening


@pytest.mark.usefixtures("on_log_host")
def test_received_logs_are_kept_per_host_readable_by_adm_only(
    host: InfraHost, model: Model
) -> None:
    root = host.file(remote_dir())
    assert (root.user, root.group, root.mode) == ("root", "adm", 0o750)
    for name in model.hosts:
        sub = host.file(f"{remote_dir()}/{name}")
        assert sub.is_directory, f"no logs received from {name}"
        assert (sub.user, sub.group, sub.mode) == ("root", "adm", 0o750)
    loose = host.run(
        "find %s -type f \\( -perm /o=rwx -o -perm /g=wx -o ! -group adm \\) -print", remote_dir()
    ).stdout.strip()
    assert loose == "", f"files with loose permissions:\n{loose}"


@pytest.mark.usefixtures("on_log_host")
def test_received_logs_rotate_and_expire(host: InfraHost) -> None:
    days = settings().retention_days
    conf = host.file("/etc/logrotate.d/gestic-remote")
    assert conf.exists
    assert f"{remote_dir()}/*/*.log" in conf.content_string
    assert f"rotate {days}" in conf.content_string
    assert f"maxage {days}" in conf.content_string
    debug = host.run("logrotate -d /etc/logrotate.d/gestic-remote")
    assert debug.rc == 0, debug.stderr


@pytest.mark.usefixtures("on_log_host")
def test_receiver_refuses_messages_without_a_client_certificate(
    host: InfraHost, declared: Host
) -> None:
    token, control = new_token("plain"), new_token("control")
    record = "<13>1 - - - - - - %%s%%s\\n"
    tls = "timeout 5 openssl s_client -quiet -connect %s:%s -CAfile %s/ca.pem"
    target = (str(declared.address), str(port()), TLS_DIR)
    # plain TCP, no TLS at all; then TLS without a client certificate: both must be dropped
    host.run(f"printf '{record}' %s %s | nc -w 2 %s %s", *halves(token), *target[:2])
    host.run(f"printf '{record}' %s %s | {tls}", *halves(token), *target)
    # the control: the same record over TLS with this host's certificate is stored
    host.run(
        f"printf '{record}' %s %s | {tls} -cert %s/host.pem -key %s/host.key",
        *halves(control),
        *target,
        TLS_DIR,
        TLS_DIR,
    )
    assert wait_for(host, remote_dir(), control) is not None, "the control message was not stored"
    assert not found_in(host, remote_dir(), token), "an unauthenticated message was stored"
