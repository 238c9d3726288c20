"""The HTTP API: one flask-smorest Blueprint per resource."""
