"""schemathesis over every operation of /openapi.json, with a key of every scope, on PostgreSQL.

No 5xx, and every answer matches its documented status and schema, on the one engine The Eye runs
(PostgreSQL refuses NUL characters and timestamps out of its range: the cases worth fuzzing).
(schemathesis's own pytest plugin does not load under pytest 9, so its Python API drives
hypothesis here.)
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app import create_app


def operation_labels() -> list[str]:
    # Only the document is needed to list the operations: the embedded default can serve it.
    app = create_app({"DATABASE_URL": "", "CELERY_BROKER_URL": "", "EYE_DATA_DIR": "/tmp/eye-openapi-labels",
                      "SECRET_KEY": "labels-only", "TESTING": True})
    document = app.test_client().get("/openapi.json").json
    return [f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item
            if method in ("get", "post", "put", "patch", "delete")]


@pytest.fixture
def api_schema(pg_app):
    """The app's own OpenAPI document, loaded by schemathesis and called in-process (WSGI)."""
    return schemathesis.openapi.from_wsgi("/openapi.json", pg_app)


@pytest.mark.slow
@pytest.mark.parametrize("label", operation_labels())
def test_every_operation_answers_as_documented(api_schema, pg_key, label):
    key = pg_key("ingest", "read", "admin")
    method, path = label.split(" ", 1)
    operation = api_schema[path][method]

    @given(case=operation.as_strategy())
    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case):
        # "Schema-valid but refused" is expected here: a payload must also match its registered event
        # type, and `since` must not be after `until`, rules an OpenAPI document cannot express.
        case.call_and_validate(headers={"X-API-Key": key}, excluded_checks=[positive_data_acceptance])

    check()
