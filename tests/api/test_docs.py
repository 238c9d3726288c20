"""Swagger UI works offline, the OpenAPI document names every event type, the probes answer."""

from app.api.openapi import payload_schema_name
from app.event_types import launch_registry

registry = launch_registry()  # the registry every app is made with


def test_swagger_ui_is_served_with_local_assets(embedded_client):
    page = embedded_client.get("/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in html
    assert "//cdn" not in html and "unpkg" not in html and "jsdelivr" not in html
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "swagger-ui-standalone-preset.js", "LICENSE"):
        assert embedded_client.get(f"/static/vendor/swagger-ui/{asset}").status_code == 200


def test_openapi_document_lists_every_registered_event_type(embedded_client):
    document = embedded_client.get("/openapi.json").json
    assert document["openapi"].startswith("3.")
    schemas = document["components"]["schemas"]
    for (category, name), _ in registry:
        assert payload_schema_name(category, name) in schemas
    assert set(schemas["MouseMovePayload"]["required"]) == {"points"}
    assert "/api/v1/events" in document["paths"] and "/api/v1/events/batch" in document["paths"]
    assert document["components"]["securitySchemes"]["ApiKey"]["name"] == "X-API-Key"


def test_health_and_readiness_on_the_embedded_default(embedded_client):
    assert embedded_client.get("/healthz").json == {"status": "ok"}
    ready = embedded_client.get("/readyz")
    assert ready.status_code == 200 and ready.json["checks"] == {"database": "ok", "broker": "ok"}


def test_unknown_route_is_a_json_404(embedded_client):
    response = embedded_client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json["code"] == 404 and response.json["status"] == "Not Found"


def test_wrong_method_is_a_json_405(embedded_client):
    response = embedded_client.delete("/api/v1/events")
    assert response.status_code == 405 and response.json["code"] == 405
