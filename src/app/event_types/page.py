"""Page interaction events: page views and call-to-action clicks."""

from marshmallow import Schema, fields, validate

from app.event_types.fields import HostName, UrlPath


class PageviewPayload(Schema):
    """`page interaction / pageview`: a page was shown."""

    host = HostName(required=True)
    path = UrlPath(required=True)


class CtaClickPayload(Schema):
    """`page interaction / cta click`: a call-to-action element was clicked."""

    host = HostName(required=True)
    path = UrlPath(required=True)
    element = fields.String(required=True, validate=validate.Length(min=1, max=256))
