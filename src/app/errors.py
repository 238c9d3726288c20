"""The one place that shapes an error body: flask-smorest's `{code, status, message, errors}`."""

from http import HTTPStatus

from flask import jsonify
from flask_smorest import Api
from werkzeug.exceptions import BadRequest, HTTPException, InternalServerError

from app.queries.pagination import BadCursor


def error_body(code: int, message: str | None = None, errors=None, **extra) -> dict:
    """The JSON body of every error the service answers with."""
    body = {"code": code, "status": HTTPStatus(code).phrase}
    if message:
        body["message"] = message
    if errors:
        body["errors"] = errors
    body.update(extra)
    return body


class EyeApi(Api):
    """flask-smorest's Api whose error handler also carries extra fields given to `abort`."""

    def _register_error_handlers(self):
        super()._register_error_handlers()
        # A cursor is read by the services, deep below the views: one answer for all listings.
        self._app.register_error_handler(BadCursor, lambda exc: self.handle_http_exception(BadRequest(str(exc))))
        # Anything unexpected still answers JSON, never Werkzeug's HTML page.
        self._app.register_error_handler(Exception, self._handle_unexpected)

    def handle_http_exception(self, error: HTTPException):
        data = getattr(error, "data", None) or {}
        extra = data.get("extra", {})
        message = data.get("message") or error.description
        # webargs reports request validation errors as "messages".
        errors = data.get("errors") or data.get("messages")
        body = error_body(error.code or 500, message, errors, **extra)
        response = jsonify(body)
        response.status_code = error.code or 500
        for name, value in (data.get("headers") or {}).items():
            response.headers[name] = value
        if error.response is None:
            for name, value in error.get_headers():
                if name.lower() != "content-type":
                    response.headers.setdefault(name, value)
        return response

    def _handle_unexpected(self, error: Exception):
        if isinstance(error, HTTPException):
            return self.handle_http_exception(error)
        self._app.logger.exception("unhandled error")
        return self.handle_http_exception(InternalServerError())
