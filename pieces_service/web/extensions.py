"""Project-wide flask-smorest choices in one place: strict query parsing (unknown parameters
are errors), and one error shape, `{"detail": "...", "errors": {...}?}`, for every error."""
from __future__ import annotations

import logging
from typing import NoReturn

import flask_smorest
import marshmallow as ma
import orjson
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.exceptions import HTTPException

from .. import errors

log = logging.getLogger(__name__)


def abort(status: int, detail: str, **kwargs) -> NoReturn:
    """Stop the request with `status` and a `{"detail": detail}` body."""
    flask_smorest.abort(status, message=detail, **kwargs)


class ErrorSchema(ma.Schema):
    """Every error response."""

    detail = ma.fields.String(required=True, metadata={"description": "What went wrong"})
    errors = ma.fields.Dict(
        metadata={"description": "Validation errors: each bad field with its messages"}
    )


class StrictParser(FlaskParser):
    """Unknown query parameters are validation errors, not silently dropped."""

    DEFAULT_UNKNOWN_BY_LOCATION = {
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        "query": ma.RAISE,
        "querystring": ma.RAISE,
    }
    DEFAULT_VALIDATION_STATUS = 422

    def load_json(self, req, schema):
        """A body sent as another media type is a 415; one that does not parse is a 422
        (SPEC §3: a bad body is a validation error), never a 500."""
        data = req.get_data(cache=True)
        limit = req.max_content_length
        if limit is not None and req.content_length is None and len(data) >= limit:
            # A chunked body has no Content-Length to refuse up front, and werkzeug stops
            # reading silently at the limit: never parse a truncated body.
            abort(413, f"Request body too large (limit {limit} bytes).")
        if not is_json_request(req) and data:
            abort(415, "The request body must be JSON (Content-Type: application/json).")
        try:
            return super().load_json(req, schema)
        except RecursionError:
            abort(422, "Invalid JSON body: nested too deeply.",
                  errors={"json": ["Nested too deeply."]})

    def _raw_load_json(self, req):
        """Parse with orjson (several times faster than json on a 1000-item sync body); its
        JSONDecodeError is json's, so webargs' invalid-JSON handling below still applies."""
        data = req.get_data(cache=True)
        if not is_json_request(req) or not data:
            return ma.missing  # an empty body is "missing data", as webargs has it
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            # orjson is stricter than JSON itself (it refuses lone surrogate escapes, which
            # the field validators then name precisely): let the standard parser decide.
            return core.parse_json(data)

    def _handle_invalid_json_error(self, error, req, *args, **kwargs) -> NoReturn:
        abort(422, "Invalid JSON body.", errors={"json": ["Invalid JSON body."]})


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = StrictParser()

    def operation(self, operation_id: str, text: str | None = None):
        """An operation's stable `operationId` (what generated clients name their functions
        after; tests/test_openapi.py pins the list) and, for a view built per level, its
        summary (the text's first line) and description (the rest), which a docstring set
        after decoration would not give."""
        doc = {"operationId": operation_id}
        if text is not None:
            summary, _, description = text.partition("\n\n")
            doc.update(summary=summary, description=description.strip())
        return self.doc(**doc)


class Schema(ma.Schema):
    """Base schema: unknown fields raise."""

    class Meta:
        unknown = ma.RAISE


_REASONS = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Validation error",
    500: "Internal server error",
    503: "Service unavailable",
}


def _flatten_locations(messages: dict) -> dict:
    """webargs nests errors by location ({"query": {"limit": [...]}}); callers want fields."""
    flat: dict = {}
    for location, fields in messages.items():
        if isinstance(fields, dict):
            flat.update(fields)
        else:
            flat[location] = fields
    return flat


class Api(flask_smorest.Api):
    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self):
        super()._register_error_handlers()
        app = self._app
        app.register_error_handler(errors.ServiceError, _service_error)
        app.register_error_handler(Exception, _unexpected)

    def handle_http_exception(self, error: HTTPException):
        data = getattr(error, "data", None) or {}
        detail = data.get("message") or _REASONS.get(error.code) or error.name
        payload: dict = {"detail": detail}
        errors = data.get("errors") or data.get("messages")
        if errors:
            payload["errors"] = _flatten_locations(errors) if "messages" in data else errors
            if error.code == 422 and "message" not in data:
                payload["detail"] = "Validation error: " + ", ".join(
                    sorted(str(k) for k in payload["errors"])
                )
        headers = dict(data.get("headers") or {})
        if error.code == 405 and hasattr(error, "valid_methods") and error.valid_methods:
            headers.setdefault("Allow", ", ".join(error.valid_methods))
        return payload, error.code, headers


def _service_error(error: errors.ServiceError):
    """The one mapping of the service's errors to responses (statuses: `errors.STATUS`)."""
    status = errors.status_of(error)
    cause = error.__cause__
    if isinstance(error, errors.DatabaseUnavailable):
        log.warning("database unavailable: %s", type(getattr(cause, "orig", cause)).__name__)
    elif isinstance(error, errors.ConcurrentChange):
        log.warning("concurrent change: %s", type(getattr(cause, "orig", cause)).__name__)
    elif status >= 500 and cause is not None:
        log.error("database error", exc_info=cause)
    payload: dict = {"detail": error.detail}
    if error.errors:
        payload["errors"] = error.errors
    return payload, status, error.headers


def _unexpected(error):
    # HTTPExceptions never get here: Flask prefers the more specific handler above.
    log.exception("unhandled error")
    return {"detail": _REASONS[500]}, 500


__all__ = ["Api", "Blueprint", "Schema", "ErrorSchema", "abort"]
