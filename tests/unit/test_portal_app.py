"""Unit tests of the portal application (playbooks/roles/portal/files/portal).

Flask's test client against an in-memory repository: no database, no network. The lab tests
(test_services_lab.py) exercise the deployed portal against PostgreSQL.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import pytest

if os.environ.get("CI") != "true":  # in CI a missing Flask must fail, not skip
    pytest.importorskip("flask", reason="the portal's unit tests need Flask (test extra)")

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "playbooks/roles/portal/files"))

from flask import Flask
from flask.testing import FlaskClient
from portal.app import create_app
from portal.config import ConfigError, Settings
from portal.domain import Beneficiary, Loan, ValidationError, clean_update
from portal.repository import RepositoryError

DOC = "52104729"
OTHER = "52209458"


class FakeRepository:
    """In-memory stand-in for PostgresRepository."""

    def __init__(self) -> None:
        stamp = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
        self.people = {
            DOC: Beneficiary(
                document_type="CC",
                document_number=DOC,
                full_name="Valentina Martínez Vargas",
                email="valentina.martinez1@example.com",
                phone="3829348951",
                address="Carrera 8 # 14-30",
                city="Medellín",
                updated_at=stamp,
            ),
            OTHER: Beneficiary(
                document_type="CC",
                document_number=OTHER,
                full_name="Diego Hernández Sánchez",
                email="diego.hernandez2@example.com",
                phone="3658697902",
                address="Avenida 15 # 27-59",
                city="Cali",
                updated_at=stamp,
            ),
        }
        self.loans = {
            DOC: [
                Loan(
                    loan_number="ICX-2015-000011",
                    program="Posgrado en el exterior",
                    disbursed_on=date(2015, 6, 2),
                    term_months=48,
                    annual_rate=Decimal("0.1350"),
                    amount=Decimal("21500000.00"),
                    balance=Decimal("18364583.31"),
                    status="arrears",
                    payments=7,
                    last_payment_on=date(2016, 1, 2),
                )
            ],
            OTHER: [],
        }
        self.down = False
        self.updates: list[tuple[str, dict[str, str]]] = []

    def _check(self) -> None:
        if self.down:
            raise RepositoryError("connection refused")

    def ping(self) -> None:
        self._check()

    def find_beneficiary(self, document: str) -> Beneficiary | None:
        self._check()
        return self.people.get(document)

    def loans_of(self, document: str) -> list[Loan] | None:
        self._check()
        return self.loans.get(document) if document in self.people else None

    def update_beneficiary(self, document: str, changes: Mapping[str, str]) -> Beneficiary | None:
        self._check()
        if document not in self.people:
            return None
        self.updates.append((document, dict(changes)))
        self.people[document] = replace(self.people[document], **cast(dict[str, Any], changes))
        return self.people[document]


@pytest.fixture
def repo() -> FakeRepository:
    return FakeRepository()


@pytest.fixture
def app(repo: FakeRepository) -> Flask:
    settings = Settings(
        secret_key="test-secret-key-0123456789",
        site="principal",
        host_name="web-p1",
        cookie_secure=False,
        database=None,
    )
    application = create_app(settings=settings, repository=repo)
    application.config["TESTING"] = True
    return application


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


VALID = {
    "full_name": "Valentina Martínez Vargas",
    "email": "vmartinez@Example.COM",
    "phone": "+57 310 555 1234",
    "address": "Calle 26 # 13-19, Bogotá",
}


# ------------------------------------------------------------------ health


def test_health_reports_database_ok(client: FlaskClient) -> None:
    response = client.get("/api/health")
    assert response.status_code == 200
    assert response.json == {
        "status": "ok",
        "database": "ok",
        "site": "principal",
        "host": "web-p1",
    }


def test_health_is_503_when_the_database_is_down(client: FlaskClient, repo: FakeRepository) -> None:
    repo.down = True
    response = client.get("/api/health")
    assert response.status_code == 503
    assert response.json is not None
    assert response.json["database"] == "unavailable"
    assert response.json["status"] == "degraded"


# --------------------------------------------------------------- read API


def test_get_beneficiary(client: FlaskClient) -> None:
    response = client.get(f"/api/beneficiaries/{DOC}")
    assert response.status_code == 200
    body = response.json
    assert body is not None
    assert body["document_number"] == DOC
    assert body["full_name"] == "Valentina Martínez Vargas"
    assert body["city"] == "Medellín"
    assert body["updated_at"] == "2025-01-02T03:04:05+00:00"
    assert "Martínez".encode() in response.data  # UTF-8, not \\u escapes


@pytest.mark.parametrize(
    ("document", "status", "error"),
    [("99999999", 404, "not_found"), ("12ab456", 400, "invalid_document"), ("123", 400, None)],
)
def test_get_beneficiary_errors(
    client: FlaskClient, document: str, status: int, error: str | None
) -> None:
    response = client.get(f"/api/beneficiaries/{document}")
    assert response.status_code == status
    assert response.json is not None
    assert response.json["error"] == (error or "invalid_document")


def test_get_loans(client: FlaskClient) -> None:
    response = client.get(f"/api/loans?doc={DOC}")
    assert response.status_code == 200
    body = response.json
    assert body is not None
    assert body["document_number"] == DOC
    [loan] = body["loans"]
    assert loan["loan_number"] == "ICX-2015-000011"
    assert loan["amount"] == "21500000.00"
    assert loan["balance"] == "18364583.31"
    assert loan["status"] == "arrears"
    assert loan["last_payment_on"] == "2016-01-02"


def test_get_loans_of_beneficiary_without_loans(client: FlaskClient) -> None:
    response = client.get(f"/api/loans?doc={OTHER}")
    assert response.status_code == 200
    assert response.json == {"document_number": OTHER, "loans": []}


@pytest.mark.parametrize(("query", "status"), [("", 400), ("?doc=abc", 400), ("?doc=1234567", 404)])
def test_get_loans_errors(client: FlaskClient, query: str, status: int) -> None:
    assert client.get(f"/api/loans{query}").status_code == status


def test_unknown_api_route_and_method_answer_json(client: FlaskClient) -> None:
    missing = client.get("/api/nothing")
    assert missing.status_code == 404
    assert missing.json is not None
    assert missing.json["error"] == "not_found"
    wrong = client.delete(f"/api/beneficiaries/{DOC}")
    assert wrong.status_code == 405
    assert wrong.json is not None


def test_read_api_is_503_when_the_database_is_down(
    client: FlaskClient, repo: FakeRepository
) -> None:
    repo.down = True
    response = client.get(f"/api/beneficiaries/{DOC}")
    assert response.status_code == 503
    assert response.json == {"error": "unavailable", "message": "the database is unavailable"}


# -------------------------------------------------------------- write API


def test_put_updates_every_contact_field_normalised(
    client: FlaskClient, repo: FakeRepository
) -> None:
    response = client.put(f"/api/beneficiaries/{DOC}", json=VALID)
    assert response.status_code == 200, response.json
    body = response.json
    assert body is not None
    assert body["phone"] == "3105551234"
    assert body["email"] == "vmartinez@example.com"
    assert body["address"] == "Calle 26 # 13-19, Bogotá"
    assert repo.updates == [
        (
            DOC,
            {
                "full_name": "Valentina Martínez Vargas",
                "email": "vmartinez@example.com",
                "phone": "3105551234",
                "address": "Calle 26 # 13-19, Bogotá",
            },
        )
    ]


def test_put_requires_every_field(client: FlaskClient, repo: FakeRepository) -> None:
    response = client.put(f"/api/beneficiaries/{DOC}", json={"email": "a.b@example.com"})
    assert response.status_code == 422
    assert response.json is not None
    assert set(response.json["fields"]) == {"full_name", "phone", "address"}
    assert response.json["fields"]["phone"] == "Este campo es obligatorio."
    assert repo.updates == []


def test_post_updates_only_the_fields_sent(client: FlaskClient, repo: FakeRepository) -> None:
    response = client.post(f"/api/beneficiaries/{DOC}", json={"phone": "601 234 5678"})
    assert response.status_code == 200
    assert repo.updates == [(DOC, {"phone": "6012345678"})]
    assert repo.people[DOC].email == "valentina.martinez1@example.com"


def test_updates_are_audited_with_field_names_only(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="portal"):
        client.post(f"/api/beneficiaries/{DOC}", json={"phone": "601 234 5678"})
    audit = [r.getMessage() for r in caplog.records if r.name == "portal"]
    assert audit == [f"beneficiary {DOC} updated via api from 127.0.0.1: phone"]
    assert "6012345678" not in audit[0]  # values are personal data: never logged
    # gunicorn gives the app's loggers no handler: the portal brings its own (to the journal)
    assert any(isinstance(h, logging.StreamHandler) for h in logging.getLogger("portal").handlers)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email", "not-an-email"),
        ("email", "a@b"),
        ("phone", "12345"),
        ("phone", "2105551234"),
        ("full_name", "Valentina"),
        ("full_name", "R2D2 Robot"),
        ("full_name", "x" * 60 + " " + "y" * 61),
        ("address", "x"),
        ("address", "Calle 1 \x00 # 2-3"),
        ("phone", 3105551234),
    ],
)
def test_post_rejects_bad_values_naming_the_field(
    client: FlaskClient, repo: FakeRepository, field: str, value: object
) -> None:
    response = client.post(f"/api/beneficiaries/{DOC}", json={field: value})
    assert response.status_code == 422
    assert response.json is not None
    assert response.json["error"] == "validation"
    assert list(response.json["fields"]) == [field]
    assert response.json["fields"][field]
    assert repo.updates == []


def test_post_rejects_unknown_fields_and_document_change(
    client: FlaskClient, repo: FakeRepository
) -> None:
    unknown = client.post(f"/api/beneficiaries/{DOC}", json={"balance": "0", "phone": "3001112233"})
    assert unknown.status_code == 422
    assert unknown.json is not None
    assert list(unknown.json["fields"]) == ["balance"]
    moved = client.post(
        f"/api/beneficiaries/{DOC}", json={"document_number": OTHER, "phone": "3001112233"}
    )
    assert moved.status_code == 422
    assert moved.json is not None
    assert list(moved.json["fields"]) == ["document_number"]
    same = client.post(
        f"/api/beneficiaries/{DOC}", json={"document_number": DOC, "phone": "3001112233"}
    )
    assert same.status_code == 200
    assert repo.updates == [(DOC, {"phone": "3001112233"})]


def test_post_with_nothing_to_change_is_rejected(client: FlaskClient) -> None:
    response = client.post(f"/api/beneficiaries/{DOC}", json={})
    assert response.status_code == 422


def test_write_api_accepts_json_only(client: FlaskClient, repo: FakeRepository) -> None:
    # what a cross-site HTML form could send: refused (the API's CSRF protection)
    form = client.post(f"/api/beneficiaries/{DOC}", data={"phone": "3001112233"})
    assert form.status_code == 415
    not_object = client.post(f"/api/beneficiaries/{DOC}", json=["phone"])
    assert not_object.status_code == 400
    assert repo.updates == []


def test_write_api_unknown_beneficiary_is_404(client: FlaskClient) -> None:
    response = client.put("/api/beneficiaries/1234567", json=VALID)
    assert response.status_code == 404


# -------------------------------------------------------------- HTML pages


def test_index_has_the_search_form(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert '<form id="buscar"' in page
    assert 'name="documento"' in page
    assert 'lang="es"' in page


def test_search_redirects_to_the_beneficiary(client: FlaskClient) -> None:
    response = client.get(f"/buscar?documento={DOC}")
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/beneficiarios/{DOC}")


@pytest.mark.parametrize(
    ("document", "status", "message"),
    [
        ("12-34", 400, "entre 6 y 10 dígitos"),
        ("", 400, "entre 6 y 10 dígitos"),
        ("1234567", 404, "No encontramos un beneficiario con el documento 1234567"),
    ],
)
def test_search_errors_are_shown_on_the_form(
    client: FlaskClient, document: str, status: int, message: str
) -> None:
    response = client.get(f"/buscar?documento={document}")
    assert response.status_code == status
    page = response.get_data(as_text=True)
    assert 'id="error-documento"' in page
    assert message in page


def test_beneficiary_page_shows_contact_data_and_loans(client: FlaskClient) -> None:
    response = client.get(f"/beneficiarios/{DOC}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Valentina Martínez Vargas" in page
    assert "ICX-2015-000011" in page
    assert "$ 21.500.000" in page
    assert "$ 18.364.583" in page
    assert "En mora" in page
    assert "02/06/2015" in page


def test_unknown_beneficiary_page_is_404(client: FlaskClient) -> None:
    assert client.get("/beneficiarios/1234567").status_code == 404
    assert client.get("/beneficiarios/abc/editar").status_code == 404


def _csrf(client: FlaskClient) -> str:
    page = client.get(f"/beneficiarios/{DOC}/editar").get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "the edit form carries no CSRF token"
    return found.group(1)


def test_edit_form_updates_and_confirms(client: FlaskClient, repo: FakeRepository) -> None:
    token = _csrf(client)
    response = client.post(
        f"/beneficiarios/{DOC}/editar", data={**VALID, "csrf_token": token}, follow_redirects=True
    )
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Datos actualizados correctamente." in page
    assert "3105551234" in page
    assert repo.people[DOC].email == "vmartinez@example.com"


def test_edit_form_without_csrf_token_changes_nothing(
    client: FlaskClient, repo: FakeRepository
) -> None:
    _csrf(client)
    missing = client.post(f"/beneficiarios/{DOC}/editar", data=VALID)
    forged = client.post(f"/beneficiarios/{DOC}/editar", data={**VALID, "csrf_token": "forged"})
    assert missing.status_code == 400
    assert forged.status_code == 400
    assert "La sesión del formulario expiró" in forged.get_data(as_text=True)
    assert repo.updates == []


def test_edit_form_shows_each_error_and_keeps_the_input(
    client: FlaskClient, repo: FakeRepository
) -> None:
    token = _csrf(client)
    data = {**VALID, "email": "sin-arroba", "phone": "123", "csrf_token": token}
    response = client.post(f"/beneficiarios/{DOC}/editar", data=data)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'id="error-email"' in page
    assert 'id="error-phone"' in page
    assert 'id="error-address"' not in page
    assert 'value="sin-arroba"' in page
    assert repo.updates == []


def test_pages_are_503_when_the_database_is_down(client: FlaskClient, repo: FakeRepository) -> None:
    repo.down = True
    response = client.get(f"/beneficiarios/{DOC}")
    assert response.status_code == 503
    assert "El servicio no está disponible" in response.get_data(as_text=True)


def test_security_headers_and_session_cookie(client: FlaskClient) -> None:
    response = client.get(f"/beneficiarios/{DOC}/editar")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_html_escapes_stored_data(client: FlaskClient, repo: FakeRepository) -> None:
    repo.people[DOC] = replace(repo.people[DOC], address="<script>alert(1)</script>")
    page = client.get(f"/beneficiarios/{DOC}").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;" in page


# ------------------------------------------------------ validation, settings


@pytest.mark.parametrize(
    ("field", "raw", "clean"),
    [
        ("phone", "(+57) 310-555-1234", "3105551234"),
        ("phone", "573105551234", "3105551234"),
        ("phone", "6017654321", "6017654321"),
        ("full_name", "  José   Peña-Díaz  ", "José Peña-Díaz"),
        ("full_name", "María D'Angelo", "María D'Angelo"),
        ("email", " Ana@Correo.Example.CO ", "Ana@correo.example.co"),
        ("address", " Calle  1 #2-3 ", "Calle 1 #2-3"),
    ],
)
def test_clean_update_normalises(field: str, raw: str, clean: str) -> None:
    assert clean_update({field: raw}, require_all=False) == {field: clean}


def test_clean_update_collects_every_error() -> None:
    with pytest.raises(ValidationError) as caught:
        clean_update({"email": "", "phone": "1", "extra": "x"}, require_all=True)
    errors = caught.value.errors
    assert set(errors) == {"email", "phone", "extra", "full_name", "address"}
    assert errors["email"] == "Este campo es obligatorio."


def test_settings_from_env_reads_secrets_from_credentials(tmp_path: Path) -> None:
    (tmp_path / "db-password").write_text("s3cret\n")
    (tmp_path / "secret-key").write_text("k" * 40)
    env = {
        "CREDENTIALS_DIRECTORY": str(tmp_path),
        "PORTAL_DB_HOST": "10.213.1.21",
        "PORTAL_DB_NAME": "cartera",
        "PORTAL_DB_USER": "portal",
        "PORTAL_DB_SSLROOTCERT": "/etc/portal/db-ca.pem",
        "PORTAL_SITE": "principal",
    }
    settings = Settings.from_env(env)
    assert settings.database is not None
    assert settings.database.password == "s3cret"
    assert settings.database.port == 5432
    assert settings.database.sslmode == "verify-full"
    assert settings.secret_key == "k" * 40
    assert settings.site == "principal"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"PORTAL_DB_HOST": ""}, "PORTAL_DB_HOST"),
        ({"PORTAL_DB_PORT": "five"}, "PORTAL_DB_PORT"),
        ({"PORTAL_COOKIE_SECURE": "maybe"}, "PORTAL_COOKIE_SECURE"),
        ({"CREDENTIALS_DIRECTORY": ""}, "PORTAL_SECRET_KEY_FILE"),
        ({"PORTAL_DB_PASSWORD_FILE": "/nonexistent/pw"}, "PORTAL_DB_PASSWORD_FILE"),
    ],
)
def test_settings_errors_name_the_variable(
    tmp_path: Path, change: dict[str, str], named: str
) -> None:
    (tmp_path / "db-password").write_text("s3cret")
    (tmp_path / "secret-key").write_text("key")
    env = {
        "CREDENTIALS_DIRECTORY": str(tmp_path),
        "PORTAL_DB_HOST": "db",
        "PORTAL_DB_NAME": "cartera",
        "PORTAL_DB_USER": "portal",
        **change,
    }
    with pytest.raises(ConfigError, match=named):
        Settings.from_env(env)
