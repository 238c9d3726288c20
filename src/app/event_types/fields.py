"""Payload fields shared by the launch event types."""

import re

from marshmallow import ValidationError, fields, validate

# RFC 1123 host name (IPv4 addresses match too), with the optional port a browser's
# `location.host` carries. `\Z`, not `$`: Python's `$` also matches before a final newline.
_HOST_RE = re.compile(
    r"^(?=.{1,253}(:|\Z))[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?(?::\d{1,5})?\Z"
)


class HostName(fields.String):
    """A host name such as `www.example.com` (optionally with `:port`)."""

    def __init__(self, **kwargs):
        super().__init__(
            validate=validate.Regexp(_HOST_RE, error="Not a valid host name."),
            metadata={"description": "Host name, e.g. www.example.com", "example": "www.example.com"},
            **kwargs,
        )


class UrlPath(fields.String):
    """A URL path that starts with `/`."""

    def __init__(self, **kwargs):
        super().__init__(
            validate=[
                validate.Length(min=1, max=2048),
                validate.Regexp(r"^/", error="Must start with '/'."),
            ],
            metadata={"description": "URL path, starting with /", "example": "/"},
            **kwargs,
        )


class StrictNumber(fields.Float):
    """A JSON number: unlike marshmallow's Float, the string "10" or `true` is a wrong type."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValidationError("Not a valid number.")
        return super()._deserialize(value, attr, data, **kwargs)
