"""Form interaction events."""

from marshmallow import Schema, fields

from app.event_types.fields import HostName, UrlPath


class FormSubmitPayload(Schema):
    """`form interaction / submit`: a form was submitted, with its fields."""

    host = HostName(required=True)
    path = UrlPath(required=True)
    form = fields.Dict(keys=fields.String(), required=True)
