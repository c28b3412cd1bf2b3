"""The work-item adapter that serves gestic's queue to unchanged rpaframework bots.

A robot started by gestic gets ``RPA_WORKITEMS_ADAPTER=gestic.rpa.adapter.GesticAdapter``
and its settings in the environment; `RPA.Robocorp.WorkItems` then reserves, releases and
creates work items through this class instead of Control Room or local files.

This module runs inside the robots' own environment (rpaframework, Robot Framework): it may
import only the standard library and `gestic.rpa.queue_client`. The robot never opens the
queue database: the runner that started it serves the queue (`gestic.rpa.broker`).

Environment (set by `gestic.rpa.runner`):

=============================== ==========================================================
``GESTIC_RPA_BROKER``            the runner's work-item broker (a Unix socket path)
``GESTIC_RPA_BROKER_KEY``        the broker's key for this run (hex)
``GESTIC_RPA_BOT``              the bot's name
``GESTIC_RPA_QUEUE``            the queue this robot takes its input items from
``GESTIC_RPA_WORKER``           this robot's worker name (unique per robot process)
``GESTIC_RPA_LEASE_S``          lease length; renewed every third of it while held
``GESTIC_RPA_BACKOFF_S``        first retry delay after an APPLICATION failure (doubles)
``GESTIC_RPA_BACKOFF_MAX_S``    the longest retry delay
``GESTIC_RPA_OUTPUT_QUEUE``     where output items go (the next step's queue)
``GESTIC_RPA_OUTPUT_FINAL``     "1" when outputs are the bot's final records
``GESTIC_RPA_OUTPUT_ATTEMPTS``  max attempts of the output items
``GESTIC_RPA_OUTPUT_SLA_MIN``   SLA (minutes) of the output items, if they carry one
=============================== ==========================================================
"""

from __future__ import annotations

import base64
import logging
import os
import threading
from typing import Any

from RPA.Robocorp.WorkItems import (  # type: ignore[import-not-found]
    BaseAdapter,
    EmptyQueue,
    State,
)

from gestic.rpa.queue_client import BROKER_ENV, BROKER_KEY_ENV, QueueClient

LOG = logging.getLogger(__name__)
APPLICATION = "APPLICATION"


def _env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None or value == "":
        raise RuntimeError(f"gestic work-item adapter: environment variable {name} is not set")
    return value


class GesticAdapter(BaseAdapter):  # type: ignore[misc]
    """rpaframework work-item adapter backed by `gestic.rpa.queue.WorkQueue`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = QueueClient(_env(BROKER_ENV), bytes.fromhex(_env(BROKER_KEY_ENV)))
        self.bot = _env("GESTIC_RPA_BOT")
        self.input_queue = _env("GESTIC_RPA_QUEUE")
        self.worker = _env("GESTIC_RPA_WORKER")
        self.lease_s = float(_env("GESTIC_RPA_LEASE_S", "60"))
        self.backoff_s = float(_env("GESTIC_RPA_BACKOFF_S", "30"))
        self.backoff_max_s = float(_env("GESTIC_RPA_BACKOFF_MAX_S", "3600"))
        self.output_queue = os.environ.get("GESTIC_RPA_OUTPUT_QUEUE") or f"{self.bot}/output"
        self.output_final = os.environ.get("GESTIC_RPA_OUTPUT_FINAL", "1") == "1"
        self.output_attempts = int(_env("GESTIC_RPA_OUTPUT_ATTEMPTS", "3"))
        sla = os.environ.get("GESTIC_RPA_OUTPUT_SLA_MIN")
        self.output_sla = float(sla) if sla else None
        self._held: dict[int, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, name="gestic-lease", daemon=True)
        self._beat.start()

    def _heartbeat(self) -> None:
        """Renew the leases of held items every third of the lease, while the robot lives."""
        while not self._stop.wait(self.lease_s / 3):
            with self._lock:
                held = dict(self._held)
            for item_id, owner in held.items():
                try:
                    renewed = self.queue.call(
                        "heartbeat", item_id=item_id, owner=owner, lease_s=self.lease_s
                    )
                    if not renewed:
                        LOG.warning("lost the lease of work item %s", item_id)
                except Exception:  # keep beating: one failed renewal is not fatal
                    LOG.exception("could not renew the lease of work item %s", item_id)

    # -- BaseAdapter ----------------------------------------------------------------------

    def reserve_input(self) -> str:
        item = self.queue.call(
            "claim", queue=self.input_queue, lease_s=self.lease_s, worker=self.worker
        )
        if item is None:
            raise EmptyQueue(f"no work items in queue {self.input_queue}")
        with self._lock:
            self._held[item["id"]] = item["lease_owner"]
        LOG.info("reserved work item %s (attempt %s)", item["id"], item["attempts"])
        return str(item["id"])

    def release_input(
        self, item_id: str, state: Any, exception: dict[str, Any] | None = None
    ) -> None:
        key = int(item_id)
        with self._lock:
            owner = self._held.pop(key, None)
        if owner is None:
            raise RuntimeError(f"work item {item_id} is not reserved by this robot")
        if state == State.DONE:
            self.queue.call("complete", item_id=key, owner=owner)
            return
        exc = exception or {}
        self.queue.call(
            "fail",
            item_id=key,
            owner=owner,
            exception_type=str(exc.get("type") or APPLICATION).upper(),
            code=exc.get("code"),
            message=exc.get("message"),
            backoff_s=self.backoff_s,
            backoff_max_s=self.backoff_max_s,
        )

    def create_output(self, parent_id: str, payload: Any = None) -> str:
        return str(
            self.queue.call(
                "create_output",
                parent_id=int(parent_id),
                queue=self.output_queue,
                payload=payload,
                max_attempts=self.output_attempts,
                sla_minutes=self.output_sla,
                final=self.output_final,
            )
        )

    def load_payload(self, item_id: str) -> Any:
        return self.queue.call("load_payload", item_id=int(item_id))

    def save_payload(self, item_id: str, payload: Any) -> None:
        self.queue.call("save_payload", item_id=int(item_id), payload=payload)

    def list_files(self, item_id: str) -> list[str]:
        files: list[str] = self.queue.call("list_files", item_id=int(item_id))
        return files

    def get_file(self, item_id: str, name: str) -> bytes:
        content = self.queue.call("get_file", item_id=int(item_id), name=name)
        return base64.b64decode(content)

    def add_file(self, item_id: str, name: str, *, original_name: str, content: bytes) -> None:
        self.queue.call(
            "add_file",
            item_id=int(item_id),
            name=name,
            original_name=original_name,
            content=base64.b64encode(content).decode("ascii"),
        )

    def remove_file(self, item_id: str, name: str) -> None:
        self.queue.call("remove_file", item_id=int(item_id), name=name)
