"""The log review: parsing real lines captured from the lab, events, windows, settings, report.

tests/unit/data/log-<host>-<facility>.txt are lines the lab's central log host wrote into
/var/log/remote/<host>/<facility>.log while these were done on purpose (2026-11-24, UTC):
  web-p1: a login as `gestic` with a key it does not accept and one as the unknown `mallory`
          (from the router namespace); on a password-enabled sshd: wrong passwords for `ana`,
          `root` and the unknown `admin`, then `ana` logging in; groupadd auditores, useradd
          ana (+ group), chpasswd, chage, usermod -aG sudo, passwd -l/-u, usermod -s; useradd
          beto, chpasswd; sudo by ana with a wrong password, then `id`; sudo by beto (not in
          sudoers); sudo -n by ana without a password; usermod -L beto, userdel beto, gpasswd
          -d ana auditores, groupdel auditores, userdel ana.
  db-a1:  wrong key for `gestic`, unknown `oracle`, wrong key for `postgres`; useradd -r
          respaldo (through the automation account's sudo).
  web-a1: only routine work of the automation account (an Ansible converge).
  db-p1:  after the baseline role (sshd LogLevel VERBOSE, AllowGroups): wrong key for `gestic`,
          unknown `contratista`, `postgres` and `root` (not in the allowed groups); a sudo
          of the automation account as postgres; the automation account's own session.
"""

from __future__ import annotations

import gzip
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from gestic.cli.main import cli
from gestic.errors import LogReviewError, ModelError
from gestic.model import load_model
from gestic.model.schema import LogReview
from gestic.procedures.logs.events import extract_events, parse_line
from gestic.procedures.logs.fetch import ReadStats, read_tree
from gestic.procedures.logs.review import localise_detail, make_window, review, write_report
from gestic.store.ledger import Ledger

from ....paths import LAB_INVENTORY, UNIT_DATA

DATA = UNIT_DATA
BOGOTA = ZoneInfo("America/Bogota")
MODEL_HOSTS = ("bkp-a1", "db-a1", "db-p1", "svc-p1", "web-a1", "web-p1")
SETTINGS = LogReview()


def central_tree(root: Path, *, gzip_rotated: bool = False) -> Path:
    """Lay the captured files out like the log host does: <host>/<facility>.log."""
    for src in sorted(DATA.glob("log-*-*.txt")):
        _, rest = src.stem.split("-", 1)
        host, facility = rest.rsplit("-", 1)
        target = root / host
        target.mkdir(parents=True, exist_ok=True)
        if gzip_rotated:
            with gzip.open(target / f"{facility}.log-20261125.gz", "wt", encoding="utf-8") as fh:
                fh.write(src.read_text(encoding="utf-8"))
        else:
            shutil.copy(src, target / f"{facility}.log")
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return central_tree(tmp_path / "central")


def november() -> tuple[datetime, datetime]:
    return datetime(2026, 11, 1, tzinfo=BOGOTA), datetime(2026, 12, 1, tzinfo=BOGOTA)


def run_review(tree: Path, **window: str | None):
    lines, stats = read_tree(tree)
    args = {"period": "2026-11", "since": None, "until": None} | window
    win = make_window(tz=BOGOTA, **args)
    return review(
        lines, window=win, stats=stats, hosts=MODEL_HOSTS, settings=SETTINGS, environment="lab"
    )


# -- lines ---------------------------------------------------------------------------------------


def test_parse_line_reads_time_host_program_pid_and_message() -> None:
    text = (
        "2026-11-24T08:15:14.523006+00:00 web-p1 sshd[795]: Failed password for ana from "
        "10.213.1.1 port 45738 ssh2\n"
    )
    line = parse_line(text, host="web-p1", origin="web-p1/auth.log:21")
    assert line is not None
    assert line.at == datetime(2026, 11, 24, 8, 15, 14, 523006, tzinfo=UTC)
    assert (line.hostname, line.program, line.pid) == ("web-p1", "sshd", 795)
    assert line.message == "Failed password for ana from 10.213.1.1 port 45738 ssh2"


def test_parse_line_without_pid_keeps_the_message_leading_spaces() -> None:
    text = (
        "2026-11-24T08:15:05.216832+00:00 web-p1 sudo:      ana : PWD=/tmp ; USER=root ; "
        "COMMAND=/usr/bin/id"
    )
    line = parse_line(text, host="web-p1", origin="x:1")
    assert line is not None
    assert (line.program, line.pid) == ("sudo", None)
    assert line.message.strip().startswith("ana : PWD=/tmp")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Nov 24 08:15:14 web-p1 sshd[795]: Failed password for ana",  # no year: not ours
        "2026-11-24 web-p1 sshd[795]: no time",
        "2026-13-45T99:00:00+00:00 web-p1 sshd[1]: impossible date",
    ],
)
def test_parse_line_rejects_other_formats(text: str) -> None:
    assert parse_line(text, host="h", origin="x:1") is None


# -- events from the captured lines ------------------------------------------------------------


def test_counts_per_host_match_what_was_done_in_the_lab(tree: Path) -> None:
    counts = run_review(tree).counts()
    web = counts["web-p1"]
    assert web["login_failed"] == 5
    assert (web["login_ok"], web["login_ok_automation"]) == (3, 2)
    assert web["sudo"] - web["sudo_automation"] == 1  # ana: id
    assert web["sudo_denied"] == 3
    assert (web["account_created"], web["account_deleted"]) == (2, 2)
    assert web["account_changed"] == 12
    db = counts["db-a1"]
    assert db["login_failed"] == 3
    assert db["account_created"] == 1
    assert db["sudo"] == db["sudo_automation"] == 2
    quiet = counts["web-a1"]
    assert quiet["login_failed"] == 0
    assert quiet["login_ok"] == quiet["login_ok_automation"] == 1
    assert quiet["sudo"] == quiet["sudo_automation"] > 10


def test_failed_logins_name_user_source_and_reason(tree: Path) -> None:
    result = run_review(tree)
    failed = {(e.host, e.user): e for e in result.notable("login_failed")}
    assert set(failed) == {
        ("web-p1", "gestic"),
        ("web-p1", "mallory"),
        ("web-p1", "ana"),
        ("web-p1", "root"),
        ("web-p1", "admin"),
        ("db-a1", "gestic"),
        ("db-a1", "oracle"),
        ("db-a1", "postgres"),
        ("db-p1", "gestic"),
        ("db-p1", "contratista"),
        ("db-p1", "postgres"),
        ("db-p1", "root"),
    }
    assert failed[("web-p1", "gestic")].detail.startswith("closed before authenticating")
    assert failed[("web-p1", "mallory")].detail == "unknown user"
    assert failed[("web-p1", "admin")].detail == "password (unknown user)"
    assert failed[("web-p1", "ana")].detail == "password"
    assert {e.source for e in failed.values()} == {"10.213.1.1", "10.213.2.1"}
    assert failed[("web-p1", "ana")].origin.startswith("web-p1/auth.log:")
    # sshd at LogLevel VERBOSE (baseline) names the refused key; AllowGroups refusals say why
    assert failed[("db-p1", "gestic")].detail == "publickey"
    assert failed[("db-p1", "contratista")].detail == "unknown user"
    not_allowed = "not allowed: none of user's groups are listed in AllowGroups"
    assert failed[("db-p1", "postgres")].detail == not_allowed
    assert failed[("db-p1", "root")].detail == not_allowed


def test_a_refused_connection_counts_once_but_each_wrong_password_counts() -> None:
    stamp = "2026-11-24T08:15:{}.000000+00:00 web-p1 sshd[{}]: {}"
    lines = [
        stamp.format(18, 799, "Invalid user admin from 10.213.1.1 port 45840"),
        stamp.format(20, 799, "Failed password for invalid user admin from 10.213.1.1 port 45840"),
        stamp.format(21, 799, "Failed password for invalid user admin from 10.213.1.1 port 45840"),
        stamp.format(
            22, 799, "Connection closed by invalid user admin 10.213.1.1 port 45840 [preauth]"
        ),
        stamp.format(
            36,
            800,
            "Connection closed by authenticating user gestic 10.213.2.1 port 37728 [preauth]",
        ),
        stamp.format(37, 801, "Invalid user oracle from 10.213.2.1 port 36560"),
    ]
    parsed = [parse_line(t, host="web-p1", origin=f"f:{i}") for i, t in enumerate(lines)]
    events = extract_events([p for p in parsed if p is not None])
    assert [(e.user, e.detail) for e in events] == [
        ("admin", "password (unknown user)"),
        ("admin", "password (unknown user)"),
        ("gestic", "closed before authenticating (key not accepted)"),
        ("oracle", "unknown user"),  # the log ends before the connection closes
    ]


def test_sudo_lines_give_the_command_target_and_refusal(tree: Path) -> None:
    result = run_review(tree)
    (used,) = result.notable("sudo")
    assert (used.user, used.detail) == ("ana", "-> root: /usr/bin/id")
    denied = {(e.user, e.detail) for e in result.notable("sudo_denied")}
    assert denied == {
        ("ana", "1 incorrect password attempt -> root: /usr/bin/true"),
        ("beto", "user NOT in sudoers -> root: /usr/bin/cat /etc/shadow"),
        ("ana", "a password is required -> root: /usr/bin/true"),
    }
    routine = [e for e in result.events if e.kind == "sudo" and e.automation]
    assert all(e.user == "gestic" for e in routine)
    assert any("COMMAND" not in e.detail and "BECOME-SUCCESS" in e.detail for e in routine)


def test_account_events_created_changed_deleted(tree: Path) -> None:
    result = run_review(tree)
    created = [(e.host, e.user) for e in result.notable("account_created")]
    assert created == [("web-p1", "ana"), ("web-p1", "beto"), ("db-a1", "respaldo")]
    deleted = [(e.host, e.user) for e in result.notable("account_deleted")]
    assert deleted == [("web-p1", "beto"), ("web-p1", "ana")]
    changes = [e.detail for e in result.notable("account_changed")]
    assert "usermod: add 'ana' to group 'sudo'" in changes
    assert "chpasswd: password changed" in changes
    assert "chage: changed password expiry for ana" in changes
    assert "usermod: lock user 'beto' password" in changes
    assert "groupadd: new group: name=auditores, GID=1001" in changes
    assert not any("shadow group" in d for d in changes)


def test_routine_logins_of_the_automation_account_are_not_listed(tree: Path) -> None:
    result = run_review(tree)
    logins = result.notable("login_ok")
    assert [(e.host, e.user, e.detail) for e in logins] == [("web-p1", "ana", "password")]
    other = LogReview(automation_accounts=())
    lines, stats = read_tree(tree)
    everyone = review(
        lines,
        window=result.window,
        stats=stats,
        hosts=MODEL_HOSTS,
        settings=other,
        environment="lab",
    )
    assert len(everyone.notable("login_ok")) == 6  # web-p1 3, db-a1, db-p1, web-a1 1 each


def test_repeated_failures_from_one_source_are_singled_out(tree: Path) -> None:
    sources = {s["source"]: s for s in run_review(tree).failure_sources()}
    assert sources["10.213.1.1"]["failures"] == 9
    assert sources["10.213.1.1"]["hosts"] == ["db-p1", "web-p1"]
    assert sources["10.213.1.1"]["repeated"] is True
    assert sources["10.213.2.1"]["failures"] == 3
    assert sources["10.213.2.1"]["repeated"] is False
    assert sources["10.213.2.1"]["users"] == ["gestic", "oracle", "postgres"]


def test_hosts_without_lines_in_the_window_are_reported_silent(tree: Path) -> None:
    result = run_review(tree)
    assert result.silent_hosts == ["bkp-a1", "svc-p1"]
    october = run_review(tree, period="2026-10")
    assert october.silent_hosts == list(MODEL_HOSTS)
    assert october.events == ()


def test_the_window_filters_events(tree: Path) -> None:
    result = run_review(tree, since="2026-11-24T03:15:20-05:00", until="2026-11-24T03:15:30-05:00")
    assert [(e.kind, e.user) for e in result.events if not e.automation] == [
        ("login_failed", "admin"),
        ("login_ok", "ana"),
        ("sudo_denied", "ana"),
        ("account_changed", "beto"),
        ("account_deleted", "beto"),
        ("account_changed", "ana"),
        ("account_changed", "group auditores"),
    ]


def test_rotated_compressed_files_are_read_and_other_files_ignored(tmp_path: Path) -> None:
    plain = run_review(central_tree(tmp_path / "plain"))
    rotated_root = central_tree(tmp_path / "rotated", gzip_rotated=True)
    (rotated_root / "web-p1" / "syslog.log").write_text("not an auth file\n")
    rotated = run_review(rotated_root)
    assert rotated.counts() == plain.counts()
    assert rotated.stats.files == plain.stats.files == 8


def test_unrecognised_lines_are_counted_with_examples(tree: Path) -> None:
    with (tree / "web-p1" / "auth.log").open("a") as fh:
        fh.write("garbage that is no syslog line\n")
    result = run_review(tree)
    assert result.stats.unparsed == 1
    assert result.stats.unparsed_examples[0].startswith("web-p1/auth.log:21: garbage")


def test_read_tree_refuses_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(LogReviewError, match="not a directory of central logs"):
        read_tree(tmp_path / "nowhere")


# -- windows -------------------------------------------------------------------------------------


def test_a_period_is_the_calendar_month_in_the_review_time_zone() -> None:
    window = make_window(period="2026-11", since=None, until=None, tz=BOGOTA)
    assert (window.start, window.end) == november()
    assert window.label == "2026-11"
    december = make_window(period="2026-12", since=None, until=None, tz=BOGOTA)
    assert december.end == datetime(2027, 1, 1, tzinfo=BOGOTA)
    # 04:59 UTC on Nov 1st is still October in Bogotá
    assert datetime(2026, 11, 1, 4, 59, tzinfo=UTC) not in window
    assert datetime(2026, 11, 1, 5, 0, tzinfo=UTC) in window


def test_since_and_until_narrow_the_period_and_until_dates_are_inclusive() -> None:
    window = make_window(period="2026-11", since="2026-11-10", until="2026-11-15", tz=BOGOTA)
    assert window.start == datetime(2026, 11, 10, tzinfo=BOGOTA)
    assert window.end == datetime(2026, 11, 16, tzinfo=BOGOTA)
    assert window.period is None
    assert window.label == "2026-11-10_2026-11-15"


def test_since_alone_runs_until_now() -> None:
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    window = make_window(period=None, since="2026-11-20", until=None, tz=BOGOTA, now=now)
    assert window.end == now
    assert window.end - window.start == timedelta(days=4, hours=7)  # 12:00 UTC is 07:00 in Bogotá


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"period": "2026-13"}, "expected a month as YYYY-MM"),
        ({"period": "noviembre"}, "expected a month as YYYY-MM"),
        ({"since": "yesterday"}, "--since 'yesterday'"),
        ({"period": "2026-11", "until": "2026-11-31"}, "--until '2026-11-31'"),
        ({}, "give the period to review"),
        ({"period": "2026-11", "since": "2026-11-20", "until": "2026-11-10"}, "window is empty"),
    ],
)
def test_bad_windows_are_refused_clearly(args: dict[str, str], message: str) -> None:
    full = {"period": None, "since": None, "until": None} | args
    with pytest.raises(LogReviewError, match=message):
        make_window(tz=BOGOTA, **full)


# -- settings ------------------------------------------------------------------------------------


def test_settings_come_from_the_inventory() -> None:
    settings = load_model(LAB_INVENTORY, check_machine=False).logging
    assert settings.review.timezone == "America/Bogota"
    assert settings.review.automation_accounts == ("gestic",)
    assert settings.remote_dir == "/var/log/remote"
    assert settings.review.failure_threshold >= 1
    assert (settings.port, settings.retention_days, settings.queue_max_disk) == (6514, 90, "256m")
    production = load_model(LAB_INVENTORY.parent / "production", check_machine=False).logging
    assert (production.retention_days, production.queue_max_disk) == (365, "2g")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "failure_threshold: 5",
            "failure_threshold: 0",
            "gestic_logging.review.failure_threshold: Input should be greater than or equal to 1",
        ),
        (
            "timezone: America/Bogota",
            "timezone: Mars/Olympus",
            "gestic_logging.review.timezone: Value error, unknown time zone 'Mars/Olympus'",
        ),
        (
            "    automation_accounts: [gestic]",
            "    automation_accounts: [gestic]\n    colour: red",
            "gestic_logging.review.colour: Extra inputs are not permitted",
        ),
        (
            "remote_dir: /var/log/remote",
            "remote_dir: relative/dir",
            "gestic_logging.remote_dir: String should match pattern",
        ),
        ("port: 6514", "port: 0", "gestic_logging.port: Input should be greater than or equal"),
        ("queue_max_disk: 256m", "queue_max_disk: lots", "gestic_logging.queue_max_disk: String"),
        ("retention_days: 90", "retention_days: many", "gestic_logging.retention_days: Input"),
    ],
)
def test_bad_settings_name_file_key_and_line(
    lab_inventory: Path, old: str, new: str, message: str
) -> None:
    """The logging settings are a section of the model: a bad value stops its load, located."""
    file = lab_inventory / "group_vars" / "all" / "logging.yml"
    text = file.read_text()
    assert old in text
    file.write_text(text.replace(old, new, 1))
    with pytest.raises(ModelError) as err:
        load_model(lab_inventory, check_machine=False)
    first = new.splitlines()[-1].strip()  # the line the bad value is on
    line = next(i for i, t in enumerate(file.read_text().splitlines(), 1) if first in t)
    (problem,) = err.value.problems
    assert problem.startswith(f"{file}:{line}: {message}"), problem


def test_the_old_setting_names_are_refused_with_the_new_ones(lab_inventory: Path) -> None:
    file = lab_inventory / "group_vars" / "all" / "logging.yml"
    file.write_text("logging_port: 6514\nlogging_review:\n  failure_threshold: 5\n")
    with pytest.raises(ModelError) as err:
        load_model(lab_inventory, check_machine=False)
    assert err.value.problems == [
        f"{file}:1: logging_port: 'logging_port' is now 'gestic_logging.port' "
        "(docs/environments.md)",
        f"{file}:2: logging_review: 'logging_review' is now 'gestic_logging.review' "
        "(docs/environments.md)",
    ]


# -- report --------------------------------------------------------------------------------------


def test_report_in_spanish_and_english(tree: Path, tmp_path: Path) -> None:
    result = run_review(tree)
    es = write_report(result, lang="es", out_dir=tmp_path / "out")
    en = write_report(result, lang="en", out_dir=tmp_path / "out")
    assert es.html.name == "revision-logs-2026-11.html"
    assert en.html.name == "revision-logs-2026-11-en.html"
    html = es.html.read_text()
    assert "Revisión periódica de logs" in html
    assert "noviembre de 2026" in html
    assert "Inicios de sesión fallidos" in html
    assert "mallory" in html
    assert "web-p1/auth.log:" in html
    assert "BECOME-SUCCESS" not in html  # routine automation is counted, not listed
    assert "usuario inexistente" in html
    english = en.html.read_text()
    assert "Failed logins" in english
    assert "unknown user" in english
    data = json.loads(es.json.read_text())
    assert data["totals"]["login_failed"] == 12
    assert data["hosts"]["db-a1"]["login_failed"] == 3
    assert data["silent_hosts"] == ["bkp-a1", "svc-p1"]
    assert len(data["events"]) == len(result.events)


@pytest.mark.parametrize(
    ("detail", "spanish"),
    [
        (
            "closed before authenticating (key not accepted)",
            "cerrada antes de autenticarse (llave no aceptada)",
        ),
        ("password (unknown user)", "contraseña (usuario inexistente)"),
        (
            "not allowed: none of user's groups are listed in AllowGroups",
            "no permitido: none of user's groups are listed in AllowGroups",
        ),
        ("chpasswd: password changed", "chpasswd: contraseña cambiada"),
        # what the log line says stays as logged
        (
            "1 incorrect password attempt -> root: /usr/bin/true",
            "1 incorrect password attempt -> root: /usr/bin/true",
        ),
        ("usermod: lock user 'beto' password", "usermod: lock user 'beto' password"),
    ],
)
def test_the_spanish_report_words_gestics_own_details_in_spanish(detail: str, spanish: str) -> None:
    assert localise_detail(detail, "es") == spanish
    assert localise_detail(detail, "en") == detail


def test_report_escapes_what_the_logs_contain(tmp_path: Path) -> None:
    text = (
        "2026-11-24T08:15:18.462214+00:00 web-p1 sshd[799]: Invalid user <script>x</script> "
        "from 10.213.1.1 port 45840"
    )
    line = parse_line(text, host="web-p1", origin="web-p1/auth.log:1")
    assert line is not None
    window = make_window(period="2026-11", since=None, until=None, tz=BOGOTA)
    result = review(
        [line],
        window=window,
        stats=ReadStats(files=1, lines=1, unparsed=0),
        hosts=["web-p1"],
        settings=SETTINGS,
        environment="lab",
    )
    html = write_report(result, lang="es", out_dir=tmp_path).html.read_text()
    assert "<script>x" not in html
    assert "&lt;script&gt;x" in html


def test_command_reviews_a_local_copy_and_records_the_run(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GESTIC_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("GESTIC_LEDGER_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    out = tmp_path / "reports"
    args = [
        "--inventory",
        str(LAB_INVENTORY),
        "logs",
        "review",
        "--period",
        "2026-11",
        "--source",
        str(tree),
        "--output",
        str(out),
        "--json",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["totals"]["login_failed"] == 12
    assert (out / "revision-logs-2026-11.html").is_file()
    (run,) = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}").runs(kind="logs.review")
    assert run.status == "succeeded"
    assert run.target == "2026-11"
    assert "12 failed logins" in run.summary


def test_command_refuses_a_bad_period_before_reading_anything(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GESTIC_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("GESTIC_LEDGER_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    args = [
        "--inventory",
        str(LAB_INVENTORY),
        "logs",
        "review",
        "--period",
        "2026-13",
        "--source",
        str(tree),
        "--output",
        str(tmp_path / "reports"),
    ]
    result = CliRunner().invoke(cli, args)
    assert isinstance(result.exception, LogReviewError)
    assert not (tmp_path / "reports").exists()
    assert Ledger(f"sqlite:///{tmp_path / 'ledger.db'}").runs(kind="logs.review") == []
