"""Applications and their keys, managed over HTTP with an `admin` key."""

from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import Schema, fields, validate
from sqlalchemy.exc import IntegrityError

from app.api.auth import SECURITY, require_scope
from app.api.schemas import ErrorBody
from app.extensions import db
from app.identity import keys

blp = Blueprint("applications", __name__, url_prefix="/api/v1", description="Applications and API keys (admin)")

# Names appear in URLs, logs and listings: letters, digits and a few separators.
NAME = validate.Regexp(
    r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,63}$",
    error="1 to 64 characters: letters, digits, '.', '_', '-' or spaces, starting with a letter or digit.",
)


class ApplicationCreate(Schema):
    name = fields.String(required=True, validate=NAME)


class KeySummary(Schema):
    prefix = fields.String(required=True)
    scopes = fields.List(fields.String(), required=True)
    created_at = fields.DateTime(required=True)
    revoked_at = fields.DateTime(allow_none=True)


class ApplicationOut(Schema):
    name = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    keys = fields.List(fields.Nested(KeySummary), required=True)


class ApplicationList(Schema):
    items = fields.List(fields.Nested(ApplicationOut), required=True)


class KeyCreate(Schema):
    scopes = fields.List(
        fields.String(validate=validate.OneOf(keys.SCOPES)), required=True, validate=validate.Length(min=1, max=3)
    )


class KeyCreated(Schema):
    key = fields.String(required=True, metadata={"description": "Shown this once; only its hash is stored"})
    prefix = fields.String(required=True)
    scopes = fields.List(fields.String(), required=True)


@blp.route("/applications")
class Applications(MethodView):
    @blp.doc(security=SECURITY)
    @blp.arguments(ApplicationCreate)
    @blp.response(201, ApplicationOut)
    @blp.alt_response(409, schema=ErrorBody, description="An application of that name exists")
    @require_scope("admin")
    def post(self, body):
        """Create an application"""
        try:
            return keys.create_application(body["name"])
        except IntegrityError:
            db.session.rollback()
            abort(409, message=f"An application named {body['name']!r} already exists.")

    @blp.doc(security=SECURITY)
    @blp.response(200, ApplicationList)
    @require_scope("admin")
    def get(self):
        """List applications and their keys (prefixes, never the keys)"""
        return {"items": keys.list_applications()}


@blp.route("/applications/<string:name>/keys")
class ApplicationKeys(MethodView):
    @blp.doc(security=SECURITY)
    @blp.arguments(KeyCreate)
    @blp.response(201, KeyCreated)
    @blp.alt_response(404, schema=ErrorBody, description="No such application")
    @require_scope("admin")
    def post(self, body, name):
        """Create a key for an application; the key is in this answer only"""
        if keys.find_application(name) is None:
            abort(404, message=f"No application named {name!r}.")
        new = keys.create_key(name, body["scopes"])
        return {"key": new.key, "prefix": new.prefix, "scopes": new.scopes}


@blp.route("/keys/<string:prefix>")
class Key(MethodView):
    @blp.doc(security=SECURITY)
    @blp.response(204)
    @blp.alt_response(404, schema=ErrorBody, description="No active key with that prefix")
    @require_scope("admin")
    def delete(self, prefix):
        """Revoke a key (every process stops accepting it within 5 s)"""
        if not keys.revoke_key(prefix):
            abort(404, message=f"No active key with prefix {prefix!r}.")
