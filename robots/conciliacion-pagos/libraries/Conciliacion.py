"""Keywords of the payment reconciliation bot (conciliación de pagos).

* `Leer Archivo De Pagos`: the bank's payments file (CSV or Excel) as one dict per row.
* `Conciliar Pago Contra Cartera`: matches one payment against the loan portfolio, read from
  the portal API (``GET <url>/api/loans?doc=<documento>``) or from a CSV export of it. Bad data
  gives a result with ``estado: rechazado`` and a code (a BUSINESS exception for the robot);
  a portfolio that cannot be reached raises ``CarteraNoDisponible`` (an APPLICATION failure,
  retried).
* `Separar Resultados` and `Resumen En Html`: what the report step writes.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import json
import urllib.error
import urllib.parse
import urllib.request
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from robot.api.deco import keyword, library

REQUIRED = ("referencia", "fecha", "documento", "credito", "valor")
ACTIVE = {"vigente", "activo", "active", "al dia", "al día", "en mora", "current", "arrears"}


class CarteraNoDisponible(RuntimeError):
    """The portfolio (portal API or export) could not be read: retry later."""


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _money(value: Any) -> Decimal:
    text = _text(value).replace("$", "").replace(" ", "")
    if "," in text and "." not in text:
        text = text.replace(",", ".")
    return Decimal(text)


def _first(record: dict[str, Any], *names: str) -> Any:
    for name in names:
        if name in record and record[name] is not None:
            return record[name]
    return None


def _loan(record: dict[str, Any]) -> dict[str, Any]:
    """One portfolio record in the bot's terms, whichever names the source uses."""
    return {
        "credito": _text(_first(record, "credito", "loan_number", "loan_id", "numero")),
        "documento": _text(_first(record, "documento", "document_number", "doc")),
        "beneficiario": _text(_first(record, "beneficiario", "name", "nombre", "beneficiary")),
        "saldo": _text(_first(record, "saldo", "balance")),
        "cuota": _text(_first(record, "cuota", "installment", "monthly_payment")),
        "estado": _text(_first(record, "estado", "status")).lower(),
    }


@library(scope="GLOBAL", auto_keywords=False)
class Conciliacion:
    """Payment reconciliation against the loan portfolio."""

    def __init__(self, cartera_url: str = "", cartera_csv: str = "", timeout: float = 10):
        self.cartera_url = cartera_url.rstrip("/")
        self.cartera_csv = Path(cartera_csv) if cartera_csv else None
        self.timeout = float(timeout)
        self._csv_cache: list[dict[str, Any]] | None = None

    @keyword("Leer Archivo De Pagos")
    def leer_archivo_de_pagos(self, ruta: str) -> list[dict[str, Any]]:
        """Rows of the payments file (CSV or XLSX), each with its line number as ``linea``."""
        path = Path(ruta)
        if path.suffix.lower() in (".xlsx", ".xlsm"):
            sheet = load_workbook(path, read_only=True, data_only=True).active
            rows = list(sheet.iter_rows(values_only=True))
            if not rows:
                return []
            header = [_text(h).lower() for h in rows[0]]
            records = [dict(zip(header, row, strict=False)) for row in rows[1:]]
        else:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                records = list(csv.DictReader(handle))
        pagos = []
        for number, record in enumerate(records, start=2):
            if not any(_text(v) for v in record.values()):
                continue
            pago = {_text(k).lower(): _text(v) for k, v in record.items() if k}
            pago["linea"] = number
            pago["archivo"] = path.name
            pagos.append(pago)
        return pagos

    def _cartera_csv(self) -> list[dict[str, Any]]:
        if self._csv_cache is None:
            if self.cartera_csv is None:
                raise CarteraNoDisponible("no portfolio source: set CARTERA_URL or CARTERA_CSV")
            try:
                with self.cartera_csv.open(newline="", encoding="utf-8-sig") as handle:
                    self._csv_cache = [_loan(r) for r in csv.DictReader(handle)]
            except OSError as exc:
                raise CarteraNoDisponible(f"cannot read {self.cartera_csv}: {exc}") from exc
        return self._csv_cache

    def _cartera_api(self, documento: str) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode({"doc": documento})
        url = f"{self.cartera_url}/api/loans?{query}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:
                data = json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return []
            raise CarteraNoDisponible(f"{url}: HTTP {exc.code}") from exc
        except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
            raise CarteraNoDisponible(f"{url}: {exc}") from exc
        if isinstance(data, dict):
            data = _first(data, "loans", "creditos", "items") or []
        return [_loan(r) for r in data if isinstance(r, dict)]

    def _loans_of(self, documento: str) -> list[dict[str, Any]]:
        if self.cartera_url:
            return self._cartera_api(documento)
        return [r for r in self._cartera_csv() if r["documento"] == documento]

    @keyword("Conciliar Pago Contra Cartera")
    def conciliar_pago(self, pago: dict[str, Any]) -> dict[str, Any]:
        """Match one payment; returns the result with ``estado`` conciliado or rechazado."""
        base = {k: _text(pago.get(k)) for k in (*REQUIRED, "banco")}
        base["linea"] = pago.get("linea")

        def rechazado(codigo: str, mensaje: str) -> dict[str, Any]:
            return {**base, "estado": "rechazado", "codigo": codigo, "mensaje": mensaje}

        missing = [k for k in REQUIRED if not _text(pago.get(k))]
        if missing:
            return rechazado("PAGO_MALFORMADO", f"faltan campos: {', '.join(missing)}")
        try:
            valor = _money(pago["valor"])
        except (InvalidOperation, ValueError):
            return rechazado("PAGO_MALFORMADO", f"valor no numérico: {pago['valor']!r}")
        if valor <= 0:
            return rechazado("PAGO_MALFORMADO", f"valor no positivo: {valor}")
        try:
            dt.date.fromisoformat(_text(pago["fecha"]))
        except ValueError:
            return rechazado("PAGO_MALFORMADO", f"fecha inválida: {pago['fecha']!r}")
        documento, credito = _text(pago["documento"]), _text(pago["credito"])
        loans = [r for r in self._loans_of(documento) if r["credito"] == credito]
        if not loans:
            return rechazado(
                "CREDITO_NO_ENCONTRADO",
                f"no hay crédito {credito} del documento {documento} en la cartera",
            )
        loan = loans[0]
        if loan["estado"] not in ACTIVE:
            return rechazado("CREDITO_NO_VIGENTE", f"el crédito {credito} está {loan['estado']}")
        try:
            saldo = _money(loan["saldo"])
            cuota = _money(loan["cuota"] or "0")
        except (InvalidOperation, ValueError):
            return rechazado("CARTERA_INCONSISTENTE", f"saldo o cuota inválidos en {credito}")
        if valor > saldo:
            return rechazado(
                "PAGO_EXCEDE_SALDO", f"el pago {valor} excede el saldo {saldo} del crédito"
            )
        cuotas = int(valor // cuota) if cuota > 0 else 0
        return {
            **base,
            "estado": "conciliado",
            "codigo": "",
            "mensaje": "",
            "beneficiario": loan["beneficiario"],
            "saldo_anterior": str(saldo),
            "saldo_nuevo": str(saldo - valor),
            "cuotas_cubiertas": cuotas,
        }

    @keyword("Separar Resultados")
    def separar_resultados(
        self, resultados: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(conciliados, rechazados), each sorted by file line."""
        ordered = sorted(resultados, key=lambda r: (r.get("archivo", ""), r.get("linea") or 0))
        ok = [r for r in ordered if r.get("estado") == "conciliado"]
        bad = [r for r in ordered if r.get("estado") != "conciliado"]
        return ok, bad

    @keyword("Resumen En Html")
    def resumen_en_html(self, resultados: list[dict[str, Any]]) -> str:
        """An HTML summary (totals, rejected payments and their codes) for Html To Pdf."""
        ok, bad = self.separar_resultados(resultados)
        total = sum((_money(r["valor"]) for r in ok), Decimal(0))
        codes: dict[str, int] = {}
        for r in bad:
            codes[r.get("codigo", "")] = codes.get(r.get("codigo", ""), 0) + 1
        when = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
        rows = "".join(
            f"<tr><td>{html.escape(str(r.get('referencia')))}</td>"
            f"<td>{html.escape(str(r.get('documento')))}</td>"
            f"<td>{html.escape(str(r.get('codigo')))}</td>"
            f"<td>{html.escape(str(r.get('mensaje')))}</td></tr>"
            for r in bad
        )
        code_rows = "".join(
            f"<tr><td>{html.escape(c)}</td><td>{n}</td></tr>" for c, n in sorted(codes.items())
        )
        return (
            "<h1>Conciliación de pagos</h1>"
            f"<p>Generado: {when}</p>"
            f"<p>Pagos recibidos: {len(resultados)}<br/>Conciliados: {len(ok)} "
            f"(valor total ${total:,.0f})<br/>Rechazados: {len(bad)}</p>"
            "<h2>Rechazos por código</h2>"
            '<table border="1" width="60%"><thead><tr><th>Código</th><th>Pagos</th></tr>'
            f"</thead><tbody>{code_rows}</tbody></table>"
            "<h2>Pagos rechazados</h2>"
            '<table border="1" width="100%"><thead><tr><th width="15%">Referencia</th>'
            '<th width="15%">Documento</th><th width="25%">Código</th>'
            f'<th width="45%">Detalle</th></tr></thead><tbody>{rows}</tbody></table>'
        )
