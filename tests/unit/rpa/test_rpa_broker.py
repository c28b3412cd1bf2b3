"""The work-item broker: robots reach the queue over the runner's socket, never the database.

A real broker on a real SQLite queue, called from a separate Python process that has only the
gestic modules copied for the robots' adapter on its path (no SQLAlchemy import allowed).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from multiprocessing.connection import Client
from pathlib import Path

import pytest

from gestic.rpa.broker import QueueBroker
from gestic.rpa.manifest import load_bot
from gestic.rpa.queue import BUSINESS, DONE, FAILED, WorkQueue
from gestic.rpa.queue_client import BROKER_ENV, BROKER_KEY_ENV
from gestic.rpa.robots_env import RobotsEnv, adapter_pythonpath
from gestic.rpa.runner import Runner
from gestic.store.ledger import LEDGER_URL_ENV, Ledger

from ...paths import UNIT_DATA


@pytest.fixture
def queue(tmp_path: Path) -> WorkQueue:
    return WorkQueue(f"sqlite:///{tmp_path / 'ledger.db'}")


def _robot_side(pylib: Path, broker: QueueBroker, script: str) -> dict[str, object]:
    """Run `script` in a fresh interpreter with only the adapter's modules of gestic."""
    prologue = textwrap.dedent(
        f"""
        import json, os, sys
        sys.path.insert(0, {str(pylib)!r})
        from gestic.rpa.queue_client import QueueClient
        from gestic.errors import LeaseLostError, QueueError
        key = bytes.fromhex(os.environ[{BROKER_KEY_ENV!r}])
        client = QueueClient(os.environ[{BROKER_ENV!r}], key)
        out = {{}}
        """
    )
    epilogue = "\nout['modules'] = sorted(sys.modules)\nprint(json.dumps(out))\n"
    proc = subprocess.run(
        [sys.executable, "-c", prologue + textwrap.dedent(script) + epilogue],
        env={**os.environ, **broker.environment()},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout)
    return result


def test_a_robot_claims_works_and_releases_items_through_the_broker(
    tmp_path: Path, queue: WorkQueue
) -> None:
    first = queue.create(bot="b", queue="q", payload={"n": 1}, files={"a.txt": b"hola"})
    second = queue.create(bot="b", queue="q", payload={"n": "dos"})
    pylib = adapter_pythonpath(tmp_path / "state")
    with QueueBroker(queue) as broker:
        sock = Path(broker.address)
        assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700
        seen = _robot_side(
            pylib,
            broker,
            """
            a = client.call("claim", queue="q", lease_s=30, worker="w1")
            out["payload"] = client.call("load_payload", item_id=a["id"])
            out["file"] = client.call("get_file", item_id=a["id"], name="a.txt")
            client.call("add_file", item_id=a["id"], name="r.txt", original_name="r.txt",
                        content="bGlzdG8=")
            client.call("create_output", parent_id=a["id"], queue="b/output", payload={"ok": 1},
                        max_attempts=3, sla_minutes=None, final=True)
            client.call("complete", item_id=a["id"], owner=a["lease_owner"])
            try:
                client.call("complete", item_id=a["id"], owner=a["lease_owner"])
            except LeaseLostError as exc:
                out["twice"] = str(exc)
            b = client.call("claim", queue="q", lease_s=30, worker="w1")
            client.call("fail", item_id=b["id"], owner=b["lease_owner"], exception_type="BUSINESS",
                        code="PAYLOAD_INVALIDO", message="n no es un numero")
            out["empty"] = client.call("claim", queue="q", lease_s=30, worker="w1")
            try:
                client.call("drop_tables")
            except QueueError as exc:
                out["refused"] = str(exc)
            """,
        )
    assert not sock.parent.exists()  # the socket's directory goes with the broker
    assert seen["payload"] == {"n": 1}
    assert seen["file"] == "aG9sYQ=="  # base64 of b"hola"
    assert seen["empty"] is None
    assert "twice" in seen
    assert "bad request" in str(seen["refused"])
    tops = {str(m).split(".")[0] for m in seen["modules"]}  # type: ignore[attr-defined]
    assert not tops & {"sqlalchemy", "pydantic", "jinja2", "rich", "click", "yaml", "croniter"}
    assert queue.get(first).state == DONE
    assert queue.get_file(first, "r.txt") == b"listo"
    failed = queue.get(second)
    assert (failed.state, failed.exception_type, failed.exception_code) == (
        FAILED,
        BUSINESS,
        "PAYLOAD_INVALIDO",
    )


def test_a_wrong_key_is_refused_and_the_broker_keeps_serving(queue: WorkQueue) -> None:
    queue.create(bot="b", queue="q")
    with QueueBroker(queue) as broker:
        with pytest.raises(Exception, match="digest"):
            Client(broker.address, family="AF_UNIX", authkey=b"not the key")
        with Client(broker.address, family="AF_UNIX", authkey=broker.key) as conn:
            conn.send_bytes(
                json.dumps(
                    {"call": "claim", "args": {"queue": "q", "lease_s": 5, "worker": "w"}}
                ).encode()
            )
            answer = json.loads(conn.recv_bytes())
            conn.send_bytes(b"not json")
            bad = json.loads(conn.recv_bytes())
            conn.send_bytes(json.dumps({"call": "claim", "args": {"queue": "q"}}).encode())
            missing = json.loads(conn.recv_bytes())
    assert answer["ok"]["attempts"] == 1
    assert bad["error"] == "request"
    assert missing["error"] == "request"
    assert "lease_s" in missing["message"]


def test_an_unreachable_broker_is_a_clear_queue_error(tmp_path: Path) -> None:
    pylib = adapter_pythonpath(tmp_path / "state")
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(pylib)!r})
        from gestic.rpa.queue_client import QueueClient
        from gestic.errors import QueueError
        try:
            QueueClient({str(tmp_path / "gone.sock")!r}, b"k")
        except QueueError as exc:
            print(exc)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=60
    )
    assert "cannot reach gestic's work-item broker" in proc.stdout, proc.stderr


def test_robots_get_the_broker_never_the_ledger_url(
    tmp_path: Path, queue: WorkQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_url = "postgresql+psycopg://gestic:s3cret@db/ledger"
    monkeypatch.setenv(LEDGER_URL_ENV, secret_url)
    bot = load_bot(UNIT_DATA / "rpa" / "robots" / "noop")
    step = bot.manifest.steps[0]
    runner = Runner(
        queue=queue,
        ledger=Ledger(f"sqlite:///{tmp_path / 'runs.db'}"),
        env=RobotsEnv(path=tmp_path / "env"),
        state=tmp_path / "state",
        artifacts=tmp_path / "artifacts",
    )
    with QueueBroker(queue) as broker:
        env = runner.robot_env(bot, step, "w1", tmp_path / "out", broker)
        assert env[BROKER_ENV] == broker.address
        assert bytes.fromhex(env[BROKER_KEY_ENV]) == broker.key
    assert LEDGER_URL_ENV not in env
    assert not any("s3cret" in value for value in env.values())
