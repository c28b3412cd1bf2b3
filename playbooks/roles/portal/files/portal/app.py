"""The Flask application: HTML pages under / and a JSON API under /api."""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from flask import (
    Flask,
    Response,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.json.provider import DefaultJSONProvider
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from portal.config import Settings
from portal.domain import (
    EDITABLE,
    MESSAGES,
    ValidationError,
    clean_update,
    valid_document,
)
from portal.repository import PostgresRepository, Repository, RepositoryError

log = logging.getLogger("portal")

STATUS_LABELS = {"current": "Al día", "arrears": "En mora", "paid_off": "Cancelado"}
UNAVAILABLE = "El servicio no está disponible en este momento. Intente de nuevo más tarde."
CSRF_FIELD = "csrf_token"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Cache-Control": "no-store",
}


def create_app(settings: Settings | None = None, repository: Repository | None = None) -> Flask:
    """Build the portal; without arguments, settings come from the environment (gunicorn)."""
    settings = settings or Settings.from_env()
    if repository is None:
        if settings.database is None:
            raise ValueError("create_app needs database settings or a repository")
        repository = PostgresRepository(settings.database)
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.cookie_secure,
        MAX_CONTENT_LENGTH=16 * 1024,
    )
    if isinstance(app.json, DefaultJSONProvider):
        app.json.ensure_ascii = False
        app.json.sort_keys = False
    app.logger.setLevel(logging.INFO)
    log.setLevel(logging.INFO)
    if not log.handlers:  # under gunicorn nothing handles it: stderr goes to the journal
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
    # nginx in front sets X-Forwarded-For/-Proto: trust exactly one proxy
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1)  # type: ignore[method-assign]
    app.jinja_env.filters.update(money=_money, day=_day, status=_status)
    app.extensions["portal.repository"] = repository
    app.extensions["portal.settings"] = settings
    _register_pages(app)
    _register_api(app)
    _register_errors(app)

    @app.after_request
    def _secure(response: Response) -> Response:
        for header, value in SECURITY_HEADERS.items():
            response.headers.setdefault(header, value)
        return response

    @app.context_processor
    def _globals() -> dict[str, Any]:
        return {"settings": settings, "csrf_token": _csrf_token}

    return app


def _repo(app: Flask) -> Repository:
    repo: Repository = app.extensions["portal.repository"]
    return repo


# ---------------------------------------------------------------- HTML pages


def _register_pages(app: Flask) -> None:
    @app.get("/")
    def index() -> ResponseReturnValue:
        return render_template("index.html", documento="", error=None)

    @app.get("/buscar")
    def search() -> ResponseReturnValue:
        document = request.args.get("documento", "").strip()
        if not valid_document(document):
            return render_template(
                "index.html", documento=document, error=MESSAGES["document"]
            ), 400
        if _repo(app).find_beneficiary(document) is None:
            message = f"No encontramos un beneficiario con el documento {document}."
            return render_template("index.html", documento=document, error=message), 404
        return redirect(url_for("beneficiary_page", document=document), code=303)

    @app.get("/beneficiarios/<document>")
    def beneficiary_page(document: str) -> ResponseReturnValue:
        beneficiary = _repo(app).find_beneficiary(document) if valid_document(document) else None
        if beneficiary is None:
            return _not_found_page(document)
        loans = _repo(app).loans_of(document) or []
        return render_template("beneficiary.html", beneficiary=beneficiary, loans=loans)

    @app.route("/beneficiarios/<document>/editar", methods=["GET", "POST"])
    def edit_page(document: str) -> ResponseReturnValue:
        beneficiary = _repo(app).find_beneficiary(document) if valid_document(document) else None
        if beneficiary is None:
            return _not_found_page(document)
        if request.method == "GET":
            values = {k: getattr(beneficiary, k) for k in EDITABLE}
            return render_template("edit.html", beneficiary=beneficiary, values=values, errors={})
        values = {k: request.form.get(k, "") for k in EDITABLE}
        if not _csrf_ok(request.form.get(CSRF_FIELD, "")):
            errors = {"_": "La sesión del formulario expiró. Vuelva a enviar los datos."}
            return _edit_again(beneficiary, values, errors), 400
        try:
            changes = clean_update(values, require_all=True)
        except ValidationError as exc:
            return _edit_again(beneficiary, values, exc.errors), 422
        _repo(app).update_beneficiary(document, changes)
        _audit(document, changes, channel="web")
        flash("Datos actualizados correctamente.")
        return redirect(url_for("beneficiary_page", document=document), code=303)


def _edit_again(beneficiary: Any, values: Mapping[str, str], errors: Mapping[str, str]) -> str:
    return render_template("edit.html", beneficiary=beneficiary, values=values, errors=errors)


def _not_found_page(document: str) -> ResponseReturnValue:
    message = (
        f"No encontramos un beneficiario con el documento {document}."
        if valid_document(document)
        else MESSAGES["document"]
    )
    return render_template("error.html", title="Beneficiario no encontrado", message=message), 404


def _csrf_token() -> str:
    token = session.get(CSRF_FIELD)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[CSRF_FIELD] = token
    return token


def _csrf_ok(submitted: str) -> bool:
    expected = session.get(CSRF_FIELD)
    return isinstance(expected, str) and hmac.compare_digest(expected, submitted)


# ------------------------------------------------------------------ JSON API


def _register_api(app: Flask) -> None:
    settings: Settings = app.extensions["portal.settings"]

    @app.get("/api/health")
    def health() -> ResponseReturnValue:
        body: dict[str, str] = {"site": settings.site, "host": settings.host_name}
        try:
            _repo(app).ping()
        except RepositoryError as exc:
            log.error("health: database unavailable: %s", exc)
            return jsonify(status="degraded", database="unavailable", **body), 503
        return jsonify(status="ok", database="ok", **body)

    @app.get("/api/beneficiaries/<document>")
    def get_beneficiary(document: str) -> ResponseReturnValue:
        if not valid_document(document):
            return _api_error(400, "invalid_document", MESSAGES["document"])
        beneficiary = _repo(app).find_beneficiary(document)
        if beneficiary is None:
            return _api_error(404, "not_found", f"no beneficiary with document {document}")
        return jsonify(beneficiary.to_json())

    @app.get("/api/loans")
    def get_loans() -> ResponseReturnValue:
        document = request.args.get("doc", "").strip()
        if not valid_document(document):
            return _api_error(400, "invalid_document", MESSAGES["document"])
        loans = _repo(app).loans_of(document)
        if loans is None:
            return _api_error(404, "not_found", f"no beneficiary with document {document}")
        return jsonify(document_number=document, loans=[loan.to_json() for loan in loans])

    @app.route("/api/beneficiaries/<document>", methods=["PUT", "POST"])
    def update_beneficiary(document: str) -> ResponseReturnValue:
        # JSON only: a cross-site HTML form cannot send application/json without a CORS
        # preflight, which this API never grants; that is the API's CSRF protection.
        if not valid_document(document):
            return _api_error(400, "invalid_document", MESSAGES["document"])
        if not request.is_json:
            return _api_error(415, "json_required", "send Content-Type: application/json")
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            return _api_error(400, "invalid_json", "the body must be a JSON object")
        claimed = data.pop("document_number", document)
        if claimed != document:
            fields = {"document_number": MESSAGES["document_mismatch"]}
            return _api_error(422, "validation", "invalid fields", fields=fields)
        try:
            changes = clean_update(data, require_all=request.method == "PUT")
        except ValidationError as exc:
            return _api_error(422, "validation", "invalid fields", fields=exc.errors)
        updated = _repo(app).update_beneficiary(document, changes)
        if updated is None:
            return _api_error(404, "not_found", f"no beneficiary with document {document}")
        _audit(document, changes, channel="api")
        return jsonify(updated.to_json())


def _api_error(
    status: int, code: str, message: str, *, fields: Mapping[str, str] | None = None
) -> ResponseReturnValue:
    body: dict[str, Any] = {"error": code, "message": message}
    if fields:
        body["fields"] = dict(fields)
    return jsonify(body), status


def _audit(document: str, changes: Mapping[str, str], *, channel: str) -> None:
    # field names only: the values are personal data and stay in the database
    log.info(
        "beneficiary %s updated via %s from %s: %s",
        document,
        channel,
        request.remote_addr,
        ", ".join(sorted(changes)),
    )


# -------------------------------------------------------------------- errors


def _register_errors(app: Flask) -> None:
    @app.errorhandler(RepositoryError)
    def unavailable(exc: RepositoryError) -> ResponseReturnValue:
        log.error("database unavailable: %s", exc)
        if request.path.startswith("/api/"):
            return _api_error(503, "unavailable", "the database is unavailable")
        return render_template(
            "error.html", title="Servicio no disponible", message=UNAVAILABLE
        ), 503

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> ResponseReturnValue:
        status = exc.code or 500
        if request.path.startswith("/api/"):
            code = (exc.name or "error").lower().replace(" ", "_")
            return _api_error(status, code, exc.description or exc.name or "error")
        return render_template("error.html", title=exc.name, message=exc.description), status


# ------------------------------------------------------------- view helpers


def _money(amount: Decimal) -> str:
    """Colombian pesos: '$ 1.234.567' (no decimals, dot thousands separator)."""
    whole = int(amount.quantize(Decimal(1)))
    return "$ " + f"{whole:,}".replace(",", ".")


def _day(value: date | None) -> str:
    return value.strftime("%d/%m/%Y") if value else "—"


def _status(code: str) -> str:
    return STATUS_LABELS.get(code, code)
