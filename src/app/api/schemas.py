"""Response and request schemas shared by several resources."""

from marshmallow import Schema, fields


class ErrorBody(Schema):
    """Every error answer: flask-smorest's shape."""

    code = fields.Integer(required=True)
    status = fields.String(required=True)
    message = fields.String()
    errors = fields.Dict()
