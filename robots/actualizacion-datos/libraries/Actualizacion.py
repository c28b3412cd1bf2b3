"""Keywords of the data update bot (actualización de datos en el portal de beneficiarios).

The browser work (Selenium through RPA.Browser.Selenium) is in the robot; this library reads
the source spreadsheet, checks each record before the portal is touched, gives the headless
Chromium options, tells what page the portal answered with and reads its validation errors.

The portal (playbooks/roles/portal/files/portal) serves the form at
``/beneficiarios/<documento>/editar``: ``form#actualizar`` with inputs ``full_name``, ``email``,
``phone`` and ``address`` (pre-filled; every field is required, so the robot only retypes the
fields the record brings), a CSRF token in the session, and ``button#guardar``. A saved form
redirects to the beneficiary's page with ``#aviso``; a rejected one comes back (422) with
``#errores`` and one ``p.error#error-<field>`` per invalid field. An unknown document is a 404
page titled "Beneficiario no encontrado"; nginx or a database that does not answer gives a
502/503 page.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from robot.api.deco import keyword, library

FIELDS = ("full_name", "email", "phone", "address")
DOCUMENT = re.compile(r"[0-9]{6,10}")
BROWSER_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@library(scope="GLOBAL", auto_keywords=False)
class Actualizacion:
    """Source spreadsheet, record checks and page classification."""

    @keyword("Leer Planilla De Actualizaciones")
    def leer_planilla(self, ruta: str) -> list[dict[str, Any]]:
        """Rows of the source spreadsheet (CSV or XLSX), with their line numbers."""
        path = Path(ruta)
        if path.suffix.lower() in (".xlsx", ".xlsm"):
            rows = list(load_workbook(path, read_only=True).active.iter_rows(values_only=True))
            header = [str(h or "").strip().lower() for h in rows[0]] if rows else []
            records = [dict(zip(header, r, strict=False)) for r in rows[1:]]
        else:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                records = list(csv.DictReader(handle))
        out = []
        for line, record in enumerate(records, start=2):
            row = {str(k).strip().lower(): str(v or "").strip() for k, v in record.items() if k}
            if any(row.values()):
                out.append({**row, "linea": line})
        return out

    @keyword("Problema Del Registro")
    def problema(self, registro: dict[str, Any]) -> str:
        """Why the record cannot be sent (empty string when it can)."""
        documento = str(registro.get("documento", ""))
        if not DOCUMENT.fullmatch(documento):
            return f"documento inválido: {documento!r} (6 a 10 dígitos)"
        if not any(str(registro.get(f, "")).strip() for f in FIELDS):
            return "el registro no trae datos que actualizar"
        return ""

    @keyword("Campos A Actualizar")
    def campos(self, registro: dict[str, Any]) -> dict[str, str]:
        """The form fields the record fills (only those it brings)."""
        return {f: str(registro[f]) for f in FIELDS if str(registro.get(f, "")).strip()}

    @keyword("Opciones De Chromium")
    def opciones(self) -> str:
        """Selenium options for Debian's Chromium, headless, no driver or update downloads."""
        binary = os.environ.get("GESTIC_CHROMIUM", "/usr/bin/chromium")
        flags = ";".join(f'add_argument("{f}")' for f in BROWSER_FLAGS)
        return f'binary_location="{binary}";{flags}'

    @keyword("Servicio De Chromedriver")
    def servicio(self) -> str:
        driver = os.environ.get("GESTIC_CHROMEDRIVER", "/usr/bin/chromedriver")
        return f'executable_path="{driver}"'

    @keyword("Rechazos Del Formulario")
    def rechazos(self, errores: list[Any]) -> str:
        """The portal's validation messages, one per field: ``email: <message>; ...``.

        `errores` are the form's error elements (``p.error`` with ``id="error-<field>"``), as
        Selenium WebElements; the values typed are personal data and are never repeated here.
        """
        textos = []
        for elemento in errores:
            campo = str(elemento.get_attribute("id") or "").removeprefix("error-")
            texto = " ".join(str(elemento.text or "").split())
            textos.append(f"{campo}: {texto}" if campo else texto)
        return "; ".join(textos)

    @keyword("Clasificar Pagina")
    def clasificar(self, titulo: str, fuente: str) -> str:
        """formulario, no_encontrado or caido: what the portal answered."""
        if 'id="actualizar"' in fuente:
            return "formulario"
        if "no encontrado" in titulo.lower() or "No encontramos" in fuente:
            return "no_encontrado"
        return "caido"
