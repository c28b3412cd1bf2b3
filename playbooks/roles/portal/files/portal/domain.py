"""Beneficiaries and loans, and the validation of contact data updates."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

DOCUMENT_RE = re.compile(r"[0-9]{6,10}")
EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
PHONE_RE = re.compile(r"3[0-9]{9}|60[0-9]{8}")
NAME_PART_RE = re.compile(r"[^\W\d_]+(?:['-][^\W\d_]+)*\.?")

EDITABLE = ("full_name", "email", "phone", "address")
"""Contact fields a beneficiary (or a robot on their behalf) may update."""

MESSAGES = {
    "document": "El número de documento debe tener entre 6 y 10 dígitos, sin puntos ni espacios.",
    "full_name": "Escriba nombres y apellidos (de 3 a 120 letras; se admiten espacios, "
    "apóstrofos y guiones).",
    "email": "Escriba un correo electrónico válido, por ejemplo nombre@dominio.com.",
    "phone": "Escriba un celular de 10 dígitos que empiece por 3, o un fijo de 10 dígitos que "
    "empiece por 60 (se admite el prefijo +57).",
    "address": "Escriba una dirección de 5 a 200 caracteres.",
    "required": "Este campo es obligatorio.",
    "unknown": "Este campo no existe o no se puede modificar.",
    "type": "Este campo debe ser texto.",
    "empty": "Envíe al menos uno de los campos: " + ", ".join(EDITABLE) + ".",
    "document_mismatch": "El número de documento no se puede modificar.",
}


@dataclass(frozen=True, kw_only=True)
class Beneficiary:
    document_type: str
    document_number: str
    full_name: str
    email: str
    phone: str
    address: str
    city: str
    updated_at: datetime

    def to_json(self) -> dict[str, str]:
        return {
            "document_type": self.document_type,
            "document_number": self.document_number,
            "full_name": self.full_name,
            "email": self.email,
            "phone": self.phone,
            "address": self.address,
            "city": self.city,
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True, kw_only=True)
class Loan:
    loan_number: str
    program: str
    disbursed_on: date
    term_months: int
    annual_rate: Decimal
    amount: Decimal
    balance: Decimal
    status: str
    payments: int
    last_payment_on: date | None

    def to_json(self) -> dict[str, object]:
        """Money as strings with two decimals: exact, and no float rounding for robots."""
        return {
            "loan_number": self.loan_number,
            "program": self.program,
            "disbursed_on": self.disbursed_on.isoformat(),
            "term_months": self.term_months,
            "annual_rate": str(self.annual_rate),
            "amount": f"{self.amount:.2f}",
            "balance": f"{self.balance:.2f}",
            "status": self.status,
            "payments": self.payments,
            "last_payment_on": self.last_payment_on.isoformat() if self.last_payment_on else None,
        }


class ValidationError(ValueError):
    """Bad input: `errors` maps each field to a message for the person who typed it."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = dict(errors)


def valid_document(document: str) -> bool:
    return DOCUMENT_RE.fullmatch(document) is not None


def clean_update(data: Mapping[str, object], *, require_all: bool) -> dict[str, str]:
    """Validate and normalise a contact data update; raise ValidationError naming each field."""
    errors: dict[str, str] = {}
    clean: dict[str, str] = {}
    for key in data:
        if key not in EDITABLE:
            errors[key] = MESSAGES["unknown"]
    for key in EDITABLE:
        if key not in data:
            if require_all:
                errors[key] = MESSAGES["required"]
            continue
        value = data[key]
        if not isinstance(value, str):
            errors[key] = MESSAGES["type"]
            continue
        normalised = _CLEANERS[key](value)
        if normalised is None:
            errors[key] = MESSAGES["required"] if not value.strip() else MESSAGES[key]
        else:
            clean[key] = normalised
    if not errors and not clean:
        errors["_"] = MESSAGES["empty"]
    if errors:
        raise ValidationError(errors)
    return clean


def _name(value: str) -> str | None:
    text = " ".join(value.split())
    parts = text.split(" ")
    if not 3 <= len(text) <= 120 or len(parts) < 2:
        return None
    return text if all(NAME_PART_RE.fullmatch(p) for p in parts) else None


def _email(value: str) -> str | None:
    text = value.strip()
    if len(text) > 254 or EMAIL_RE.fullmatch(text) is None:
        return None
    local, _, domain = text.rpartition("@")
    return f"{local}@{domain.lower()}"


def _phone(value: str) -> str | None:
    digits = re.sub(r"[\s().-]", "", value.strip())
    if digits.startswith("+57"):
        digits = digits[3:]
    elif digits.startswith("57") and len(digits) == 12:
        digits = digits[2:]
    return digits if PHONE_RE.fullmatch(digits) else None


def _address(value: str) -> str | None:
    text = " ".join(value.split())
    if not 5 <= len(text) <= 200 or not text.isprintable():
        return None
    return text


_CLEANERS = {"full_name": _name, "email": _email, "phone": _phone, "address": _address}
