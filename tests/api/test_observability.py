"""Operators' view: Prometheus counters move, one JSON line per request, and keys never reach a log."""

import json
import logging

from app.observability.logs import configure_logging


def test_metrics_count_accepted_and_rejected_events(embedded_client, embedded_key, sample):
    key = embedded_key("ingest")

    def counter(name: str) -> float:
        text = embedded_client.get("/metrics").get_data(as_text=True)
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))

    accepted, future = counter("eye_events_accepted_total"), counter('eye_events_rejected_total{kind="future_timestamp"}')
    for name in ("pageview", "bad_future_timestamp"):
        embedded_client.post("/api/v1/events", data=json.dumps(sample(name)), headers={"X-API-Key": key},
                             content_type="application/json")
    assert counter("eye_events_accepted_total") == accepted + 1
    assert counter('eye_events_rejected_total{kind="future_timestamp"}') == future + 1
    assert "eye_publish_seconds_bucket" in embedded_client.get("/metrics").get_data(as_text=True)


def test_keys_never_appear_in_logs(embedded_client, embedded_key, sample, caplog):
    good = embedded_key("ingest", "read")
    revoked_like = "eye_0123456789_thisIsNotARealKeyButMustNotBeLoggedEither"
    caplog.set_level(logging.DEBUG)
    for key in (good, revoked_like):
        for header in ({"X-API-Key": key}, {"Authorization": f"Bearer {key}"}):
            embedded_client.post("/api/v1/events", data=json.dumps(sample("pageview")), headers=header,
                                 content_type="application/json")
            embedded_client.post("/api/v1/events", data=b"{not json", headers=header, content_type="application/json")
            embedded_client.get("/api/v1/applications", headers=header)
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "request" in text  # the request log did run
    for key in (good, revoked_like):
        assert key not in text
        assert key.rsplit("_", 1)[1] not in text  # nor its secret part alone


def test_request_log_is_one_json_line_with_the_key_prefix_only(embedded_client, embedded_key, sample, capfd):
    key = embedded_key("ingest")
    configure_logging("INFO")
    try:
        embedded_client.post("/api/v1/events", data=json.dumps(sample("pageview")), headers={"X-API-Key": key},
                             content_type="application/json")
    finally:
        logging.getLogger().handlers.clear()
    lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if '"eye.request"' in line]
    assert lines, "no request log line"
    entry = lines[-1]
    assert entry["path"] == "/api/v1/events" and entry["status"] == 202 and entry["method"] == "POST"
    assert entry["key_prefix"] == key.split("_")[1] and key not in json.dumps(entry)
