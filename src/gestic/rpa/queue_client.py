"""The robots' side of the work-item broker: calls on gestic's queue over a local socket.

Runs inside the robots' own environment, so it imports only the standard library (and the
gestic error classes): no database driver, no SQLAlchemy, and no ledger credentials in the
robot's environment. The runner side is `gestic.rpa.broker`.

Wire format: one authenticated `multiprocessing.connection` per robot (HMAC challenge with a
per-run key), each message a JSON object, never a pickle: ``{"call": name, "args": {...}}``
answered by ``{"ok": result}`` or ``{"error": kind, "message": text}``. Bytes travel as base64.
"""

from __future__ import annotations

import json
import threading
from multiprocessing.connection import Client, Connection
from typing import Any, Final

from gestic.errors import LeaseLostError, QueueError

BROKER_ENV: Final = "GESTIC_RPA_BROKER"
BROKER_KEY_ENV: Final = "GESTIC_RPA_BROKER_KEY"
#: Error kinds the broker answers with, and the exception each becomes here.
ERRORS: Final[dict[str, type[QueueError]]] = {"lease_lost": LeaseLostError, "queue": QueueError}


class QueueClient:
    """One robot's connection to the broker; safe to share between the robot's threads."""

    def __init__(self, address: str, key: bytes) -> None:
        try:
            self._conn: Connection = Client(address, family="AF_UNIX", authkey=key)
        except (OSError, EOFError) as exc:
            raise QueueError(f"cannot reach gestic's work-item broker at {address}: {exc}") from exc
        self._lock = threading.Lock()

    def call(self, name: str, /, **args: Any) -> Any:
        request = json.dumps({"call": name, "args": args}).encode()
        with self._lock:  # one request/answer at a time on the connection
            try:
                self._conn.send_bytes(request)
                answer = json.loads(self._conn.recv_bytes())
            except (OSError, EOFError) as exc:
                message = f"lost the connection to gestic's work-item broker: {exc}"
                raise QueueError(message) from exc
        if "error" in answer:
            raise ERRORS.get(answer["error"], QueueError)(answer["message"])
        return answer["ok"]

    def close(self) -> None:
        with self._lock:
            self._conn.close()
