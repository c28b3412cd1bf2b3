"""Local TCP ports for the services gestic starts on this machine (throwaway PostgreSQL
clusters, SSH port forwards)."""

from __future__ import annotations

import socket
from typing import Final

LOCALHOST: Final = "127.0.0.1"


def free_port() -> int:
    """A TCP port of 127.0.0.1 nothing listens on now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        return int(sock.getsockname()[1])
