"""The log review's lines and events: a line of the central log host's files parsed, and the
authentication events (logins, sudo, account changes) `gestic.procedures.logs.review` summarises."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Kind = Literal[
    "login_failed",
    "login_ok",
    "sudo",
    "sudo_denied",
    "account_created",
    "account_changed",
    "account_deleted",
]
KINDS: tuple[Kind, ...] = (
    "login_failed",
    "login_ok",
    "sudo",
    "sudo_denied",
    "account_created",
    "account_changed",
    "account_deleted",
)


_LINE_RE = re.compile(
    r"^(?P<ts>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))"
    r"\s+(?P<hostname>\S+)"
    r"\s+(?P<program>[^\s\[:]+)(?:\[(?P<pid>\d+)\])?:?"
    r"(?:\s(?P<message>.*))?$"
)


@dataclass(frozen=True, kw_only=True)
class LogLine:
    """One line of a central log file."""

    at: datetime
    host: str  # the sender, from the directory the receiver wrote the line into
    hostname: str  # the name the message itself carries
    program: str
    pid: int | None
    message: str
    origin: str  # file:line, for the evidence


def parse_line(text: str, *, host: str, origin: str) -> LogLine | None:
    """Parse one line in Debian's file format; None when it is not such a line."""
    match = _LINE_RE.match(text.rstrip("\n"))
    if match is None:
        return None
    try:
        at = datetime.fromisoformat(match.group("ts"))
    except ValueError:
        return None
    pid = match.group("pid")
    return LogLine(
        at=at,
        host=host,
        hostname=match.group("hostname"),
        program=match.group("program"),
        pid=int(pid) if pid else None,
        message=match.group("message") or "",
        origin=origin,
    )


@dataclass(frozen=True, kw_only=True)
class AuthEvent:
    """An authentication event found in the logs."""

    kind: Kind
    host: str
    at: datetime
    user: str
    source: str = ""  # remote address, for logins
    detail: str = ""
    automation: bool = False  # routine work of an automation account (Ansible, testinfra)
    origin: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "host": self.host,
            "at": self.at.isoformat(),
            "user": self.user,
            "source": self.source,
            "detail": self.detail,
            "automation": self.automation,
            "origin": self.origin,
        }


_SSHD_ACCEPTED = re.compile(
    r"^Accepted (?P<method>\S+) for (?P<user>\S+) from (?P<ip>\S+) port \d+"
)
_SSHD_FAILED = re.compile(
    r"^Failed (?P<method>\S+) for (?P<invalid>invalid user )?(?P<user>.*?) from (?P<ip>\S+) "
    r"port \d+"
)
_SSHD_INVALID = re.compile(r"^Invalid user (?P<user>.*?) from (?P<ip>\S+) port \d+")
_SSHD_NOT_ALLOWED = re.compile(
    r"^User (?P<user>\S+) from (?P<ip>\S+) not allowed because (?P<why>.*)$"
)
_SSHD_CLOSED = re.compile(
    r"^(?:Connection closed by|Disconnected from) (?P<which>authenticating|invalid) user "
    r"(?P<user>.*?) (?P<ip>\S+) port \d+ \[preauth\]"
)
_SUDO = re.compile(r"^\s*(?P<user>\S+) : (?P<rest>.*)$")
_QUOTED = re.compile(r"'(?P<name>[^']+)'")


UNKNOWN_USER = "unknown user"
KEY_REFUSED = "closed before authenticating (key not accepted)"


@dataclass
class _Connection:
    user: str
    ip: str
    detail: str  # why it was refused, if no "Failed" line says it
    failed: bool  # a "Failed <method>" line was counted for it
    line: LogLine


@dataclass
class _Extractor:
    """Turns lines (in time order per host) into events; sshd lines are followed per connection.

    A refused connection is one failed login however many lines it writes: each "Failed
    <method>" line counts (they are attempts), and a connection that closes before
    authenticating without any counts once ("Invalid user", "Connection closed by
    authenticating user" - e.g. a key that is not authorised).
    """

    automation: frozenset[str]
    events: list[AuthEvent] = field(default_factory=list)
    connections: dict[tuple[str, int | None], _Connection] = field(default_factory=dict)

    def add(self, line: LogLine) -> None:
        handler = {
            "sshd": self._sshd,
            "sudo": self._sudo,
            "useradd": self._accounts,
            "usermod": self._accounts,
            "userdel": self._accounts,
            "groupadd": self._accounts,
            "groupdel": self._accounts,
            "groupmod": self._accounts,
            "gpasswd": self._accounts,
            "passwd": self._accounts,
            "chpasswd": self._accounts,
            "chage": self._accounts,
        }.get(line.program)
        if handler is not None:
            handler(line)

    def finish(self) -> list[AuthEvent]:
        for conn in self.connections.values():  # the log ended before the connection closed
            if not conn.failed:
                self._failed(conn.line, conn.user, conn.ip, conn.detail)
        self.connections.clear()
        return self.events

    def _emit(self, line: LogLine, kind: Kind, user: str, **more: Any) -> None:
        self.events.append(
            AuthEvent(kind=kind, host=line.host, at=line.at, user=user, origin=line.origin, **more)
        )

    def _failed(self, line: LogLine, user: str, ip: str, detail: str) -> None:
        self._emit(line, "login_failed", user, source=ip, detail=detail)

    def _sshd(self, line: LogLine) -> None:
        key = (line.host, line.pid)
        msg = line.message
        if m := _SSHD_ACCEPTED.match(msg):
            user = m["user"]
            automated = user in self.automation and m["method"] == "publickey"
            self._emit(
                line, "login_ok", user, source=m["ip"], detail=m["method"], automation=automated
            )
        elif m := _SSHD_FAILED.match(msg):
            why = UNKNOWN_USER if m["invalid"] else ""
            conn = self.connections.setdefault(
                key, _Connection(m["user"], m["ip"], why, False, line)
            )
            conn.failed = True
            self._failed(line, m["user"], m["ip"], m["method"] + (f" ({why})" if why else ""))
        elif m := _SSHD_INVALID.match(msg):
            conn = _Connection(m["user"], m["ip"], UNKNOWN_USER, False, line)
            self.connections.setdefault(key, conn)
        elif m := _SSHD_NOT_ALLOWED.match(msg):
            conn = _Connection(m["user"], m["ip"], f"not allowed: {m['why']}", False, line)
            self.connections.setdefault(key, conn)
        elif m := _SSHD_CLOSED.match(msg):
            closing = self.connections.pop(key) if key in self.connections else None
            if closing is None:
                why = UNKNOWN_USER if m["which"] == "invalid" else KEY_REFUSED
                self._failed(line, m["user"], m["ip"], why)
            elif not closing.failed:
                self._failed(closing.line, closing.user, closing.ip, closing.detail or KEY_REFUSED)

    def _sudo(self, line: LogLine) -> None:
        m = _SUDO.match(line.message)
        if m is None or line.message.lstrip().startswith("pam_"):
            return
        user, rest = m["user"], m["rest"]
        head, sep, command = rest.partition("COMMAND=")
        fields = [f.strip() for f in head.split(" ; ") if f.strip()]
        problems = [f for f in fields if "=" not in f]
        values = dict(f.split("=", 1) for f in fields if "=" in f)
        runas = values.get("USER", "root")
        command = command.strip() if sep else ""
        if problems:
            detail = f"{'; '.join(problems)} -> {runas}: {command}".rstrip(": ")
            self._emit(line, "sudo_denied", user, detail=detail)
            return
        routine = user in self.automation
        self._emit(line, "sudo", user, detail=f"-> {runas}: {command}", automation=routine)

    def _accounts(self, line: LogLine) -> None:
        msg = line.message
        program = line.program
        if "shadow group" in msg or "/etc/group" in msg or "/etc/gshadow" in msg:
            return  # the same change again, for the shadow files
        if program == "useradd" and msg.startswith("new user: "):
            name = re.search(r"name=([^,]+)", msg)
            self._emit(line, "account_created", name[1] if name else "?", detail=msg[10:])
        elif program == "useradd" and msg.startswith("new group: "):
            return  # the user's own group, created with it
        elif program == "userdel" and msg.startswith("delete user "):
            name = _QUOTED.search(msg)
            self._emit(line, "account_deleted", name["name"] if name else "?", detail=msg)
        elif program == "userdel":
            return  # groups removed with the user
        elif program in {"passwd", "chpasswd"} and (
            m := re.search(r"password changed for (\S+)", msg)
        ):
            self._emit(line, "account_changed", m[1], detail=f"{program}: password changed")
        elif program == "chage" and (m := re.search(r"for (\S+)$", msg)):
            self._emit(line, "account_changed", m[1], detail=f"chage: {msg}")
        elif program == "gpasswd" and (m := re.match(r"user (\S+) ", msg)):
            self._emit(line, "account_changed", m[1], detail=f"gpasswd: {msg}")
        elif program in {"groupadd", "groupdel", "groupmod"} and (
            m := re.search(r"(?:name=([^,]+)|'([^']+)')", msg)
        ):
            self._emit(line, "account_changed", f"group {m[1] or m[2]}", detail=f"{program}: {msg}")
        elif (name := _QUOTED.search(msg)) is not None and not msg.startswith("pam_"):
            self._emit(line, "account_changed", name["name"], detail=f"{program}: {msg}")


def extract_events(lines: Iterable[LogLine], *, automation: Iterable[str] = ()) -> list[AuthEvent]:
    """The authentication events in `lines` (any order: they are sorted per host by time)."""
    by_host: dict[str, list[LogLine]] = defaultdict(list)
    for line in lines:
        by_host[line.host].append(line)
    events: list[AuthEvent] = []
    for host in sorted(by_host):
        extractor = _Extractor(automation=frozenset(automation))
        for line in sorted(by_host[host], key=lambda ln: ln.at):
            extractor.add(line)
        events += extractor.finish()
    return sorted(events, key=lambda e: (e.at, e.host))
