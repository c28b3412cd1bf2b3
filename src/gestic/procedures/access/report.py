"""The access inventory (Guía Actualización del Inventario de Accesos a Plataforma Tecnológica).

Every host records its accesses in /etc/gestic/access.json (the `access` role). This module
joins those records (`gestic.procedures.access.records` reads them) with the declarations
(`gestic_accounts`) and writes who has access to what, per host and per person, with removed
accounts confirmed locked and undeclared accounts flagged: JSON, CSV and a self-contained HTML
(Spanish by default, or English).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

from gestic import reports
from gestic.errors import GesticError
from gestic.model.schema import Account, Model
from gestic.procedures.access.records import parse_record

EXPIRING_DAYS = 30
LANGS = reports.LANGS

Severity = Literal["critical", "warning", "info"]
SEVERITY_ORDER: dict[str, int] = {"critical": 0, "warning": 1, "info": 2}


@dataclass(frozen=True, kw_only=True)
class Finding:
    """Something in the records that needs attention (`code` names it; `params` details it)."""

    severity: Severity
    code: str
    host: str
    username: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def message(self, lang: str = "es") -> str:
        text = reports.text("access", lang)
        values = dict(self.params)
        if "issues" in values:
            values["issues"] = ", ".join(text[f"issue.{i}"] for i in values["issues"])
        for key in ("fingerprints", "groups"):
            if key in values:
                values[key] = ", ".join(values[key])
        return str(text[f"finding.{self.code}"]).format(**values)

    def as_dict(self, lang: str = "es") -> dict[str, Any]:
        return {
            "severity": self.severity,
            "code": self.code,
            "host": self.host,
            "username": self.username,
            "params": self.params,
            "message": self.message(lang),
        }


@dataclass(frozen=True, kw_only=True)
class HostAccess:
    """One host: its record (None when it could not be read, with `error` saying why)."""

    name: str
    site: str
    record: dict[str, Any] | None
    error: str | None = None

    @property
    def accounts(self) -> dict[str, dict[str, Any]]:
        return {a["username"]: a for a in (self.record or {}).get("accounts", [])}

    @property
    def undeclared(self) -> list[str]:
        return list((self.record or {}).get("undeclared", []))


@dataclass(frozen=True, kw_only=True)
class PersonAccess:
    """One person (declared or found undeclared) and their status on every host."""

    username: str
    name: str
    role: str
    state: str  # present, removed, undeclared
    ticket: str
    expires: date | None
    removed_on: date | None
    groups: list[str]
    hosts: dict[str, str]  # host -> access, locked, not_locked, absent, unknown

    @property
    def with_access(self) -> list[str]:
        """Hosts where the account can log in (a removal not yet locked included)."""
        return [h for h, s in self.hosts.items() if s in {"access", "not_locked"}]


@dataclass(frozen=True, kw_only=True)
class AccessReport:
    environment: str
    generated_at: datetime
    today: date
    hosts: list[HostAccess]
    people: list[PersonAccess]
    findings: list[Finding]
    warnings: list[str] = field(default_factory=list)

    @property
    def critical(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "critical"]

    @property
    def missing_records(self) -> list[str]:
        return [h.name for h in self.hosts if h.record is None]

    def summary(self) -> dict[str, Any]:
        removed = [
            (p.username, h)
            for p in self.people
            if p.state == "removed"
            for h, s in p.hosts.items()
            if s in {"locked", "not_locked"}
        ]
        confirmed = [
            (u, h)
            for u, h in removed
            if not any(
                f.code == "revocation_incomplete" and f.username == u and f.host == h
                for f in self.findings
            )
        ]
        return {
            "hosts": len(self.hosts),
            "hosts_recorded": len(self.hosts) - len(self.missing_records),
            "people_with_access": sum(1 for p in self.people if p.with_access),
            "removed_accounts_found": len(removed),
            "removed_accounts_locked": len(confirmed),
            "undeclared_accounts": sum(len(h.undeclared) for h in self.hosts),
            "findings": {s: sum(f.severity == s for f in self.findings) for s in SEVERITY_ORDER},
        }


# --- building the report --------------------------------------------------------------------


def _date(value: Any) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) and value else None


def _declared_sudo(model: Model, acct: Account) -> bool:
    return any(g in model.access_groups and model.access_groups[g].sudo for g in acct.groups)


def _granted_findings(
    model: Model, acct: Account, host: str, found: dict[str, Any] | None, today: date
) -> list[Finding]:
    def finding(severity: Severity, code: str, **params: Any) -> Finding:
        return Finding(severity=severity, code=code, host=host, username=acct.username,
                       params=params)  # fmt: skip

    if found is None or found.get("access") != "granted" or found.get("locked"):
        return [finding("warning", "not_applied")]
    out = []
    keys = {k.get("fingerprint") for k in found.get("keys", []) if isinstance(k, dict)}
    if extra := sorted(str(k) for k in keys - set(acct.fingerprints)):
        out.append(finding("critical", "extra_keys", fingerprints=extra))
    if missing := sorted(set(acct.fingerprints) - keys):
        out.append(finding("warning", "missing_keys", fingerprints=missing))
    groups = set(found.get("groups", []))
    if extra := sorted(groups - set(acct.groups)):
        out.append(finding("critical", "extra_groups", groups=extra))
    if missing := sorted(set(acct.groups) - groups):
        out.append(finding("warning", "missing_groups", groups=missing))
    if found.get("sudo") and not _declared_sudo(model, acct):
        out.append(finding("critical", "unexpected_sudo"))
    on_host = _date(found.get("expires"))
    if on_host != acct.expires:
        out.append(
            finding("warning", "expiry_differs", found=str(on_host or "-"),
                    declared=str(acct.expires or "-"))
        )  # fmt: skip
    if acct.expires is not None:
        days = (acct.expires - today).days
        if days <= 0:
            out.append(finding("warning", "expired", expires=acct.expires.isoformat()))
        elif days <= EXPIRING_DAYS:
            out.append(finding("info", "expiring", expires=acct.expires.isoformat(), days=days))
    return out


def revocation_issues(found: Mapping[str, Any]) -> list[str]:
    """What keeps an account that should have no access from being confirmed locked."""
    issues = []
    if not found.get("locked"):
        issues.append("not_locked")
    if found.get("keys"):
        issues.append("keys")
    if int(found.get("processes") or 0) > 0:
        issues.append("processes")
    if found.get("sudo"):
        issues.append("sudo")
    if found.get("groups"):
        issues.append("groups")
    return issues


def _host_findings(model: Model, host: HostAccess, today: date) -> list[Finding]:
    if host.record is None:
        return [Finding(severity="critical", code="no_record", host=host.name,
                        params={"error": host.error or "?"})]  # fmt: skip
    found = host.accounts
    granted = {a.username for a in model.granted_on(host.name)}
    out: list[Finding] = []
    for acct in model.accounts.values():
        entry = found.get(acct.username)
        if acct.username in granted:
            out += _granted_findings(model, acct, host.name, entry, today)
        elif entry is not None and (issues := revocation_issues(entry)):
            out.append(
                Finding(severity="critical", code="revocation_incomplete", host=host.name,
                        username=acct.username, params={"issues": issues})
            )  # fmt: skip
    for name in host.undeclared:
        locked = bool(found.get(name, {}).get("locked"))
        out.append(
            Finding(severity="warning" if locked else "critical",
                    code="undeclared_locked" if locked else "undeclared",
                    host=host.name, username=name)
        )  # fmt: skip
    return out


def _status(host: HostAccess, username: str) -> str:
    if host.record is None:
        return "unknown"
    entry = host.accounts.get(username)
    if entry is None:
        return "absent"
    if entry.get("locked"):
        return "locked"
    return "not_locked" if entry.get("access") == "revoked" else "access"


def _people(model: Model, hosts: list[HostAccess]) -> list[PersonAccess]:
    people = [
        PersonAccess(
            username=a.username,
            name=a.name or "",
            role=a.role or "",
            state=a.state,
            ticket=a.ticket,
            expires=a.expires,
            removed_on=a.removed_on,
            groups=list(a.groups),
            hosts={h.name: _status(h, a.username) for h in hosts},
        )
        for a in sorted(model.accounts.values(), key=lambda a: (a.state, a.username))
    ]
    undeclared = sorted({n for h in hosts for n in h.undeclared})
    for name in undeclared:
        seen = [h.accounts[name] for h in hosts if name in h.accounts]
        people.append(
            PersonAccess(
                username=name,
                name=str(seen[0].get("name") or "") if seen else "",
                role="",
                state="undeclared",
                ticket="",
                expires=None,
                removed_on=None,
                groups=sorted({g for s in seen for g in s.get("groups", [])}),
                hosts={h.name: _status(h, name) for h in hosts},
            )
        )
    return people


def build_report(
    model: Model,
    texts: Mapping[str, str],
    errors: Mapping[str, str] | None = None,
    *,
    today: date | None = None,
    now: datetime | None = None,
) -> AccessReport:
    """Join the hosts' records (host -> JSON text) with the model's declarations."""
    now = now or datetime.now(UTC)
    today = today or date.today()
    errors = errors or {}
    hosts = []
    primary_first = {s.name: (s.role != "primary", s.name) for s in model.sites.values()}
    for h in sorted(model.hosts.values(), key=lambda h: (primary_first[h.site], h.name)):
        record: dict[str, Any] | None = None
        error: str | None = errors.get(h.name, "not collected")
        if h.name in texts:
            try:
                record, error = parse_record(texts[h.name], h.name), None
            except ValueError as exc:
                error = f"invalid record: {exc}"
        hosts.append(HostAccess(name=h.name, site=h.site, record=record, error=error))
    findings = [f for h in hosts for f in _host_findings(model, h, today)]
    findings.sort(key=lambda f: (SEVERITY_ORDER[f.severity], f.host, f.username or "", f.code))
    return AccessReport(
        environment=model.environment,
        generated_at=now,
        today=today,
        hosts=hosts,
        people=_people(model, hosts),
        findings=findings,
        warnings=list(model.warnings),
    )


# --- writing it -----------------------------------------------------------------------------


def report_json(report: AccessReport, lang: str = "es") -> dict[str, Any]:
    """The report as JSON: `hosts.<name>.accounts` is each host's record, as the hosts wrote it."""
    return {
        "generated_at": report.generated_at.isoformat(timespec="seconds"),
        "environment": report.environment,
        "date": report.today.isoformat(),
        "summary": report.summary(),
        "hosts": {
            h.name: {
                "site": h.site,
                "recorded": h.record is not None,
                "error": h.error,
                "updated_at": (h.record or {}).get("updated_at"),
                "accounts": (h.record or {}).get("accounts", []),
                "undeclared": h.undeclared,
            }
            for h in report.hosts
        },
        "people": [
            {
                "username": p.username,
                "name": p.name,
                "role": p.role,
                "state": p.state,
                "ticket": p.ticket,
                "expires": p.expires.isoformat() if p.expires else None,
                "removed_on": p.removed_on.isoformat() if p.removed_on else None,
                "groups": p.groups,
                "hosts": p.hosts,
            }
            for p in report.people
        ],
        "findings": [f.as_dict(lang) for f in report.findings],
        "warnings": report.warnings,
    }


def _yes(value: Any) -> str:
    return "yes" if value else "no"


def write_csv(report: AccessReport, out_dir: Path) -> list[Path]:
    """access-inventory.csv (one row per account per host) and access-people.csv."""
    codes: dict[tuple[str, str | None], list[str]] = {}
    for f in report.findings:
        codes.setdefault((f.host, f.username), []).append(f.code)
    inventory = out_dir / "access-inventory.csv"
    with inventory.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(
            ["host", "site", "username", "uid", "name", "role", "access", "state", "ticket",
             "groups", "sudo", "key_fingerprints", "expires", "password_locked", "shell",
             "locked", "updated_at", "findings"]
        )  # fmt: skip
        for h in report.hosts:
            if h.record is None:
                writer.writerow([h.name, h.site, "", "", "", "", "", "", "", "", "", "", "", "",
                                 "", "", "", " ".join(codes.get((h.name, None), []))])  # fmt: skip
                continue
            for a in h.record["accounts"]:
                writer.writerow(
                    [h.name, h.site, a["username"], a.get("uid", ""), a.get("name") or "",
                     a.get("role") or "", a["access"], a.get("state") or "", a.get("ticket") or "",
                     " ".join(a["groups"]), _yes(a["sudo"]),
                     " ".join(str(k.get("fingerprint")) for k in a["keys"]),
                     a.get("expires") or "", _yes(a.get("password_locked")), a.get("shell", ""),
                     _yes(a["locked"]), h.record.get("updated_at", ""),
                     " ".join(codes.get((h.name, a["username"]), []))]
                )  # fmt: skip
    people = out_dir / "access-people.csv"
    with people.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(
            ["username", "name", "role", "state", "ticket", "expires", "removed_on", "groups",
             "hosts_with_access", "hosts_locked", "hosts_not_locked"]
        )  # fmt: skip
        for p in report.people:
            by = {s: " ".join(h for h, v in p.hosts.items() if v == s) for s in p.hosts.values()}
            writer.writerow(
                [p.username, p.name, p.role, p.state, p.ticket,
                 p.expires.isoformat() if p.expires else "",
                 p.removed_on.isoformat() if p.removed_on else "", " ".join(p.groups),
                 by.get("access", ""), by.get("locked", ""), by.get("not_locked", "")]
            )  # fmt: skip
    return [inventory, people]


def render_html(report: AccessReport, lang: str = "es") -> str:
    language = reports.check_lang(lang, GesticError)
    return reports.render(
        "access/report.html.j2",
        lang=language,
        t=reports.text("access", language),
        r=report,
        summary=report.summary(),
        generated=report.generated_at.strftime("%Y-%m-%d %H:%M UTC"),
        host_names=[h.name for h in report.hosts],
    )


def write_report(
    report: AccessReport, out_dir: Path, *, lang: str = "es", texts: Mapping[str, str] | None = None
) -> list[Path]:
    """Write the JSON, the CSVs, the HTML and (given `texts`) the raw records into `out_dir`."""
    html = render_html(report, lang)  # first: a bad language writes nothing
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = reports.write_json(out_dir / "access-report.json", report_json(report, lang))
    html_path = out_dir / "access-report.html"
    html_path.write_text(html, encoding="utf-8")
    paths = [json_path, *write_csv(report, out_dir), html_path]
    if texts:
        records = out_dir / "records"
        records.mkdir(exist_ok=True)
        for host, text in sorted(texts.items()):
            (records / f"access-{host}.json").write_text(text, encoding="utf-8")
        paths.append(records)
    return paths
