"""The periodic log review (Procedimiento Revisión de Logs) of the central log host.

Every host forwards its logs to the `logs` host (roles logging_client/logging_server), which
keeps them as `<remote dir>/<host>/<facility>.log` (rotated as `<facility>.log-YYYYMMDD[.gz]`),
one line per message in Debian's file format::

    2026-11-24T08:15:14.523006+00:00 web-p1 sshd[795]: Failed password for ana from ...

This module fetches the auth and authpriv files over SSH, parses them into authentication
events (failed and successful logins, sudo use and refusals, accounts created, changed and
deleted), and summarises them per host for a period. The directory name, not the host name a
message claims, says which host a line came from: the receiver derives it from the sender's
address. `gestic logs review` writes the result as JSON and an HTML report (Spanish by default).
Its settings are the model's `logging` section (`gestic_logging` in group_vars/all/logging.yml).
"""

from __future__ import annotations

import gzip
import re
import shlex
import subprocess
import tarfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any, Literal

from gestic import reports
from gestic.errors import LogReviewError
from gestic.model.schema import LogReview

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
# files of the central log host that hold authentication events (current and rotated)
AUTH_FILES = re.compile(r"^(auth|authpriv)\.log(-\d{8})?(\.\d+)?(\.gz)?$")

# ---------------------------------------------------------------------------------------------
# The period under review
# ---------------------------------------------------------------------------------------------

_PERIOD_RE = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, kw_only=True)
class Window:
    """The reviewed interval [start, end), in the review's time zone."""

    start: datetime
    end: datetime
    period: str | None = None  # YYYY-MM when the window is a calendar month

    @property
    def label(self) -> str:
        if self.period is not None:
            return self.period
        return f"{self.start:%Y-%m-%d}_{(self.end - timedelta(microseconds=1)):%Y-%m-%d}"

    def __contains__(self, when: datetime) -> bool:
        return self.start <= when < self.end


def _parse_bound(text: str, option: str, tz: tzinfo, *, end: bool) -> datetime:
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            day = date.fromisoformat(text)
            if end:  # a date as --until means "through that day"
                day += timedelta(days=1)
            return datetime.combine(day, time(), tzinfo=tz)
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise LogReviewError(
            f"{option} {text!r}: expected a date (YYYY-MM-DD) or a date and time "
            "(YYYY-MM-DDTHH:MM[:SS][+HH:MM])"
        ) from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)


def make_window(
    *,
    period: str | None,
    since: str | None,
    until: str | None,
    tz: tzinfo,
    now: datetime | None = None,
) -> Window:
    """The window from `--period YYYY-MM` and/or `--since/--until` (which narrow or replace it).

    `--until` given as a date includes that whole day; without a period, `--until` defaults to
    now.
    """
    start: datetime | None = None
    end: datetime | None = None
    if period is not None:
        match = _PERIOD_RE.fullmatch(period)
        if match is None or not 1 <= int(match.group(2)) <= 12:
            raise LogReviewError(f"--period {period!r}: expected a month as YYYY-MM (e.g. 2026-11)")
        year, month = int(match.group(1)), int(match.group(2))
        start = datetime(year, month, 1, tzinfo=tz)
        end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=tz)
    if since is not None:
        start = _parse_bound(since, "--since", tz, end=False)
    if until is not None:
        end = _parse_bound(until, "--until", tz, end=True)
    if start is None:
        raise LogReviewError("give the period to review: --period YYYY-MM, or --since DATE")
    if end is None:
        end = (now or datetime.now(UTC)).astimezone(tz)
    if end <= start:
        raise LogReviewError(
            f"the review window is empty: {start.isoformat()} is not before {end.isoformat()}"
        )
    whole_month = period is not None and since is None and until is None
    return Window(start=start, end=end, period=period if whole_month else None)


# ---------------------------------------------------------------------------------------------
# Lines and events
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# Reading the central logs: a directory tree <host>/<file> (fetched or local)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ReadStats:
    files: int
    lines: int
    unparsed: int
    unparsed_examples: tuple[str, ...] = ()


def _open_text(path: Path) -> Iterator[str]:
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as fh:
            yield from fh
    else:
        with path.open(encoding="utf-8", errors="replace") as fh:
            yield from fh


def read_tree(root: Path) -> tuple[list[LogLine], ReadStats]:
    """Every auth/authpriv line under `root/<host>/`, with counts of what could not be read."""
    if not root.is_dir():
        raise LogReviewError(f"{root}: not a directory of central logs (<host>/auth.log ...)")
    lines: list[LogLine] = []
    files = unparsed = 0
    examples: list[str] = []
    for host_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(host_dir.iterdir()):
            if not (path.is_file() and AUTH_FILES.match(path.name)):
                continue
            files += 1
            rel = f"{host_dir.name}/{path.name}"
            try:
                for number, text in enumerate(_open_text(path), start=1):
                    if not text.strip():
                        continue
                    line = parse_line(text, host=host_dir.name, origin=f"{rel}:{number}")
                    if line is None:
                        unparsed += 1
                        if len(examples) < 5:
                            examples.append(f"{rel}:{number}: {text.strip()[:160]}")
                    else:
                        lines.append(line)
            except (OSError, EOFError, gzip.BadGzipFile) as exc:
                raise LogReviewError(f"{path}: cannot read: {exc}") from exc
    return lines, ReadStats(
        files=files,
        lines=len(lines) + unparsed,
        unparsed=unparsed,
        unparsed_examples=tuple(examples),
    )


def fetch_central_logs(
    *,
    ssh_config: Path,
    host: str,
    remote_dir: str,
    since: datetime,
    dest: Path,
    timeout: float = 300,
) -> Path:
    """Copy the auth/authpriv files written since `since` from the log host into `dest`.

    Runs `find | tar` as root on the log host (the files are 0640 root:adm) through the lab's
    ssh_config; keeps the archive (`central-logs.tar.gz`, the review's evidence) and unpacks it
    into `dest/central/<host>/...`, which it returns.
    """
    stamp = int(since.timestamp())
    script = (
        f"cd {shlex.quote(remote_dir)} && "
        r"find . -mindepth 2 -maxdepth 2 -type f \( -name 'auth.log*' -o -name 'authpriv.log*' \)"
        f" -newermt @{stamp} -print0 | tar --null -T - --warning=no-file-changed -czf -;"
        # rsyslog appends to these files while tar reads them: GNU tar then exits 1 ("file
        # changed as we read it") with a whole archive up to that moment, which is what the
        # review wants; any other failure is 2
        ' status=$?; [ "$status" -eq 1 ] && exit 0; exit "$status"'
    )
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / "central-logs.tar.gz"
    cmd = ["ssh", "-F", str(ssh_config), host, f"sudo -n sh -c {shlex.quote(script)}"]
    try:
        with archive.open("wb") as out:
            proc = subprocess.run(
                cmd, stdout=out, stderr=subprocess.PIPE, timeout=timeout, check=False
            )
    except subprocess.TimeoutExpired as exc:
        raise LogReviewError(
            f"fetching the central logs from {host} took over {timeout:.0f} s"
        ) from exc
    except OSError as exc:
        raise LogReviewError(f"cannot run ssh to fetch the central logs: {exc}") from exc
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()
        raise LogReviewError(
            f"fetching the central logs from {host}:{remote_dir} failed (exit {proc.returncode}): "
            f"{err or 'no message'}"
        )
    target = dest / "central"
    target.mkdir(exist_ok=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(target, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise LogReviewError(
            f"{archive}: not a readable archive of the central logs: {exc}"
        ) from exc
    return target


# ---------------------------------------------------------------------------------------------
# The review
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Review:
    """What the review found in a window."""

    window: Window
    environment: str
    hosts: tuple[str, ...]  # the model's hosts (a host without lines is a finding too)
    events: tuple[AuthEvent, ...]
    stats: ReadStats
    lines_in_window: Mapping[str, int]
    failure_threshold: int
    automation_accounts: tuple[str, ...]
    generated: datetime

    @property
    def all_hosts(self) -> list[str]:
        seen = {e.host for e in self.events} | set(self.lines_in_window)
        return sorted(set(self.hosts) | seen)

    @property
    def silent_hosts(self) -> list[str]:
        """Hosts of the model with no auth line in the window: not forwarding, or down."""
        return [h for h in self.hosts if not self.lines_in_window.get(h)]

    def counts(self) -> dict[str, dict[str, int]]:
        table = {
            h: dict.fromkeys((*KINDS, "login_ok_automation", "sudo_automation"), 0)
            for h in self.all_hosts
        }
        for e in self.events:
            row = table[e.host]
            row[e.kind] += 1
            if e.automation:
                row[f"{e.kind}_automation"] = row.get(f"{e.kind}_automation", 0) + 1
        return table

    def totals(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for row in self.counts().values():
            total.update(row)
        return dict(total)

    def notable(self, kind: Kind) -> list[AuthEvent]:
        """Events of `kind` that are not routine work of an automation account."""
        return [e for e in self.events if e.kind == kind and not e.automation]

    def failure_sources(self) -> list[dict[str, Any]]:
        """Remote addresses with failed logins, most first; `repeated` at the threshold."""
        by_source: dict[str, list[AuthEvent]] = defaultdict(list)
        for e in self.events:
            if e.kind == "login_failed":
                by_source[e.source or "?"].append(e)
        rows = [
            {
                "source": source,
                "failures": len(evs),
                "hosts": sorted({e.host for e in evs}),
                "users": sorted({e.user for e in evs}),
                "first": min(e.at for e in evs).isoformat(),
                "last": max(e.at for e in evs).isoformat(),
                "repeated": len(evs) >= self.failure_threshold,
            }
            for source, evs in by_source.items()
        ]
        return sorted(rows, key=lambda r: (-int(r["failures"]), str(r["source"])))

    def summary(self) -> str:
        t = self.totals()
        return (
            f"{len(self.all_hosts)} hosts: {t.get('login_failed', 0)} failed logins, "
            f"{t.get('login_ok', 0) - t.get('login_ok_automation', 0)} interactive logins, "
            f"{t.get('sudo', 0) - t.get('sudo_automation', 0)} sudo, "
            f"{t.get('sudo_denied', 0)} sudo denied, {t.get('account_created', 0)} accounts "
            f"created, {t.get('account_changed', 0)} changed, {t.get('account_deleted', 0)} "
            f"deleted; {len(self.silent_hosts)} silent"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "review": "Revisión de Logs",
            "environment": self.environment,
            "period": self.window.period,
            "window": {
                "start": self.window.start.isoformat(),
                "end": self.window.end.isoformat(),
                "label": self.window.label,
            },
            "generated_at": self.generated.isoformat(),
            "timezone": str(self.window.start.tzinfo),
            "automation_accounts": list(self.automation_accounts),
            "failure_threshold": self.failure_threshold,
            "read": {
                "files": self.stats.files,
                "lines": self.stats.lines,
                "unparsed": self.stats.unparsed,
                "unparsed_examples": list(self.stats.unparsed_examples),
                "lines_in_window": dict(sorted(self.lines_in_window.items())),
            },
            "totals": self.totals(),
            "hosts": self.counts(),
            "silent_hosts": self.silent_hosts,
            "failure_sources": self.failure_sources(),
            "events": [e.as_dict() for e in self.events],
        }


def review(
    lines: Sequence[LogLine],
    *,
    window: Window,
    stats: ReadStats,
    hosts: Iterable[str],
    settings: LogReview,
    environment: str,
    generated: datetime | None = None,
) -> Review:
    """Review the lines that fall in `window`."""
    inside = [ln for ln in lines if ln.at in window]
    per_host = Counter(ln.host for ln in inside)
    return Review(
        window=window,
        environment=environment,
        hosts=tuple(sorted(hosts)),
        events=tuple(extract_events(inside, automation=settings.automation_accounts)),
        stats=stats,
        lines_in_window=dict(per_host),
        failure_threshold=settings.failure_threshold,
        automation_accounts=settings.automation_accounts,
        generated=generated or datetime.now(UTC),
    )


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


def localise_detail(detail: str, lang: str) -> str:
    """`detail` in `lang`, where gestic worded it (the JSON keeps English); what comes from the
    log line itself stays as logged."""
    t = reports.text("logs", lang)
    words = t["details"]
    if detail in words:
        return str(words[detail])
    if m := re.fullmatch(r"(\S+) \(unknown user\)", detail):
        return str(t["detail_unknown_user"]).format(
            method=words.get(m[1], m[1]), unknown=words[UNKNOWN_USER]
        )
    if detail.startswith("not allowed: "):
        return str(t["detail_not_allowed"]).format(reason=detail.removeprefix("not allowed: "))
    if m := re.fullmatch(r"(passwd|chpasswd): password changed", detail):
        return str(t["detail_password_changed"]).format(command=m[1])
    return detail


def period_title(window: Window, lang: reports.Lang) -> str:
    if window.period is not None:
        year, month = (int(p) for p in window.period.split("-"))
        return reports.month_title(year, month, lang)
    last = window.end - timedelta(microseconds=1)
    return str(reports.text("logs", lang)["range"]).format(
        start=f"{window.start:%Y-%m-%d}", end=f"{last:%Y-%m-%d}"
    )


@dataclass(frozen=True, kw_only=True)
class ReportFiles:
    html: Path
    json: Path
    data: dict[str, Any]


def write_report(result: Review, *, lang: str, out_dir: Path, max_listed: int = 200) -> ReportFiles:
    """Write the review as JSON and HTML (`lang` es or en) into `out_dir`."""
    language = reports.check_lang(lang, LogReviewError)
    tz = result.window.start.tzinfo or UTC
    data = result.as_dict()
    filters = {
        "detail": lambda text: localise_detail(text, language),
        "local": lambda when: when.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"),
        "local_iso": lambda iso: (
            datetime.fromisoformat(iso).astimezone(tz).strftime("%Y-%m-%d %H:%M")
        ),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"revision-logs-{result.window.label}{reports.lang_suffix(language)}"
    html_path = reports.write_html(
        out_dir / f"{stem}.html",
        "logs/review.html.j2",
        filters=filters,
        t=reports.text("logs", language),
        lang=language,
        data=data,
        kinds=KINDS,
        result=result,
        title_period=period_title(result.window, language),
        generated=result.generated.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
        max_listed=max_listed,
    )
    json_path = reports.write_json(out_dir / f"{stem}.json", data)
    return ReportFiles(html=html_path, json=json_path, data=data)
