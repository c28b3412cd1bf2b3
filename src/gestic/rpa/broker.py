"""The runner's side of the work-item broker: serves the queue to the robots it starts.

Robots used to open the queue database themselves, which cost every robot process the
SQLAlchemy import (about a third of a second, most of gestic's overhead on a short run) and
put the ledger's URL, password included, in every robot's environment. Now the runner holds
the only database connection and answers its robots over a Unix socket in a private (0700)
temporary directory, authenticated with a fresh key per run (`gestic.rpa.queue_client` has
the wire format). The socket lives in the file system, so robots started inside the lab's
network namespace reach it too.

Only the calls the adapter needs are served, each with the arguments it names: a robot can
do nothing through the broker it could not do with its own work items.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import secrets
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection, Listener
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from gestic.errors import LeaseLostError, QueueError
from gestic.rpa.queue import WorkQueue
from gestic.rpa.queue_client import BROKER_ENV, BROKER_KEY_ENV

LOG = logging.getLogger(__name__)
SOCKET_NAME: Final = "queue.sock"


class QueueBroker:
    """Serve `queue` to local robots while the context is open (one thread per robot)."""

    def __init__(self, queue: WorkQueue) -> None:
        self.queue = queue
        self.key = secrets.token_bytes(32)
        self._dir: Path | None = None
        self._listener: Listener | None = None
        self._closing = threading.Event()
        self._threads: list[threading.Thread] = []
        self._calls: dict[str, Callable[..., Any]] = {
            "claim": self._claim,
            "heartbeat": queue.heartbeat,
            "complete": queue.complete,
            "fail": self._fail,
            "create_output": queue.create_output,
            "load_payload": queue.load_payload,
            "save_payload": queue.save_payload,
            "list_files": queue.list_files,
            "get_file": self._get_file,
            "add_file": self._add_file,
            "remove_file": queue.remove_file,
        }

    @property
    def address(self) -> str:
        if self._dir is None:
            raise QueueError("the work-item broker is not running")
        return str(self._dir / SOCKET_NAME)

    def environment(self) -> dict[str, str]:
        """What a robot needs in its environment to reach this broker."""
        return {BROKER_ENV: self.address, BROKER_KEY_ENV: self.key.hex()}

    def __enter__(self) -> QueueBroker:
        # A short path: Unix socket addresses are limited to 107 bytes.
        self._dir = Path(tempfile.mkdtemp(prefix="gestic-rpa-"))  # mode 0700
        self._listener = Listener(self.address, family="AF_UNIX", authkey=self.key)
        accept = threading.Thread(target=self._accept, name="gestic-broker", daemon=True)
        accept.start()
        self._threads.append(accept)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closing.set()
        if self._listener is not None:
            # accept() does not return when its socket is closed from another thread: wake it.
            with socket.socket(socket.AF_UNIX) as wake, contextlib.suppress(OSError):
                wake.connect(self.address)
            self._threads[0].join(timeout=5)
            self._listener.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._closing.is_set():
            try:
                conn = self._listener.accept()  # the HMAC challenge happens in here
            except (OSError, EOFError) as exc:  # AuthenticationError is a ProcessError
                if not self._closing.is_set():
                    LOG.warning("refused a connection to the work-item broker: %s", exc)
                continue
            except Exception as exc:  # a bad key must not stop the broker
                LOG.warning("refused a connection to the work-item broker: %s", exc)
                continue
            if self._closing.is_set():
                conn.close()
                return
            serve = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            serve.start()
            self._threads.append(serve)

    def _serve(self, conn: Connection) -> None:
        with conn:
            while True:
                try:
                    raw = conn.recv_bytes()
                except (OSError, EOFError):
                    return  # the robot ended (or died): its leases run out on their own
                conn.send_bytes(json.dumps(self.answer(raw)).encode())

    def answer(self, raw: bytes) -> dict[str, Any]:
        """The reply to one request (exposed for tests: no socket needed)."""
        try:
            request = json.loads(raw)
            call = self._calls[request["call"]]
            args = request.get("args") or {}
            if not isinstance(args, dict):
                raise TypeError("args must be an object")
        except (ValueError, KeyError, TypeError) as exc:
            return {"error": "request", "message": f"bad request to the work-item broker: {exc}"}
        try:
            return {"ok": call(**args)}
        except LeaseLostError as exc:
            return {"error": "lease_lost", "message": str(exc)}
        except QueueError as exc:
            return {"error": "queue", "message": str(exc)}
        except (TypeError, ValueError) as exc:  # wrong arguments for the call
            return {"error": "request", "message": f"{request['call']}: {exc}"}
        except Exception as exc:  # answer the robot rather than leave it waiting
            LOG.exception("work-item broker: %s failed", request["call"])
            return {"error": "queue", "message": f"{request['call']} failed: {exc}"}

    def _claim(self, queue: str, lease_s: float, worker: str) -> dict[str, Any] | None:
        item = self.queue.claim(queue, lease_s=lease_s, worker=worker)
        if item is None:
            return None
        return {"id": item.id, "lease_owner": item.lease_owner, "attempts": item.attempts}

    def _fail(self, item_id: int, owner: str, **failure: Any) -> None:
        self.queue.fail(item_id, owner, **failure)

    def _get_file(self, item_id: int, name: str) -> str:
        return base64.b64encode(self.queue.get_file(item_id, name)).decode("ascii")

    def _add_file(self, item_id: int, name: str, original_name: str, content: str) -> None:
        data = base64.b64decode(content.encode("ascii"), validate=True)
        self.queue.add_file(item_id, name, original_name=original_name, content=data)
