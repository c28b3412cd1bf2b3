"""Keywords of the access review bot (revisión de accesos).

The access report (``gestic access report``'s ``access-report.json``: ``hosts.<host>`` with
``recorded``, ``error`` and ``accounts``, each account as the host's ``/etc/gestic/access.json``
records it) lists the local accounts of every host; the HR roster lists staff with their state
(activo/retirado). Each host account becomes one work item; its decision is ``conservar``
(active staff), ``revocar`` (left, or no HR record), or ``ya_bloqueada`` (not active but
already locked). Accounts that are not people are left out: the service accounts of the
payload, the automation account (``access: automation``) and system accounts (uid < 1000).
A host whose record could not be read becomes one item too, rejected as ``HOST_SIN_REGISTRO``:
the review of that host is missing, and the run says so. The proposal is a YAML fragment for
the access model (``gestic_accounts``: ``state: removed`` with date and ticket) that a person
reviews and commits: this bot never deletes or locks anything itself.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from typing import Any

import yaml
from robot.api.deco import keyword, library

FIRST_HUMAN_UID = 1000
#: The access kind the hosts' records give the account Ansible logs in as.
AUTOMATION = "automation"


def _accounts_of(entry: Any) -> list[Any]:
    if isinstance(entry, dict):
        found = entry.get("accounts", entry.get("cuentas", []))
        return found if isinstance(found, list) else []
    return entry if isinstance(entry, list) else []


@library(scope="GLOBAL", auto_keywords=False)
class RevisionAccesos:
    """Access review against the HR roster."""

    @keyword("Leer Planta Activa")
    def leer_planta(self, ruta: str) -> dict[str, dict[str, str]]:
        """The HR roster (CSV) by user name."""
        with Path(ruta).open(newline="", encoding="utf-8-sig") as handle:
            return {
                row["usuario"].strip(): {k: (v or "").strip() for k, v in row.items()}
                for row in csv.DictReader(handle)
                if (row.get("usuario") or "").strip()
            }

    @keyword("Cuentas A Revisar")
    def cuentas_a_revisar(
        self, reporte: str, planta: dict[str, dict[str, str]], servicio: list[str]
    ) -> list[dict[str, Any]]:
        """One entry per human account per host, with the person's roster record (or None)."""
        data = json.loads(Path(reporte).read_text(encoding="utf-8"))
        hosts = data.get("hosts", data) if isinstance(data, dict) else {}
        skip = set(servicio)
        out = []
        for host, entry in sorted(hosts.items()):
            if isinstance(entry, dict) and entry.get("recorded") is False:
                out.append({"host": host, "sin_registro": entry.get("error") or "sin registro"})
                continue
            for account in _accounts_of(entry):
                if not isinstance(account, dict):
                    out.append({"host": host, "registro": account})
                    continue
                name = account.get("username") or account.get("user") or account.get("name")
                uid = account.get("uid")
                if name in skip or account.get("access") == AUTOMATION:
                    continue
                if isinstance(uid, int) and uid < FIRST_HUMAN_UID:
                    continue
                out.append(
                    {
                        "host": host,
                        "cuenta": name,
                        "uid": uid,
                        "grupos": account.get("groups", []),
                        "bloqueada": bool(account.get("locked", False)),
                        "planta": planta.get(name) if name else None,
                    }
                )
        return out

    @keyword("Decidir Acceso")
    def decidir(self, item: dict[str, Any]) -> dict[str, Any]:
        """conservar, revocar or ya_bloqueada; rechazado (with a code) for a bad record."""
        base = {"host": item.get("host"), "cuenta": item.get("cuenta")}
        if item.get("sin_registro") and item.get("host"):
            return {
                **base,
                "decision": "rechazado",
                "codigo": "HOST_SIN_REGISTRO",
                "motivo": f"sin registro de accesos del host: {item['sin_registro']}",
            }
        if not item.get("cuenta") or not item.get("host"):
            return {
                **base,
                "decision": "rechazado",
                "codigo": "REGISTRO_INVALIDO",
                "motivo": f"cuenta sin nombre o sin host en el reporte: {item!r}",
            }
        persona = item.get("planta")
        if persona and persona.get("estado", "").lower() == "activo":
            return {**base, "decision": "conservar", "codigo": "", "motivo": "planta activa"}
        if persona:
            motivo = f"retirado de la planta el {persona.get('fecha_retiro') or 'sin fecha'}"
            codigo = "RETIRADO"
        else:
            motivo, codigo = "sin vínculo en la planta de talento humano", "SIN_VINCULO"
        if item.get("bloqueada"):
            return {**base, "decision": "ya_bloqueada", "codigo": codigo, "motivo": motivo}
        return {**base, "decision": "revocar", "codigo": codigo, "motivo": motivo}

    @keyword("Propuesta De Retiro")
    def propuesta(self, decisiones: list[dict[str, Any]], ticket: str, ruta: str) -> int:
        """Write the removal proposal (YAML for gestic_accounts); returns accounts to revoke."""
        hoy = dt.date.today().isoformat()
        por_cuenta: dict[str, dict[str, Any]] = {}
        for d in decisiones:
            if d.get("decision") != "revocar":
                continue
            entry = por_cuenta.setdefault(
                d["cuenta"],
                {"state": "removed", "removed_on": hoy, "ticket": ticket, "hosts": set(),
                 "reason": f"{d['codigo']}: {d['motivo']}"},
            )  # fmt: skip
            entry["hosts"].add(d["host"])
        for entry in por_cuenta.values():
            entry["hosts"] = sorted(entry["hosts"])
        header = (
            "# Propuesta de retiro de accesos (bot revision-accesos). NO se aplica sola:\n"
            "# revísela y llévela como cambio revisado a group_vars/all/accounts.yml\n"
            "# (gestic_accounts: state removed, fecha y ticket) para que el rol access bloquee\n"
            "# las cuentas.\n"
        )
        body = yaml.safe_dump(
            {"gestic_accounts": dict(sorted(por_cuenta.items()))},
            allow_unicode=True,
            sort_keys=False,
        )
        Path(ruta).write_text(header + body, encoding="utf-8")
        return len(por_cuenta)
