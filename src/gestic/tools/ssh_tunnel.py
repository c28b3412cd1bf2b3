"""An SSH local port forward through an environment's ssh access, as a context manager.

`forward` runs `ssh -F <ssh_config> -N -L 127.0.0.1:<free port>:<address>:<port> <via>` (its own
connection: no ControlMaster, which would keep the listener in a shared master process, and
no prompts), waits until the local port accepts, yields it, and stops that ssh by its PID when
the body ends. A lab host is reached through the lab's ProxyCommand, another environment's
through its bastion (ProxyJump), exactly as every other tool reaches them. The SSH server of
`via` must let the automation account forward to `address:port` (AllowTcpForwarding,
PermitOpen); a refusal only shows when a connection is made, so `check` may probe the port
(e.g. the other end's protocol) before it is yielded.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from gestic.errors import TunnelError
from gestic.tools.ports import LOCALHOST, free_port

_OPTIONS = {
    "ControlMaster": "no",
    "ControlPath": "none",
    "BatchMode": "yes",
    "ExitOnForwardFailure": "yes",
    "ConnectTimeout": "10",
}
_STOP_TIMEOUT_S = 5.0


def forward_argv(ssh_config: Path, via: str, address: str, port: int, local_port: int) -> list[str]:
    """The ssh command line of the forward (no command: -N)."""
    options = [arg for k, v in _OPTIONS.items() for arg in ("-o", f"{k}={v}")]
    return [
        "ssh", "-F", str(ssh_config), "-N", *options,
        "-L", f"{LOCALHOST}:{local_port}:{address}:{port}", via,
    ]  # fmt: skip


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((LOCALHOST, port), timeout=1):
            return True
    except OSError:
        return False


def _said(log: IO[bytes]) -> str:
    log.seek(0)
    lines = log.read().decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else "no message"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=_STOP_TIMEOUT_S)


@contextlib.contextmanager
def forward(
    ssh_config: Path,
    via: str,
    address: str,
    port: int,
    *,
    timeout: float = 30.0,
    check: Callable[[int], str | None] | None = None,
    ssh: str = "ssh",
) -> Iterator[int]:
    """Forward a free local port to `address:port` through the SSH server of host `via`;
    yield the local port (127.0.0.1). TunnelError when ssh exits, the port does not accept
    within `timeout` s, or `check(port)` returns a complaint. The ssh process is stopped by
    its PID when the body ends, whatever happens."""
    what = f"SSH port forward to {address}:{port} through {via}"
    with tempfile.TemporaryFile() as log:
        local_port = free_port()
        argv = forward_argv(ssh_config, via, address, port, local_port)
        argv[0] = ssh
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        except OSError as exc:
            raise TunnelError(f"cannot open the {what}: cannot run {ssh}: {exc}") from exc
        try:
            deadline = time.monotonic() + timeout
            while not _accepts(local_port):
                if (rc := proc.poll()) is not None:
                    raise TunnelError(
                        f"cannot open the {what} (ssh -F {ssh_config}): ssh exited {rc}: "
                        f"{_said(log)}"
                    )
                if time.monotonic() > deadline:
                    raise TunnelError(
                        f"cannot open the {what} (ssh -F {ssh_config}): local port {local_port} "
                        f"not open after {timeout:g} s: {_said(log)}"
                    )
                time.sleep(0.1)
            if check is not None and (complaint := check(local_port)) is not None:
                raise TunnelError(f"the {what} opened, but {complaint} (ssh said: {_said(log)})")
            yield local_port
        finally:
            _stop(proc)
